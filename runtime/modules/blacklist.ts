// Every blacklist in one list: kdump.conf `blacklist`, modprobe.blacklist= / module_blacklist= /
// rd.driver.blacklist= / lastword.blacklist= on the command line (all already in the Plan), and
// the shipped lists in blacklist/*.conf (`<module> <reason>` per line). The initramfs builder
// leaves these modules out; the capture refuses to load them, even as a dependency.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LastwordError } from '../errors.ts';
import { sourceAt, type BlacklistEntry, type Plan } from '../config/plan.ts';

/** modprobe treats '-' and '_' in module names alike. */
export function normalizeModule(name: string): string {
  return name.replace(/-/g, '_');
}

/** Parses a shipped list: `<module> <reason...>`, `#` comments. A module without a reason is an error. */
export function parseBlacklistFile(text: string, file: string): BlacklistEntry[] {
  const out: BlacklistEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const s = raw.replace(/#.*$/, '').trim();
    if (s === '') return;
    const m = /^(\S+)\s+(.+)$/.exec(s);
    if (!m) {
      throw new LastwordError('EBLACKLIST_SYNTAX', `${file}:${i + 1}: '${s}' has no reason; write '<module> <why it must not load>'`, { where: { file, line: i + 1 } });
    }
    out.push({ module: normalizeModule(m[1]!), reason: m[2]!, source: { file, line: i + 1 } });
  });
  return out;
}

/**
 * Where the shipped lists are: in the capture initramfs and an installed system
 * /usr/lib/lastword/blacklist (the builder copies blacklist/*.conf there), an admin's additions
 * in /etc/lastword/blacklist.d, and the source tree when run from a checkout.
 */
export function shippedBlacklistDirs(): string[] {
  const dirs = ['/usr/lib/lastword/blacklist', '/etc/lastword/blacklist.d'];
  // import.meta.dirname is undefined inside the bundled executable; only a checkout has it.
  const here = import.meta.dirname as string | undefined;
  if (here) dirs.push(path.resolve(here, '../../blacklist'));
  return dirs;
}

/** Reads every *.conf of the shipped-list directories that exist, in name order. */
export function readShippedBlacklists(dirs: readonly string[] = shippedBlacklistDirs()): BlacklistEntry[] {
  const out: BlacklistEntry[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = fs.readdirSync(dir).filter((n) => n.endsWith('.conf')).sort();
    } catch {
      continue;
    }
    for (const n of names) out.push(...parseBlacklistFile(fs.readFileSync(path.join(dir, n), 'utf8'), path.join(dir, n)));
  }
  return out;
}

/**
 * The complete blacklist for a plan: the plan's own entries first (configs and cmdline), then the
 * shipped lists; one entry per module (the first source wins), names normalised.
 */
export function resolveBlacklist(plan: Plan, shipped: readonly BlacklistEntry[] = readShippedBlacklists()): BlacklistEntry[] {
  const seen = new Map<string, BlacklistEntry>();
  for (const e of [...plan.modules.blacklist, ...shipped]) {
    const module = normalizeModule(e.module);
    if (!seen.has(module)) seen.set(module, { ...e, module });
  }
  // A module the admin asked for with extra_modules beats a shipped entry, never a config one.
  const extra = new Set(plan.modules.extra.map(normalizeModule));
  const fromConfig = new Set(plan.modules.blacklist.map((e) => normalizeModule(e.module)));
  return [...seen.values()].filter((e) => fromConfig.has(e.module) || !extra.has(e.module));
}

/**
 * A modprobe.d file for kmod's own use (a modprobe typed in the rescue shell): `blacklist` stops
 * alias matches (with modprobe -b), `install X /bin/false` stops loading X by name and as the
 * dependency of something else, but only while X has no soft dependencies (kmod 30 ignores the
 * install command of such a module: jbd2, ext4). The capture does not rely on it: closure.ts
 * decides, and gate.ts holds the kernel's own requests to the same answer.
 */
export function modprobeBlacklistConf(entries: readonly BlacklistEntry[]): string {
  const lines = ['# Written by lastword: every blacklist of the kdump configuration and the kernel command line.'];
  for (const e of entries) {
    const where = sourceAt(e.source);
    lines.push(`# ${e.reason} (${where})`, `blacklist ${e.module}`, `install ${e.module} /bin/false`);
  }
  return lines.join('\n') + '\n';
}
