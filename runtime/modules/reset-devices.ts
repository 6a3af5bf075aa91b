// reset_devices: the crashed kernel may have left a disk controller or NIC in the middle of DMA,
// with queues the capture kernel's driver knows nothing about. With reset_devices on the command
// line, the capture resets the PCI functions of the target's class (storage for disk/raw targets,
// network for NFS/SSH) through sysfs, `/sys/bus/pci/devices/<bdf>/reset`, which exists when the
// function has a reset method (`reset_method`: flr, pm, bus...; QEMU's virtio-pci has FLR when it
// is a PCIe function, e.g. behind a pcie-root-port of a q35 machine, and none on i440fx's PCI bus).
//
// It runs before the capture loads any driver module, so a driver that is a module (virtio_pci,
// nvme, ahci in Debian's kernel) first meets the function freshly reset, which is what a kdump
// user expects from reset_devices. A function whose driver is built in was bound while the kernel
// booted; it is unbound, reset and probed again (drivers_probe), so its driver still starts from a
// reset function. One that serves a mounted filesystem is left alone: unbinding it would pull the
// disk away under the mount. Every reset names the function's BDF on the console.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Target } from '../config/plan.ts';
import type { System } from '../system/types.ts';
import { parseMountInfo } from '../system/mountinfo.ts';

export interface PciFunction {
  /** 0000:00:04.0 */
  bdf: string;
  /** PCI class code, 24 bits: base class << 16 | subclass << 8 | prog-if. */
  classCode: number;
  hasReset: boolean;
  /** reset_method, in the order the kernel tries them (empty when the file is absent). */
  resetMethods: string[];
  /** Bound driver name, if any. */
  driver?: string;
}

// PCI base classes (pci_ids.h PCI_BASE_CLASS_*).
const PCI_BASE_CLASS_STORAGE = 0x01;
const PCI_BASE_CLASS_NETWORK = 0x02;

/** Base classes whose devices the target depends on. */
export function targetPciClasses(target: Target): number[] {
  switch (target.kind) {
    case 'local-fs': return target.fstype === 'virtiofs' ? [] : [PCI_BASE_CLASS_STORAGE];
    case 'raw':
    case 'root': return [PCI_BASE_CLASS_STORAGE];
    case 'nfs':
    case 'ssh':
    case 'ftp': return [PCI_BASE_CLASS_NETWORK];
    case 'stdout': return [];
  }
}

/** Which functions to reset (bound or not), in bus order. Pure. */
export function pciFunctionsToReset(devices: readonly PciFunction[], targets: Target | readonly Target[]): PciFunction[] {
  const classes = new Set((Array.isArray(targets) ? targets : [targets]).flatMap(targetPciClasses));
  return devices
    .filter((d) => classes.has(d.classCode >> 16) && d.hasReset)
    .sort((a, b) => a.bdf.localeCompare(b.bdf));
}

/** The sysfs operations this needs; tests pass a fake, the capture the real one. */
export interface Sysfs {
  readdir(p: string): string[];
  readFile(p: string): string;
  exists(p: string): boolean;
  readlink(p: string): string | undefined;
  writeFile(p: string, data: string): void;
}

export function realSysfs(root = '/sys'): Sysfs {
  const at = (p: string) => path.join(root, p);
  return {
    readdir: (p) => { try { return fs.readdirSync(at(p)); } catch { return []; } },
    readFile: (p) => fs.readFileSync(at(p), 'utf8'),
    exists: (p) => fs.existsSync(at(p)),
    readlink: (p) => { try { return fs.readlinkSync(at(p)); } catch { return undefined; } },
    writeFile: (p, data) => fs.writeFileSync(at(p), data),
  };
}

/** Reads /sys/bus/pci/devices. Paths are relative to the sysfs root. */
export function listPciFunctions(sysfs: Sysfs): PciFunction[] {
  const out: PciFunction[] = [];
  for (const bdf of sysfs.readdir('bus/pci/devices').sort()) {
    const dir = `bus/pci/devices/${bdf}`;
    let classCode: number;
    try {
      classCode = Number.parseInt(sysfs.readFile(`${dir}/class`).trim(), 16);
    } catch {
      continue;
    }
    if (Number.isNaN(classCode)) continue;
    let resetMethods: string[] = [];
    try { resetMethods = sysfs.readFile(`${dir}/reset_method`).trim().split(/\s+/).filter(Boolean); } catch { /* kernels before 5.15, or no method */ }
    const link = sysfs.readlink(`${dir}/driver`);
    out.push({ bdf, classCode, hasReset: sysfs.exists(`${dir}/reset`), resetMethods, driver: link === undefined ? undefined : path.basename(link) });
  }
  return out;
}

