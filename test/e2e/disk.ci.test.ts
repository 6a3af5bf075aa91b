// E2E, local disk target: a guest that really panics, lastword as PID 1 of the capture kernel saves
// the dump onto an ext4 virtio disk found by LABEL= (kdump.conf `ext4 LABEL=...`), reading
// /proc/vmcore through mmap, and crash opens it.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { crashBinary, debugVmlinux } from '../support/lab.ts';
import { crashReport, diskCapture, e2eDir, missingPrerequisite } from './cycle.ts';

const skip = missingPrerequisite();

test('saves a dump crash opens to an ext4 disk found by LABEL=, with its dmesg, then powers off', { skip, timeout: 900_000 }, async (t) => {
  const base = e2eDir(t, 'disk');
  const { run, dump } = await diskCapture(base, 'disk');
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
  // /proc/vmcore is read through mappings of it (as makedumpfile reads it), not page-by-page read() copies.
  assert.match(runLog, /time: .*\(vmcore read through mmap\)/);

  const report = crashReport(crashBinary(), debugVmlinux(run.prepared.kver), dump.vmcore);
  assert.ok(report.ok, `crash could not open the dump:\n${report.output.slice(-3000)}`);
  assert.match(report.output, /sysrq_handle_crash|sysrq/, 'the backtrace does not show the sysrq panic');
  assert.match(report.output, /LASTWORD-E2E-MARKER primary workload/, 'crash `log` lacks the primary kernel\'s marker');
});
