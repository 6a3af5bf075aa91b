// E2E, `lastword initramfs --image-on`: the read-only image (lastword, kmod, the libraries) lives on
// the guest's ext4 disk, not in the capture initramfs, as Debian's kdump-tools runs from the root
// filesystem. The capture kernel's /init loads ext4 and the disk's drivers with busybox insmod,
// finds the disk by the UUID it had when the image was built, mounts it read-only and the image from
// it; lastword then saves the dump onto that same disk (kdump.conf `ext4 LABEL=...`), remounting it
// read-write, and crash opens the dump. The capture runs in PID 1 itself, as in a small reservation.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { crashBinary, debugVmlinux } from '../support/lab.ts';
import { CAPTURE_APPEND, IMAGE_ON_DISK_PATH, crashReport, diskCapture, e2eDir, missingPrerequisite } from './cycle.ts';

const skip = missingPrerequisite();

test('runs from an image on the dump disk, mounted by UUID, and saves onto that disk a dump crash opens', { skip, timeout: 900_000 }, async (t) => {
  const base = e2eDir(t, 'image-on-disk');
  // The capture in PID 1 itself, as below 112 MB of MemTotal (128M, where this layout is meant to
  // run, is too close to the edge for CI under TCG): asked for on the command line here.
  const { run, files, dump, tail } = await diskCapture(base, 'image-on-disk', undefined, {
    imageOnDisk: 'dump', sysconfig: `KDUMP_COMMANDLINE_APPEND="${CAPTURE_APPEND} lastword.capture_in_pid1=1"\n`,
  });
  assert.match(run.capture, /lastword: capture in PID 1 \(lastword\.capture_in_pid1=1\)/, tail);
  assert.match(run.capture, /lastword: capture succeeded \(in PID 1\): dump saved/, tail);
  assert.doesNotMatch(run.capture, /lastword: capture: \S+ save --capture/, 'no capture child');
  // the initramfs no longer carries the image (~28 MB of the ~35 MB default one)
  const initrd = fs.statSync(run.prepared.captureInitrd).size;
  const image = files.find((f) => f.endsWith(IMAGE_ON_DISK_PATH));
  assert.ok(image, `the image is not on the disk: ${files.join(', ')}`);
  assert.ok(initrd < 8 << 20 && fs.statSync(image).size > 3 * initrd, `initramfs ${initrd} B, image on the disk ${fs.statSync(image).size} B`);
  assert.doesNotMatch(run.capture, /lastword cannot run|no disk with UUID=/, tail);
  // the disk /init mounted read-only is the dump target: lastword remounts it read-write
  assert.match(run.capture, /is mounted read-only on \/usr\/lib\/lastword\/disk \(the image lastword runs from\); remounting it read-write for the dump/, tail);
  assert.equal(dump.incomplete, undefined, 'a vmcore-incomplete was left next to the finished dump');
  assert.ok(dump.dmesg, 'no vmcore-dmesg.txt next to the dump');
  const report = crashReport(crashBinary(), debugVmlinux(run.prepared.kver), dump.vmcore);
  assert.ok(report.ok, `crash could not open the dump:\n${report.output.slice(-3000)}`);
  assert.match(report.output, /LASTWORD-E2E-MARKER primary workload/, 'crash `log` lacks the primary kernel\'s marker');
  assert.ok(path.isAbsolute(dump.vmcore));
});
