// The modaliases of this machine's disks and network cards and of every bus device above them
// (the PCI function, the virtio device, the SCSI host...), read from sysfs. The capture kernel
// boots on the same hardware, so these name the drivers it will need.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { HostModaliases } from './needs.ts';

function modaliasesAbove(device: string): string[] {
  const out: string[] = [];
  let dir: string;
  try { dir = fs.realpathSync(device); } catch { return out; }
  while (dir.startsWith('/sys/devices/') && dir !== '/sys/devices') {
    try {
      const a = fs.readFileSync(path.join(dir, 'modalias'), 'utf8').trim();
      if (a) out.push(a);
    } catch { /* not every level has one */ }
    dir = path.dirname(dir);
  }
  return out;
}

function classModaliases(classDir: string, skip: (name: string) => boolean): string[] {
  let names: string[];
  try { names = fs.readdirSync(classDir); } catch { return []; }
  const out = new Set<string>();
  for (const n of names.sort()) {
    if (skip(n)) continue;
    for (const a of modaliasesAbove(path.join(classDir, n, 'device'))) out.add(a);
  }
  return [...out].sort();
}

/**
 * The modaliases above one block device (a partition: above its disk): the drivers the capture
 * needs to see that disk, and only those. None for a device without hardware below it (loop).
 */
export function blockDeviceModaliases(name: string, sysfs = '/sys'): string[] {
  const node = path.join(sysfs, 'class', 'block', name);
  let disk = node;
  try {
    if (fs.existsSync(path.join(node, 'partition'))) disk = path.dirname(fs.realpathSync(node));
  } catch { /* not in sysfs: no modaliases */ }
  return modaliasesAbove(path.join(disk, 'device'));
}

export function hostModaliases(sysfs = '/sys'): HostModaliases {
  return {
    // loop, zram, ram and device-mapper devices have no driver to load in the capture kernel.
    block: classModaliases(path.join(sysfs, 'class', 'block'), (n) => /^(loop|zram|ram|dm-|md|nbd)/.test(n)),
    net: classModaliases(path.join(sysfs, 'class', 'net'), (n) => n === 'lo'),
  };
}
