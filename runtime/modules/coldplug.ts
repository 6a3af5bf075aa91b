// Hardware drivers without udev: every device the kernel found exposes a `modalias` in sysfs;
// `modprobe -b -a <aliases>` loads the drivers for them. Each alias is first resolved against the
// module index: a driver that is, or needs, a blacklisted module is dropped with a console line
// (kmod's -b would only drop the first kind), and its allowed alternatives are named instead.
// New buses appear once a bridge driver binds (virtio_pci -> virtio devices), so we repeat until
// no new aliases.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { System } from '../system/types.ts';
import { describeBlocked, resolveRequest } from './closure.ts';
import type { ModuleGuard } from './load.ts';

/** Every modalias under /sys/bus/<bus>/devices/<dev>/modalias, sorted and unique. */
export function readModaliases(sysfsRoot = '/sys'): string[] {
  const out = new Set<string>();
  const buses = path.join(sysfsRoot, 'bus');
  let names: string[] = [];
  try { names = fs.readdirSync(buses); } catch { return []; }
  for (const bus of names) {
    const devs = path.join(buses, bus, 'devices');
    let entries: string[] = [];
    try { entries = fs.readdirSync(devs); } catch { continue; }
    for (const d of entries) {
      try {
        const a = fs.readFileSync(path.join(devs, d, 'modalias'), 'utf8').trim();
        if (a) out.add(a);
      } catch { /* no modalias: nothing to load for it */ }
    }
  }
  return [...out].sort();
}

export interface ColdplugOptions {
  modprobe?: string;
  sysfsRoot?: string;
  /** Extra modprobe arguments, e.g. ['-C', dir] when the blacklist file is not in a kmod directory. */
  modprobeArgs?: string[];
  rounds?: number;
  timeoutMs?: number;
  /** The module index and what must not load; without it, kmod's -b is the only filter. */
  guard?: ModuleGuard;
}

/**
 * What to hand modprobe for these aliases: an alias none of whose drivers is blocked as it is,
 * otherwise its allowed drivers by name. Pure.
 */
export function coldplugRequests(aliases: readonly string[], guard: ModuleGuard | undefined, log: (line: string) => void): string[] {
  if (!guard) return [...aliases];
  const out: string[] = [];
  const told = new Set<string>();
  for (const a of aliases) {
    const r = resolveRequest(guard.index, guard.blocked, a);
    if (!r.blocked.length) { out.push(a); continue; }
    for (const b of r.blocked) {
      if (told.has(b.module)) continue;
      told.add(b.module);
      log(`lastword: coldplug: not loading ${b.module} for device ${a}: ${describeBlocked(b)}`);
    }
    out.push(...r.allowed);
  }
  return [...new Set(out)];
}

/** Loads drivers for the devices present; returns how many aliases were handed to modprobe. */
export async function coldplug(system: System, opts: ColdplugOptions = {}): Promise<number> {
  const seen = new Set<string>();
  const [file, ...pre] = [opts.modprobe ?? 'modprobe'];
  for (let round = 0; round < (opts.rounds ?? 4); round++) {
    const fresh = readModaliases(opts.sysfsRoot).filter((a) => !seen.has(a));
    if (!fresh.length) break;
    fresh.forEach((a) => seen.add(a));
    const wanted = coldplugRequests(fresh, opts.guard, (l) => system.log(l));
    if (!wanted.length) break;
    // -q: an alias no module serves is normal (bridges, CPUs); -b: blacklisted aliases are skipped.
    const r = await system.exec(file!, [...pre, ...(opts.modprobeArgs ?? []), '-q', '-b', '-a', ...wanted], { timeoutMs: opts.timeoutMs ?? 120_000 });
    if (r.exitCode !== 0 && r.stderr.trim()) system.log(`lastword: coldplug: ${r.stderr.trim().split('\n').pop()}`);
    // Let drivers probe and register the devices on the buses they bring.
    await system.sleep(200);
  }
  return seen.size;
}
