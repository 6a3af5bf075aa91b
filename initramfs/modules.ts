// Which kernel modules go into a capture initramfs: the names the target needs, resolved through
// modules.alias, modules.builtin, modules.dep and modules.softdep of the capture kernel, closed over
// their dependencies, minus every blacklisted module. Pure: the caller reads the files (see
// initramfs/kernel-modules.ts) and hands their text in.
//
// A blacklisted module is never put in the image, not even as a dependency: a module that needs a
// blacklisted one is left out too (it could not load), and the result says why, so the builder can
// warn instead of shipping a module modprobe would pull the blacklisted one in for.

/** The module index files of one kernel, as text. */
export interface ModuleIndexText {
  dep: string;
  alias: string;
  builtin: string;
  softdep?: string;
}

export interface ModuleIndex {
  /** normalized module name -> path relative to /lib/modules/<kver> (e.g. kernel/fs/ext4/ext4.ko) */
  path: Map<string, string>;
  /** normalized name -> normalized names of its hard dependencies (modules.dep) */
  deps: Map<string, string[]>;
  /** normalized builtin module names */
  builtin: Set<string>;
  /** alias patterns (fnmatch globs) in file order -> normalized module name */
  aliases: Array<{ pattern: string; module: string }>;
  /** normalized name -> soft pre/post dependencies (names or aliases) */
  softdeps: Map<string, string[]>;
}

/** Module names compare with '-' and '_' equal, as kmod does. */
export function normalizeModuleName(name: string): string {
  return name.replace(/-/g, '_');
}

/** kernel/fs/ext4/ext4.ko(.xz|.zst|.gz) -> ext4 */
export function moduleNameOfPath(p: string): string {
  const base = p.slice(p.lastIndexOf('/') + 1).replace(/\.ko(\.(xz|zst|gz))?$/, '');
  return normalizeModuleName(base);
}

export function parseModuleIndex(text: ModuleIndexText): ModuleIndex {
  const index: ModuleIndex = { path: new Map(), deps: new Map(), builtin: new Set(), aliases: [], softdeps: new Map() };
  for (const line of text.dep.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const file = line.slice(0, colon).trim();
    const name = moduleNameOfPath(file);
    index.path.set(name, file);
    index.deps.set(name, line.slice(colon + 1).trim().split(/\s+/).filter(Boolean).map(moduleNameOfPath));
  }
  for (const line of text.builtin.split('\n')) {
    if (line.trim()) index.builtin.add(moduleNameOfPath(line.trim()));
  }
  for (const line of text.alias.split('\n')) {
    const m = /^alias\s+(\S+)\s+(\S+)/.exec(line);
    if (m) index.aliases.push({ pattern: m[1]!, module: normalizeModuleName(m[2]!) });
  }
  for (const line of (text.softdep ?? '').split('\n')) {
    const m = /^softdep\s+(\S+)\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    const words = m[2]!.split(/\s+/).filter((w) => w && w !== 'pre:' && w !== 'post:');
    const name = normalizeModuleName(m[1]!);
    index.softdeps.set(name, [...(index.softdeps.get(name) ?? []), ...words]);
  }
  return index;
}

/** fnmatch(3) without flags, as kmod matches modules.alias patterns: *, ? and [...] classes. */
export function aliasMatches(pattern: string, value: string): boolean {
  // Most of the ~26000 patterns fail on their literal prefix; only the rest pay for a RegExp.
  const glob = pattern.search(/[*?[]/);
  if (glob < 0) return pattern === value;
  if (!value.startsWith(pattern.slice(0, glob))) return false;
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) { re += '\\['; continue; }
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('!')) cls = '^' + cls.slice(1);
      re += '[' + cls.replace(/\\/g, '\\\\') + ']';
      i = end;
    } else re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(re + '$', 's').test(value);
}

/** A module name, or an alias (fs-ext4, crypto-crc32c, a device modalias) -> module names. */
export function lookupModule(index: ModuleIndex, nameOrAlias: string): string[] {
  const name = normalizeModuleName(nameOrAlias);
  if (index.path.has(name) || index.builtin.has(name)) return [name];
  const found = new Set<string>();
  for (const a of index.aliases) if (aliasMatches(a.pattern, nameOrAlias)) found.add(a.module);
  return [...found];
}

