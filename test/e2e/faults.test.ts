// E2E faults in the real capture kernel. Every case runs with final_action reboot and
// failure_action poweroff, so the kernel's own last line tells which one lastword took; each must
// end with a clear console message, a flagged partial dump where anything could be saved, the
// failure action, and PID 1 still alive (no "Attempted to kill init").
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { crashBinary, debugVmlinux } from '../support/lab.ts';
import { Netns } from '../support/netns.ts';
import { extractExt4Tree } from '../support/qemu.ts';
import {
  CAPTURE_APPEND, CAPTURE_APPEND_NET, classifyDumpFiles, crashReport, e2eDir, ext4Conf, finalAction, HOST_IP,
  INIT_DIED, kdumpFlaggedIncomplete, missingPrerequisite, runCycle, type CycleOptions, type CycleRun,
} from './cycle.ts';

const skip = missingPrerequisite();

async function faultCycle(t: { after(f: () => void): void }, name: string, o: Omit<CycleOptions, 'name' | 'baseDir'>): Promise<{ run: CycleRun; base: string; tail: string }> {
  const base = e2eDir(t, name);
  const run = await runCycle({ ...o, name, baseDir: base });
  const tail = run.guest.tail(60);
  assert.ok(run.capture, `the capture kernel never booted:\n${tail}`);
  assert.doesNotMatch(run.capture, INIT_DIED, `PID 1 died in the capture kernel:\n${tail}`);
  return { run, base, tail };
}

test('NFS server unreachable: a clear message and the failure action', { skip, timeout: 900_000 }, async (t) => {
  const ns = Netns.create('lwnfs0');
  t.after(() => ns.destroy());
  ns.addTap('lwtap0', `${HOST_IP}/24`); // the link is up, nothing serves NFS behind it
  const { run, tail } = await faultCycle(t, 'nfs-unreachable', {
    kdumpConf: `nfs ${HOST_IP}:/srv/crash\npath /var/crash\ncore_collector makedumpfile -l --message-level 7 -d 31\nextra_modules virtio_net\nfinal_action reboot\nfailure_action poweroff\n`,
    sysconfig: `KDUMP_COMMANDLINE_APPEND="${CAPTURE_APPEND_NET}"\n`,
    net: { netns: ns.name, tap: 'lwtap0' },
  });
  assert.match(run.capture, new RegExp(`(nfs|NFS|mount).*${HOST_IP.replace(/\./g, '\\.')}|${HOST_IP.replace(/\./g, '\\.')}.*(nfs|NFS|mount)`), `no console message naming the NFS server:\n${tail}`);
  assert.equal(finalAction(run.capture), 'poweroff', `failure_action poweroff was not taken:\n${tail}`);
});

