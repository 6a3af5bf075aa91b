// Waiting for the target's block device by path, UUID=, LABEL=, PARTUUID= or PARTLABEL=, without udev:
// the kernel lists block devices in /sys/class/block and devtmpfs makes their /dev nodes; we
// read each one's superblock (superblock.ts) until one matches or the disk timeout runs out.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LastwordError } from '../errors.ts';
import type { DeviceSpec } from '../config/plan.ts';
import { describeDevice } from '../config/target-spec.ts';
import type { System } from '../system/types.ts';
import { partitionTableBytes, readPartitionIds, type PartitionId } from './partition-table.ts';
import { PROBE_BYTES, probeSuperblock, type FsIdentity } from './superblock.ts';

export interface BlockDevice {
  name: string;
  /** /dev node (under the given root). */
  dev: string;
  /** Filesystem found on it, if any. */
  fs?: FsIdentity;
  /** GPT partition name (the kernel's uevent PARTNAME=, or the GPT entry). */
  partname?: string;
  /** GPT unique partition GUID, or the MBR form SSSSSSSS-PP. */
  partuuid?: string;
}

export interface BlockRoots {
  /** Where /sys and /dev are; '/' in the capture, a temp tree in tests. */
  sysfs?: string;
  dev?: string;
}

function readProbe(dev: string, bytes = PROBE_BYTES): Buffer | undefined {
  let fd: number;
  try {
    fd = fs.openSync(dev, 'r');
  } catch {
    return undefined; // node not there yet, or no medium
  }
  try {
    const buf = Buffer.alloc(bytes);
    let got = 0;
    while (got < buf.length) {
      const n = fs.readSync(fd, buf, got, buf.length - got, got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/** Every block device the kernel knows now, with what its superblock says. */
export function listBlockDevices(roots: BlockRoots = {}): BlockDevice[] {
  const sys = path.join(roots.sysfs ?? '/sys', 'class/block');
  const devDir = roots.dev ?? '/dev';
  let names: string[];
  try {
    names = fs.readdirSync(sys).sort();
  } catch {
    return [];
  }
  const out: BlockDevice[] = [];
  const tables = new Map<string, PartitionId[]>();
  // A partition's table is on its parent disk: /sys/class/block/sda1 -> .../block/sda/sda1.
  const partitionId = (name: string): PartitionId | undefined => {
    let number: number;
    let parent: string;
    try {
      number = Number(fs.readFileSync(path.join(sys, name, 'partition'), 'utf8').trim());
      parent = path.basename(path.dirname(fs.realpathSync(path.join(sys, name))));
    } catch {
      return undefined; // a whole disk
    }
    if (!tables.has(parent)) {
      let lbs = 512;
      try { lbs = Number(fs.readFileSync(path.join(sys, parent, 'queue/logical_block_size'), 'utf8').trim()) || 512; } catch { /* 512 */ }
      const buf = readProbe(path.join(devDir, parent), partitionTableBytes(lbs));
      tables.set(parent, buf ? readPartitionIds(buf, lbs) : []);
    }
    return tables.get(parent)!.find((p) => p.number === number);
  };
  for (const name of names) {
    const dev = path.join(devDir, name);
    let partname: string | undefined;
    try {
      const m = /^PARTNAME=(.*)$/m.exec(fs.readFileSync(path.join(sys, name, 'uevent'), 'utf8'));
      partname = m?.[1];
    } catch { /* no uevent: not a partition we can name */ }
    // A zero-size device (an unbound loop, an empty drive) has nothing to probe.
    try {
      if (fs.readFileSync(path.join(sys, name, 'size'), 'utf8').trim() === '0') continue;
    } catch { /* size missing: probe anyway */ }
    const buf = readProbe(dev);
    const part = partitionId(name);
    out.push({ name, dev, fs: buf ? probeSuperblock(buf) : undefined, partname: partname ?? part?.partlabel, partuuid: part?.partuuid });
  }
  return out;
}

/** Does `d` match the config's device spec? Pure. */
export function matchesDevice(spec: DeviceSpec, d: BlockDevice): boolean {
  switch (spec.by) {
    case 'uuid': return d.fs !== undefined && d.fs.uuid === spec.uuid.toLowerCase();
    case 'label': return d.fs !== undefined && d.fs.label === spec.label;
    case 'partlabel': return d.partname === spec.partlabel;
    case 'path': return d.dev === spec.path || d.name === path.basename(spec.path);
    case 'partuuid': return d.partuuid !== undefined && d.partuuid === spec.partuuid.toLowerCase();
  }
}

export interface WaitOptions extends BlockRoots {
  timeoutMs: number;
  pollMs?: number;
}

/**
 * Resolves the device spec to a /dev node, polling until it appears or `timeoutMs` passes. A path
 * that exists is taken as is (a /dev/mapper or /dev/vg/lv node too). The timeout error lists what
 * was seen, so the admin can tell a missing driver from a wrong UUID.
 */
export async function waitForBlockDevice(system: Pick<System, 'now' | 'sleep' | 'log'>, spec: DeviceSpec, opts: WaitOptions): Promise<string> {
  const deadline = system.now() + opts.timeoutMs;
  const pollMs = opts.pollMs ?? 250;
  let told = false;
  for (;;) {
    if (spec.by === 'path') {
      const p = opts.dev && spec.path.startsWith('/dev/') ? path.join(opts.dev, spec.path.slice(5)) : spec.path;
      if (fs.existsSync(p)) return p;
    }
    const devices = spec.by === 'path' ? [] : listBlockDevices(opts);
    const hit = devices.find((d) => matchesDevice(spec, d));
    if (hit) return hit.dev;
    if (system.now() >= deadline) {
      const seen = listBlockDevices(opts)
        .map((d) => `${d.name}${d.fs ? ` ${d.fs.fstype} UUID=${d.fs.uuid}${d.fs.label ? ` LABEL=${d.fs.label}` : ''}` : ''}${d.partuuid ? ` PARTUUID=${d.partuuid}` : ''}`)
        .join('; ');
      throw new LastwordError('EDEVICE_TIMEOUT',
        `no block device ${describeDevice(spec)} after ${Math.round(opts.timeoutMs / 1000)} s (seen: ${seen || 'no block devices'}); is its driver in the initramfs and not blacklisted?`);
    }
    if (!told) {
      system.log(`lastword: waiting up to ${Math.round(opts.timeoutMs / 1000)} s for ${describeDevice(spec)}`);
      told = true;
    }
    await system.sleep(pollMs);
  }
}