export interface ModuleRequest {
  /** module name or alias */
  name: string;
  /** why it is wanted, for messages: "target ext4", "kdump.conf extra_modules", "layout squashfs" */
  reason: string;
  /** a request that matches nothing is an error only when required (extra_modules); guesses are not */
  required: boolean;
}

export interface ExcludedModule {
  module: string;
  reason: string;
}

export interface ModuleSelection {
  /** normalized names of loadable modules to ship, sorted */
  modules: string[];
  /** their paths relative to /lib/modules/<kver>, sorted */
  paths: string[];
  /** requested names that are built into the kernel: nothing to ship */
  builtin: string[];
  /** modules left out because of a blacklist, with the blacklist entry or the dependency chain */
  excluded: ExcludedModule[];
  /** required requests that matched no module (extra_modules typos): the CLI reports them */
  unresolved: ModuleRequest[];
}

/**
 * Closes the requested modules over modules.dep and modules.softdep. `blacklist` maps normalized
 * module names to the reason they are blacklisted.
 */
export function selectModules(index: ModuleIndex, requests: readonly ModuleRequest[], blacklist: ReadonlyMap<string, string>): ModuleSelection {
  const chosen = new Set<string>();
  const builtin = new Set<string>();
  const excluded = new Map<string, string>();
  const unresolved: ModuleRequest[] = [];

  // Returns false when `name` cannot be shipped because it is, or needs, a blacklisted module.
  const visiting = new Set<string>();
  const add = (name: string, why: string): boolean => {
    if (index.builtin.has(name) && !index.path.has(name)) { builtin.add(name); return true; }
    if (chosen.has(name) || visiting.has(name)) return true;
    if (excluded.has(name)) return false;
    const bl = blacklist.get(name);
    if (bl !== undefined) { excluded.set(name, `blacklisted (${bl}); wanted by ${why}`); return false; }
    if (!index.path.has(name)) return true;
    visiting.add(name);
    for (const dep of index.deps.get(name) ?? []) {
      if (!add(dep, name)) {
        visiting.delete(name);
        excluded.set(name, `needs ${dep}, which is left out (${excluded.get(dep) ?? 'blacklisted'})`);
        return false;
      }
    }
    visiting.delete(name);
    chosen.add(name);
    // Soft dependencies are optional for modprobe: a blacklisted one is left out, the module stays.
    for (const soft of index.softdeps.get(name) ?? []) for (const m of lookupModule(index, soft)) add(m, `${name} (softdep)`);
    return true;
  };

  for (const req of requests) {
    const names = lookupModule(index, req.name);
    if (!names.length) {
      if (req.required) unresolved.push(req);
      continue;
    }
    for (const n of names) add(n, req.reason);
  }
  const modules = [...chosen].sort();
  return {
    modules,
    paths: modules.map((m) => index.path.get(m)!).sort(),
    builtin: [...builtin].sort(),
    excluded: [...excluded].map(([module, reason]) => ({ module, reason })).sort((a, b) => a.module.localeCompare(b.module)),
    unresolved,
  };
}

/**
 * The modules that loading `names` (names or aliases) takes, as paths relative to
 * /lib/modules/<kver>, in the order insmod must load them: soft dependencies and dependencies
 * before each module. Built-in modules and modules not in `shipped` are left out.
 */
export function loadOrder(index: ModuleIndex, names: readonly string[], shipped: ReadonlySet<string>): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const visit = (nameOrAlias: string) => {
    for (const name of lookupModule(index, nameOrAlias)) {
      if (seen.has(name)) continue;
      seen.add(name);
      if (!index.path.has(name) || !shipped.has(name)) continue;
      for (const soft of index.softdeps.get(name) ?? []) visit(soft);
      // modules.dep lists a module's dependencies so that the last one is loaded first.
      for (const dep of [...(index.deps.get(name) ?? [])].reverse()) visit(dep);
      out.push(index.path.get(name)!);
    }
  };
  for (const n of names) visit(n);
  return out;
}

/** modules.dep for the shipped subset: the kernel's lines of the shipped modules, in its order. */
export function subsetModulesDep(depText: string, shipped: ReadonlySet<string>): string {
  const out: string[] = [];
  for (const line of depText.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    if (shipped.has(moduleNameOfPath(line.slice(0, colon)))) out.push(line);
  }
  return out.join('\n') + (out.length ? '\n' : '');
}