/**
 * Block devices (major:minor) below a PCI function: every /sys/class/block entry whose device
 * path runs through the function's BDF.
 */
export function blockDevicesOf(sysfs: Sysfs, bdf: string): string[] {
  const out: string[] = [];
  for (const name of sysfs.readdir('class/block').sort()) {
    const link = sysfs.readlink(`class/block/${name}`);
    if (!link || !link.split('/').includes(bdf)) continue;
    try { out.push(sysfs.readFile(`class/block/${name}/dev`).trim()); } catch { /* gone meanwhile */ }
  }
  return out;
}

/** major:minor of every mounted filesystem's device, from /proc/self/mountinfo text. Pure. */
export function mountedDevices(mountinfo: string): Set<string> {
  return new Set(parseMountInfo(mountinfo).map((e) => e.majorMinor).filter((d) => /^\d+:\d+$/.test(d)));
}

function readMountedDevices(): Set<string> {
  try { return mountedDevices(fs.readFileSync('/proc/self/mountinfo', 'utf8')); } catch { return new Set(); }
}

export interface ResetReport {
  /** BDFs reset, bound ones included */
  reset: string[];
  /** BDFs that were bound: unbound, reset and probed again */
  rebound: string[];
  /** bound functions serving a mounted filesystem, left alone */
  skipped: { bdf: string; why: string }[];
  failed: { bdf: string; message: string }[];
}

export interface ResetOptions {
  /** major:minor of mounted devices; the capture reads /proc/self/mountinfo */
  mounted?: ReadonlySet<string>;
}

/**
 * Resets the target's PCI functions that have a reset method; a failed step is logged and the
 * capture goes on (the driver may still cope: reset_devices is a precaution).
 */
export function resetTargetDevices(system: Pick<System, 'log'>, target: Target | readonly Target[], sysfs: Sysfs = realSysfs(), opts: ResetOptions = {}): ResetReport {
  const report: ResetReport = { reset: [], rebound: [], skipped: [], failed: [] };
  const fns = pciFunctionsToReset(listPciFunctions(sysfs), target);
  const mounted = opts.mounted ?? (fns.some((d) => d.driver !== undefined) ? readMountedDevices() : new Set<string>());
  for (const d of fns) {
    const dir = `bus/pci/devices/${d.bdf}`;
    const what = `PCI function ${d.bdf} (class ${d.classCode.toString(16).padStart(6, '0')}${d.resetMethods.length ? `, reset methods ${d.resetMethods.join(' ')}` : ''})`;
    if (d.driver === undefined) {
      try {
        sysfs.writeFile(`${dir}/reset`, '1');
        report.reset.push(d.bdf);
        system.log(`lastword: reset_devices: reset ${what} before its driver binds`);
      } catch (err) {
        fail(d.bdf, `${what} could not be reset: ${(err as Error).message}`);
      }
      continue;
    }
    const busy = blockDevicesOf(sysfs, d.bdf).filter((dev) => mounted.has(dev));
    if (busy.length) {
      const why = `bound to ${d.driver} and serving mounted block device ${busy.join(', ')}`;
      report.skipped.push({ bdf: d.bdf, why });
      system.log(`lastword: reset_devices: not resetting ${what}: ${why}`);
      continue;
    }
    // Built-in driver: it already bound while the kernel booted. Unbind, reset, probe again.
    try {
      sysfs.writeFile(`${dir}/driver/unbind`, d.bdf);
    } catch (err) {
      fail(d.bdf, `${what}: cannot unbind it from ${d.driver}: ${(err as Error).message}`);
      continue;
    }
    let resetError: string | undefined;
    try { sysfs.writeFile(`${dir}/reset`, '1'); } catch (err) { resetError = (err as Error).message; }
    let probeError: string | undefined;
    try { sysfs.writeFile('bus/pci/drivers_probe', d.bdf); } catch (err) { probeError = (err as Error).message; }
    const driverNow = sysfs.readlink(`${dir}/driver`);
    if (resetError) fail(d.bdf, `${what} could not be reset: ${resetError}`);
    else report.reset.push(d.bdf);
    if (probeError || driverNow === undefined) {
      fail(d.bdf, `${what}: no driver bound it again after the reset${probeError ? `: ${probeError}` : ''}`);
    } else if (!resetError) {
      report.rebound.push(d.bdf);
      system.log(`lastword: reset_devices: reset ${what}: unbound from ${d.driver}, reset, bound to ${path.basename(driverNow)} again`);
    }
  }
  return report;

  function fail(bdf: string, message: string): void {
    report.failed.push({ bdf, message });
    system.log(`lastword: reset_devices: ${message}`);
  }
}
