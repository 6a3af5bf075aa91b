// E2E, raw device target (kdump.conf `raw /dev/vda`): lastword writes a flattened stream onto the
// block device, as Fedora's kdump.sh does with `makedumpfile -F | dd`; the reference makedumpfile -R
// reassembles it on the host and crash opens the result.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { crashBinary, debugVmlinux } from '../support/lab.ts';
import {
  CAPTURE_APPEND, crashReport, e2eDir, finalAction, INIT_DIED, missingPrerequisite, reassemble, runCycle,
} from './cycle.ts';

const skip = missingPrerequisite();

test('writes a flattened dump onto a raw virtio device that makedumpfile -R reassembles and crash opens', { skip, timeout: 900_000 }, async (t) => {
  const base = e2eDir(t, 'raw');
  const run = await runCycle({
    name: 'raw', baseDir: base,
    kdumpConf: 'raw /dev/vda\ncore_collector makedumpfile -l --message-level 7 -d 31\nfinal_action poweroff\nfailure_action reboot\n',
    sysconfig: `KDUMP_COMMANDLINE_APPEND="${CAPTURE_APPEND}"\n`,
    disks: [{ name: 'raw', sizeMiB: 1024 }],
  });
  const tail = run.guest.tail(60);
  assert.ok(run.capture, `the capture kernel never booted:\n${tail}`);
  assert.doesNotMatch(run.capture, INIT_DIED, `PID 1 died in the capture kernel:\n${tail}`);
  assert.equal(finalAction(run.capture), 'poweroff', `final_action poweroff was not taken:\n${tail}`);
  const head = Buffer.alloc(16);
  const fd = fs.openSync(run.prepared.disks.raw!, 'r');
  fs.readSync(fd, head, 0, 16, 0);
  fs.closeSync(fd);
  assert.equal(head.toString('latin1', 0, 16).replace(/\0+$/, ''), 'makedumpfile', `the device does not start with a flattened header:\n${tail}`);
  const dump = reassemble(run.prepared.disks.raw!, path.join(base, 'vmcore'));
  const report = crashReport(crashBinary(), debugVmlinux(run.prepared.kver), dump);
  assert.ok(report.ok, `crash could not open the reassembled dump:\n${report.output.slice(-3000)}`);
  assert.match(report.output, /LASTWORD-E2E-MARKER primary workload/);
});
