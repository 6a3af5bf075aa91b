// Hardware drivers without udev: every device the kernel found exposes a `modalias` in sysfs;
// `modprobe -b -a <aliases>` loads the drivers for them, honouring the blacklist (-b for the
// alias itself, our modprobe.d `install X /bin/false` for its dependencies). New buses appear
// once a bridge driver binds (virtio_pci -> virtio devices), so we repeat until no new aliases.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { System } from '../system/types.ts';

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
}

/** Loads drivers for the devices present; returns how many aliases were handed to modprobe. */
export async function coldplug(system: System, opts: ColdplugOptions = {}): Promise<number> {
  const seen = new Set<string>();
  const [file, ...pre] = [opts.modprobe ?? 'modprobe'];
  for (let round = 0; round < (opts.rounds ?? 4); round++) {
    const fresh = readModaliases(opts.sysfsRoot).filter((a) => !seen.has(a));
    if (!fresh.length) break;
    fresh.forEach((a) => seen.add(a));
    // -q: an alias no module serves is normal (bridges, CPUs); -b: blacklisted aliases are skipped.
    const r = await system.exec(file!, [...pre, ...(opts.modprobeArgs ?? []), '-q', '-b', '-a', ...fresh], { timeoutMs: opts.timeoutMs ?? 120_000 });
    if (r.exitCode !== 0 && r.stderr.trim()) system.log(`lastword: coldplug: ${r.stderr.trim().split('\n').pop()}`);
    // Let drivers probe and register the devices on the buses they bring.
    await system.sleep(200);
  }
  return seen.size;
}
