// The filesystems PID 1 mounts before anything else runs: the kernel hands the initramfs over with
// nothing mounted. A mount that fails is logged and the boot goes on; the capture reports what it
// then cannot do (a missing /proc/vmcore is its error, not a reason for PID 1 to stop).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeError } from '../errors.ts';
import { MS, type System } from '../system/types.ts';

export interface EarlyMount {
  source: string;
  target: string;
  fstype: string;
  flags: number;
  data: string;
}

export const EARLY_MOUNTS: readonly EarlyMount[] = [
  { source: 'proc', target: '/proc', fstype: 'proc', flags: MS.NOSUID | MS.NODEV | MS.NOEXEC, data: '' },
  { source: 'sysfs', target: '/sys', fstype: 'sysfs', flags: MS.NOSUID | MS.NODEV | MS.NOEXEC, data: '' },
  // devtmpfs: the kernel creates the nodes of every device it finds; no udev in the capture
  { source: 'devtmpfs', target: '/dev', fstype: 'devtmpfs', flags: MS.NOSUID, data: 'mode=0755' },
  { source: 'tmpfs', target: '/run', fstype: 'tmpfs', flags: MS.NOSUID | MS.NODEV, data: 'mode=0755' },
  { source: 'tmpfs', target: '/tmp', fstype: 'tmpfs', flags: MS.NOSUID | MS.NODEV, data: 'mode=1777' },
];

/** Mounts EARLY_MOUNTS under `root` ('/' as PID 1); returns the targets that are mounted. */
export function mountEarly(system: Pick<System, 'mount' | 'log'>, root = '/'): string[] {
  const done: string[] = [];
  for (const m of EARLY_MOUNTS) {
    const target = path.join(root, m.target);
    try {
      fs.mkdirSync(target, { recursive: true, mode: 0o755 });
      system.mount(m.source, target, m.fstype, m.flags, m.data);
      done.push(m.target);
    } catch (err) {
      // EBUSY: already mounted (CONFIG_DEVTMPFS_MOUNT, or a second init run)
      if ((err as NodeJS.ErrnoException).code === 'EBUSY') done.push(m.target);
      else system.log(`lastword: cannot mount ${m.fstype} on ${m.target}: ${describeError(err)}`);
    }
  }
  return done;
}

/**
 * Puts /dev/console on fds 0, 1 and 2. The kernel opened it for init from the initramfs' own
 * /dev/console node; devtmpfs on /dev now hides that node, and the rescue shell and kdump_pre
 * must find the console on their standard fds whatever the initramfs carried.
 */
export function takeConsole(system: Pick<System, 'dup2' | 'log'>, root = '/'): boolean {
  let fd: number;
  try {
    fd = fs.openSync(path.join(root, 'dev/console'), fs.constants.O_RDWR | fs.constants.O_NOCTTY);
  } catch (err) {
    system.log(`lastword: cannot open /dev/console: ${describeError(err)}`);
    return false;
  }
  try {
    for (const to of [0, 1, 2]) system.dup2(fd, to);
    return true;
  } catch (err) {
    system.log(`lastword: cannot take /dev/console for fds 0-2: ${describeError(err)}`);
    return false;
  } finally {
    fs.closeSync(fd);
  }
}
