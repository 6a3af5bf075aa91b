// Which modules must never load, decided once over the capture kernel's module index: every
// blacklisted module, and every module whose dependency closure (modules.dep, plus the soft
// dependencies of modules.softdep) reaches one. kmod cannot be trusted with this: `blacklist` only
// filters alias lookups, and kmod 30 skips a module's `install` command whenever that module has
// soft dependencies (jbd2 and ext4 have `softdep pre: crypto-crc32c`), so `install jbd2
// /bin/false` does not stop `modprobe ext4` from loading jbd2. Soft dependencies count as
// dependencies here because modprobe loads them together with the module, blacklisted or not.
// The same answer serves our own loads, coldplug and the kernel's requests (gate.ts). Pure but for
// readModuleIndex.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { lookupModule, normalizeModuleName, parseModuleIndex, type ModuleIndex } from '../../initramfs/modules.ts';
import { sourceAt, type BlacklistEntry } from '../config/plan.ts';

export type { ModuleIndex } from '../../initramfs/modules.ts';

/** A module that must not load, and why: `chain` runs from it to the blacklisted module. */
export interface BlockedModule {
  module: string;
  blacklisted: BlacklistEntry;
  /** [module, ..., blacklisted.module]; just [module] when the module itself is blacklisted. */
  chain: string[];
}

/** Reads the index of one kernel's modules (modules.dep is required, the rest optional). */
export function readModuleIndex(dir: string): ModuleIndex {
  const read = (f: string) => { try { return fs.readFileSync(path.join(dir, f), 'utf8'); } catch { return ''; } };
  const dep = fs.readFileSync(path.join(dir, 'modules.dep'), 'utf8');
  return parseModuleIndex({ dep, alias: read('modules.alias'), builtin: read('modules.builtin'), softdep: read('modules.softdep') });
}

/**
 * Every module of `index` that is blacklisted or needs a blacklisted one, with the chain that
 * shows why (a blacklisted module in the module's own modules.dep line first, then soft
 * dependencies). Blacklisted names the index does not know are listed
 * too (a module of another kernel, a typo): they can only be refused.
 */
export function blockedModules(index: ModuleIndex, blacklist: readonly BlacklistEntry[]): Map<string, BlockedModule> {
  const entries = new Map(blacklist.map((e) => [normalizeModuleName(e.module), e]));
  const blocked = new Map<string, BlockedModule>();
  // undefined: not blocked; a BlockedModule: blocked. Cycles (none in a sane modules.dep) count as clear.
  const memo = new Map<string, BlockedModule | undefined>();
  const softCache = new Map<string, string[]>();
  const soft = (name: string): string[] => {
    let r = softCache.get(name);
    if (!r) {
      r = (index.softdeps.get(name) ?? []).flatMap((s) => lookupModule(index, s));
      softCache.set(name, r);
    }
    return r;
  };
  const visit = (name: string): BlockedModule | undefined => {
    if (memo.has(name)) return memo.get(name);
    memo.set(name, undefined);
    let found: BlockedModule | undefined;
    const own = entries.get(name);
    if (own) found = { module: name, blacklisted: own, chain: [name] };
    else {
      const deps = [...(index.deps.get(name) ?? []), ...soft(name)];
      // modules.dep already lists the whole hard closure: a blacklisted one there is named directly.
      const direct = deps.find((d) => entries.has(d));
      if (direct) deps.unshift(direct);
      for (const dep of deps) {
        const b = visit(dep);
        if (b) { found = { module: name, blacklisted: b.blacklisted, chain: [name, ...b.chain] }; break; }
      }
    }
    memo.set(name, found);
    return found;
  };
  for (const name of [...index.path.keys(), ...entries.keys()]) {
    const b = visit(name);
    if (b) blocked.set(name, b);
  }
  return blocked;
}

/** The modules a name or alias (fs-ext4, a device modalias) stands for, split into allowed and blocked. */
export function resolveRequest(index: ModuleIndex, blocked: ReadonlyMap<string, BlockedModule>, nameOrAlias: string): { allowed: string[]; blocked: BlockedModule[] } {
  const names = lookupModule(index, nameOrAlias);
  const b = blocked.get(normalizeModuleName(nameOrAlias));
  if (!names.length && b) return { allowed: [], blocked: [b] };
  return {
    allowed: names.filter((n) => !blocked.has(n)),
    blocked: names.filter((n) => blocked.has(n)).map((n) => blocked.get(n)!),
  };
}

/** "module ext4 needs jbd2, which is blacklisted (reason; where)". */
export function describeBlocked(b: BlockedModule): string {
  const e = b.blacklisted;
  const where = sourceAt(e.source);
  const bad = b.chain[b.chain.length - 1]!;
  const via = b.chain.length > 2 ? ` (through ${b.chain.slice(1, -1).join(' -> ')})` : '';
  const what = b.chain.length === 1 ? `module ${b.module} is blacklisted` : `module ${b.module} needs ${bad}${via}, which is blacklisted`;
  return `${what} (${e.reason}; ${where})`;
}
