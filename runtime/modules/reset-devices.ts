// reset_devices: the crashed kernel may have left a disk controller or NIC in the middle of DMA.
// With reset_devices on the command line, before the target's drivers bind, we reset the PCI
// functions of the target's class (storage for disk/raw targets, network for NFS/SSH) through
// sysfs (`/sys/bus/pci/devices/<bdf>/reset`, present when the device supports a reset method:
// FLR, PM, or a bus reset). Functions a driver already holds are left alone: resetting under a
// bound driver would break it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Target } from '../config/plan.ts';
import type { System } from '../system/types.ts';

export interface PciFunction {
  /** 0000:00:04.0 */
  bdf: string;
  /** PCI class code, 24 bits: base class << 16 | subclass << 8 | prog-if. */
  classCode: number;
  hasReset: boolean;
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
    case 'ssh': return [PCI_BASE_CLASS_NETWORK];
    case 'stdout': return [];
  }
}

/** Which functions to reset, in bus order. Pure. */
export function pciFunctionsToReset(devices: readonly PciFunction[], target: Target): PciFunction[] {
  const classes = new Set(targetPciClasses(target));
  return devices
    .filter((d) => classes.has(d.classCode >> 16) && d.hasReset && d.driver === undefined)
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
    const link = sysfs.readlink(`${dir}/driver`);
    out.push({ bdf, classCode, hasReset: sysfs.exists(`${dir}/reset`), driver: link === undefined ? undefined : path.basename(link) });
  }
  return out;
}

export interface ResetReport {
  reset: string[];
  failed: { bdf: string; message: string }[];
}

/** Resets the target's unbound PCI functions; a failed reset is logged and the capture goes on. */
export function resetTargetDevices(system: Pick<System, 'log'>, target: Target, sysfs: Sysfs = realSysfs()): ResetReport {
  const report: ResetReport = { reset: [], failed: [] };
  for (const d of pciFunctionsToReset(listPciFunctions(sysfs), target)) {
    try {
      sysfs.writeFile(`bus/pci/devices/${d.bdf}/reset`, '1');
      report.reset.push(d.bdf);
      system.log(`lastword: reset_devices: reset PCI function ${d.bdf} (class ${d.classCode.toString(16).padStart(6, '0')})`);
    } catch (err) {
      const message = (err as Error).message;
      report.failed.push({ bdf: d.bdf, message });
      system.log(`lastword: reset_devices: PCI function ${d.bdf} could not be reset: ${message}`);
    }
  }
  return report;
}