test('disk too small: a flagged incomplete dump that crash opens, a clear message and the failure action', { skip, timeout: 900_000 }, async (t) => {
  const { run, base, tail } = await faultCycle(t, 'disk-small', {
    // -d 31 -l of this guest is ~37 MB; an 24 MiB filesystem holds part of it
    kdumpConf: ext4Conf('LWSMALL', 'reboot', 'poweroff'),
    sysconfig: `KDUMP_COMMANDLINE_APPEND="${CAPTURE_APPEND}"\n`,
    disks: [{ name: 'dump', sizeMiB: 24, ext4Label: 'LWSMALL' }],
  });
  assert.match(run.capture, /ETARGET_FULL|No space left|ENOSPC|full/i, `no console message about the full disk:\n${tail}`);
  assert.equal(finalAction(run.capture), 'poweroff', `failure_action poweroff was not taken:\n${tail}`);
  const files = extractExt4Tree(run.prepared.disks.dump!, path.join(base, 'tree'));
  const dump = classifyDumpFiles(files);
  assert.equal(dump.vmcore, undefined, 'a dump that did not fit carries the finished name');
  assert.ok(dump.incomplete, `no partial dump was kept (files: ${files.map((f) => path.basename(f)).join(', ')})`);
  assert.ok(kdumpFlaggedIncomplete(dump.incomplete), 'the partial dump is not flagged DUMP_DH_COMPRESSED_INCOMPLETE in its header');
  // Written crash-first, the part that fit opens in crash (--zero_excluded: the pages past the cut read as zeros).
  const report = crashReport(crashBinary(), debugVmlinux(run.prepared.kver), dump.incomplete, { args: ['--zero_excluded'], commands: ['sys', 'bt', 'log', 'ps'] });
  assert.ok(report.ok, `crash does not open the partial dump:\n${report.output.slice(0, 4000)}`);
  assert.match(report.output, /PANIC: "/, report.output.slice(0, 4000));
  assert.match(report.output, /#1 \[[0-9a-f]+\] __crash_kexec at/, report.output.slice(0, 4000));
  assert.match(report.output, /sysrq: Trigger a crash/, report.output.slice(0, 4000));
});

test('a blacklisted module the ext4 target would pull in is not loaded: a clear message and the failure action', { skip, timeout: 900_000 }, async (t) => {
  // jbd2 is a dependency of ext4: modprobe.blacklist= must hold for dependencies too, for lastword's
  // own modprobe and for the kernel's request_module("fs-ext4") that mount(2) makes. The blacklist is
  // on the capture command line only (added to what `lastword load --dry-run` would load, which the
  // image's builder did not see), so the image still holds ext4 and jbd2 and the capture itself must
  // refuse them; one in the configs' KDUMP_COMMANDLINE_APPEND keeps them out of the image already
  // (test/initramfs/builder.test.ts).
  const { run, base, tail } = await faultCycle(t, 'blacklist', {
    kdumpConf: ext4Conf('LWBLACK', 'reboot', 'poweroff'),
    sysconfig: `KDUMP_COMMANDLINE_APPEND="${CAPTURE_APPEND}"\n`,
    loadCommand: `eval "$(lastword load --dry-run | sed "s/'--command-line=/'--command-line=modprobe.blacklist=jbd2 /")"`,
    disks: [{ name: 'dump', sizeMiB: 1024, ext4Label: 'LWBLACK' }],
  });
  assert.match(run.capture, /EMODULE_BLACKLISTED: module ext4 needs jbd2, which is blacklisted \(modprobe\.blacklist=/, `no console message naming ext4 and the blacklisted jbd2:\n${tail}`);
  assert.match(run.capture, /refusing the kernel's request for module fs-ext4: module ext4 needs jbd2/, `the kernel's own module request was not held to the blacklist:\n${tail}`);
  assert.doesNotMatch(run.capture, /EXT4-fs \(vd[a-z]\): mounted filesystem/, 'ext4 was mounted although its dependency jbd2 is blacklisted');
  assert.doesNotMatch(run.capture, /JBD2|jbd2: /, 'jbd2 printed: it was loaded');
  assert.match(run.capture, /cannot mount LABEL=LWBLACK .* as ext4/, `no console message about the target that cannot be mounted:\n${tail}`);
  assert.equal(finalAction(run.capture), 'poweroff', `failure_action poweroff was not taken:\n${tail}`);
  const dump = classifyDumpFiles(extractExt4Tree(run.prepared.disks.dump!, path.join(base, 'tree')));
  assert.equal(dump.vmcore, undefined);
});

test('reset_devices on the capture command line: the target disk is reset and the dump is saved', { skip, timeout: 900_000 }, async (t) => {
  // q35 with the disk behind a pcie-root-port: its virtio-pci function is PCIe and offers FLR
  // (i440fx's conventional PCI functions have no reset method). The dump disk is bus 01.
  const { run, base, tail } = await faultCycle(t, 'reset-devices', {
    kdumpConf: ext4Conf('LWRESET', 'poweroff', 'reboot'),
    sysconfig: `KDUMP_COMMANDLINE_APPEND="${CAPTURE_APPEND}"\n`, // holds reset_devices
    disks: [{ name: 'dump', sizeMiB: 1024, ext4Label: 'LWRESET' }],
    machine: 'q35',
  });
  assert.match(run.capture, /Command line:.*reset_devices/, 'reset_devices is not on the capture command line');
  const reset = /lastword: reset_devices: reset PCI function 0000:01:00\.0 \(class 010000, reset methods [^)]*\bflr\b[^)]*\) before its driver binds/.exec(run.capture);
  assert.ok(reset, `no console message about resetting the dump disk's PCI function 0000:01:00.0:\n${tail}`);
  const firstBind = run.capture.search(/virtio_blk virtio\d+: \[vda\]/);
  assert.ok(firstBind > reset.index, `the disk's driver bound before the reset:\n${tail}`);
  assert.doesNotMatch(run.capture, /reset_devices: .*(could not|cannot|no driver)/, `a reset step failed:\n${tail}`);
  assert.equal(finalAction(run.capture), 'poweroff', `final_action poweroff was not taken:\n${tail}`);
  const dump = classifyDumpFiles(extractExt4Tree(run.prepared.disks.dump!, path.join(base, 'tree')));
  assert.ok(dump.vmcore, 'no finished vmcore after reset_devices');
  const report = crashReport(crashBinary(), debugVmlinux(run.prepared.kver), dump.vmcore);
  assert.ok(report.ok, `crash could not open the dump saved after reset_devices:\n${report.output.slice(-3000)}`);
  assert.match(report.output, /sysrq_handle_crash|sysrq/, 'the backtrace does not show the sysrq panic');
});

test('a kdump_pre that fails: it runs with the dump disk mounted, a message naming it and its status, no dump, the final action (as kdump.sh)', { skip, timeout: 900_000 }, async (t) => {
  const pre = '/usr/local/sbin/kdump-pre-fails.sh';
  const { run, base, tail } = await faultCycle(t, 'kdump-pre', {
    kdumpConf: ext4Conf('LWPRE', 'poweroff', 'reboot', [`kdump_pre ${pre}`]),
    sysconfig: `KDUMP_COMMANDLINE_APPEND="${CAPTURE_APPEND}"\n`,
    // kdump.sh runs kdump_pre with the target mounted by dracut: the program sees it in /proc/mounts
    guestFiles: { [pre]: { data: '#!/bin/sh\nwhile read -r dev mnt fs rest; do [ "$fs" = ext4 ] && echo "kdump-pre-fails: target mounted at $mnt"; done < /proc/mounts\necho "kdump-pre-fails: giving up"\nexit 3\n', mode: 0o755 } },
    disks: [{ name: 'dump', sizeMiB: 1024, ext4Label: 'LWPRE' }],
  });
  assert.match(run.capture, /kdump-pre-fails: giving up/, `the kdump_pre program did not run:\n${tail}`);
  assert.match(run.capture, /kdump-pre-fails: target mounted at \//, `the dump disk was not mounted when kdump_pre ran:\n${tail}`);
  assert.match(run.capture, /kdump-pre-fails\.sh.*\b3\b|\b3\b.*kdump-pre-fails\.sh/, `no message naming kdump_pre and its exit status:\n${tail}`);
  // kdump.conf(5): "non 0 - run the final action"; failure_action (reboot) is not taken
  assert.equal(finalAction(run.capture), 'poweroff', `final_action poweroff was not taken:\n${tail}`);
  assert.match(run.capture, /kdump_pre failed, no dump; final action: poweroff/, tail);
  const dump = classifyDumpFiles(extractExt4Tree(run.prepared.disks.dump!, path.join(base, 'tree')));
  assert.equal(dump.vmcore, undefined, 'a dump was saved although kdump_pre failed');
});
