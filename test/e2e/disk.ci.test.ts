// E2E, local disk target: a guest that really panics, lastword as PID 1 of the capture kernel saves
// the dump onto an ext4 virtio disk found by LABEL= (kdump.conf `ext4 LABEL=...`), crash opens it.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { crashBinary, debugVmlinux } from '../support/lab.ts';
import { extractExt4Tree } from '../support/qemu.ts';
import { CAPTURE_APPEND, classifyDumpFiles, crashReport, finalAction, INIT_DIED, missingPrerequisite, runCycle } from './cycle.ts';

const skip = missingPrerequisite();

test('saves a dump crash opens to an ext4 disk found by LABEL=, with its dmesg, then powers off', { skip, timeout: 900_000 }, async (t) => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-e2e-disk-'));
  t.after(() => fs.rmSync(base, { recursive: true, force: true }));
  const run = await runCycle({
    name: 'disk', baseDir: base,
    kdumpConf: 'ext4 LABEL=LWE2EDISK\npath /var/crash\ncore_collector makedumpfile -l --message-level 7 -d 31\nfinal_action poweroff\nfailure_action reboot\n',
    sysconfig: `KDUMP_COMMANDLINE_APPEND="${CAPTURE_APPEND}"\n`,
    disks: [{ name: 'dump', sizeMiB: 1024, ext4Label: 'LWE2EDISK' }],
  });
  const tail = run.guest.tail(60);
  assert.ok(run.capture, `the capture kernel never booted:\n${tail}`);
  assert.doesNotMatch(run.capture, INIT_DIED, `PID 1 died in the capture kernel:\n${tail}`);
  assert.equal(finalAction(run.capture), 'poweroff', `final_action poweroff was not taken:\n${tail}`);

  const files = extractExt4Tree(run.prepared.disks.dump!, path.join(base, 'tree')).filter((f) => !f.includes('lost+found'));
  const dump = classifyDumpFiles(files);
  assert.ok(dump.vmcore, `no finished vmcore on the disk (files: ${files.map((f) => path.relative(base, f)).join(', ')}):\n${tail}`);
  assert.equal(dump.incomplete, undefined, 'a vmcore-incomplete was left next to the finished dump');
  // Fedora's layout: <path>/<host ip>-<YYYY-MM-DD-HH:MM:SS>/vmcore
  assert.match(path.relative(path.join(base, 'tree'), dump.vmcore), /^var\/crash\/[^/]+-\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d\/vmcore$/);
  assert.ok(dump.dmesg, 'no vmcore-dmesg.txt next to the dump');
  assert.match(fs.readFileSync(dump.dmesg, 'utf8'), /LASTWORD-E2E-MARKER primary workload/);
  // kexec-dmesg.log: the capture kernel's own log (its command line has reset_devices), then lastword's
  const runLog = fs.readFileSync(path.join(path.dirname(dump.vmcore), 'kexec-dmesg.log'), 'utf8');
  assert.match(runLog, /^=== capture kernel log \(\/dev\/kmsg\) ===\n\[ +0\.000000\] Linux version /);
  assert.match(runLog, /\] Command line: .*reset_devices/);
  assert.match(runLog, /=== lastword ===\n[\s\S]*dump saved/);

  const report = crashReport(crashBinary(), debugVmlinux(run.prepared.kver), dump.vmcore);
  assert.ok(report.ok, `crash could not open the dump:\n${report.output.slice(-3000)}`);
  assert.match(report.output, /sysrq_handle_crash|sysrq/, 'the backtrace does not show the sysrq panic');
  assert.match(report.output, /LASTWORD-E2E-MARKER primary workload/, 'crash `log` lacks the primary kernel\'s marker');
});
