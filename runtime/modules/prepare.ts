// Making the dump target reachable, in the order the capture needs it: reset the target's PCI
// functions (reset_devices) before any driver binds, load hardware drivers (coldplug) and the
// target's modules minus every blacklist, then wait for the block device. For NFS and SSH
// targets the capture then calls network/bringup.ts (a later stage). Each step is usable alone.
import { planTargets, type Plan } from '../config/plan.ts';
import type { System } from '../system/types.ts';
import { resolveBlacklist } from './blacklist.ts';
import { waitForBlockDevice, type BlockRoots } from './blockdev.ts';
import { coldplug } from './coldplug.ts';
import { installModprobeGate, type GateOptions } from './gate.ts';
import { loadModules, moduleGuard, modulesDirOf, targetModules, type LoadReport, type ModprobeOptions, type ModuleGuard } from './load.ts';
import { realSysfs, resetTargetDevices, type ResetReport, type Sysfs } from './reset-devices.ts';

export interface PrepareOptions {
  modprobe?: ModprobeOptions;
  sysfs?: Sysfs;
  sysfsRoot?: string;
  blockRoots?: BlockRoots;
  /** false: the initramfs has no module tree (everything built in). */
  modules?: boolean;
  /** Where the kernel's module-request gate goes (gate.ts); false: leave /proc/sys/kernel/modprobe alone. */
  gate?: GateOptions | false;
}

export interface PreparedTarget {
  reset?: ResetReport;
  modules?: LoadReport;
  /** /dev node of a local-fs or raw target. */
  device?: string;
}

/** Throws the LastwordError of the step that failed (EDEVICE_TIMEOUT...), for the failure action. */
export async function prepareTarget(system: System, plan: Plan, opts: PrepareOptions = {}): Promise<PreparedTarget> {
  const out: PreparedTarget = {};
  const t = plan.target;
  if (plan.modules.resetDevices) out.reset = resetTargetDevices(system, planTargets(plan), opts.sysfs ?? realSysfs(opts.sysfsRoot ?? '/sys'));
  if (opts.modules !== false) {
    const blacklist = resolveBlacklist(plan);
    const guard: ModuleGuard = moduleGuard(blacklist, modulesDirOf(opts.modprobe), (l) => system.log(l));
    // Before anything here can make the kernel ask for a module (a mount, a new device).
    if (opts.gate !== false) installModprobeGate(system, guard.blocked, { modprobe: opts.modprobe?.modprobe, ...opts.gate });
    // Writes the modprobe.d blacklist first, so coldplug's modprobe honours it too.
    out.modules = await loadModules(system, targetModules(plan), guard, blacklist, opts.modprobe);
    const confDir = opts.modprobe?.confDir;
    const extra = confDir && !['/run/modprobe.d', '/etc/modprobe.d'].includes(confDir) ? ['-C', confDir] : [];
    await coldplug(system, { modprobe: opts.modprobe?.modprobe, sysfsRoot: opts.sysfsRoot, modprobeArgs: extra, guard });
  }
  if (t.kind === 'local-fs' && t.fstype !== 'virtiofs') {
    out.device = await waitForBlockDevice(system, t.device, { ...opts.blockRoots, timeoutMs: plan.modules.diskTimeoutMs });
  } else if (t.kind === 'raw') {
    out.device = await waitForBlockDevice(system, t.device, { ...opts.blockRoots, timeoutMs: plan.modules.diskTimeoutMs });
  }
  return out;
}
