// Loading the modules the dump target needs with kmod's modprobe (through System.exec), never a
// blacklisted one: before each load we ask `modprobe --show-depends` for the whole chain and
// refuse with a clear message if any link is blacklisted; the modprobe.d file written first
// (blacklist + install /bin/false) makes kmod itself refuse too, should anything else ask.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LastwordError } from '../errors.ts';
import type { BlacklistEntry, Plan } from '../config/plan.ts';
import type { System } from '../system/types.ts';
import { modprobeBlacklistConf, normalizeModule } from './blacklist.ts';

export type DependStep =
  | { kind: 'insmod'; module: string; file: string }
  | { kind: 'builtin'; module: string }
  | { kind: 'install'; command: string };

/** Parses `modprobe --show-depends` output (kmod tools/modprobe.c show_depends). Pure. */
export function parseShowDepends(stdout: string): DependStep[] {
  const out: DependStep[] = [];
  for (const line of stdout.split('\n')) {
    const insmod = /^insmod (\S+)/.exec(line);
    if (insmod) {
      const file = insmod[1]!;
      const module = normalizeModule(path.basename(file).replace(/\.ko(\.(gz|xz|zst))?$/, ''));
      out.push({ kind: 'insmod', module, file });
      continue;
    }
    const builtin = /^builtin (\S+)/.exec(line);
    if (builtin) { out.push({ kind: 'builtin', module: normalizeModule(builtin[1]!) }); continue; }
    const install = /^install (.*)$/.exec(line);
    if (install) out.push({ kind: 'install', command: install[1]!.trim() });
  }
  return out;
}

/**
 * The first blacklisted module in a dependency chain (the module itself last), or undefined.
 * Pure: the core of "never loaded, not even as a dependency".
 */
export function blacklistedInChain(chain: readonly DependStep[], blacklist: readonly BlacklistEntry[]): BlacklistEntry | undefined {
  const bl = new Map(blacklist.map((e) => [normalizeModule(e.module), e]));
  for (const s of chain) if (s.kind !== 'install' && bl.has(s.module)) return bl.get(s.module);
  return undefined;
}

/** Modules the plan's target needs beyond the block/NIC drivers of the hardware, plus extra_modules. */
export function targetModules(plan: Plan): string[] {
  const t = plan.target;
  const mods: string[] = [];
  if (t.kind === 'local-fs') mods.push(t.fstype === 'virtiofs' ? 'virtiofs' : t.fstype);
  if (t.kind === 'nfs') mods.push('nfs', 'nfsv4', 'nfsv3');
  if (t.kind === 'root') mods.push('ext4', 'xfs');
  return [...new Set([...mods, ...plan.modules.extra].map(normalizeModule))];
}

export interface ModprobeOptions {
  /** modprobe program (kmod's; its --show-depends is needed). */
  modprobe?: string;
  /** Directory the blacklist file goes to; kmod reads /run/modprobe.d by default. */
  confDir?: string;
  /** Kernel version to look up (-S); default: the running one. */
  kernelVersion?: string;
  timeoutMs?: number;
}

export interface LoadReport {
  loaded: string[];
  /** Not loaded because it, or a module it needs, is blacklisted. */
  refused: { module: string; blacklisted: BlacklistEntry }[];
  /** modprobe could not find or load it. */
  failed: { module: string; message: string }[];
}

// Not the name the initramfs builder uses in /etc/modprobe.d: kmod lets a file in /etc shadow a
// /run file of the same name, and this one also carries the command line's blacklists.
export const BLACKLIST_CONF = 'lastword-capture-blacklist.conf';

/** Writes the modprobe.d blacklist file; returns its path. */
export function writeBlacklistConf(entries: readonly BlacklistEntry[], confDir = '/run/modprobe.d'): string {
  fs.mkdirSync(confDir, { recursive: true });
  const file = path.join(confDir, BLACKLIST_CONF);
  fs.writeFileSync(file, modprobeBlacklistConf(entries));
  return file;
}

/**
 * Loads `modules` in order, each with its dependencies, refusing any chain that holds a
 * blacklisted module. Never throws for one module: the report and the console say what happened,
 * and the target stage reports what is then missing.
 */
export async function loadModules(system: System, modules: readonly string[], blacklist: readonly BlacklistEntry[], opts: ModprobeOptions = {}): Promise<LoadReport> {
  const modprobe = opts.modprobe ?? 'modprobe';
  const confDir = opts.confDir ?? '/run/modprobe.d';
  writeBlacklistConf(blacklist, confDir);
  const common = opts.kernelVersion ? ['-S', opts.kernelVersion] : [];
  // kmod only reads /etc, /run, /usr/lib... modprobe.d; anywhere else must be named with -C.
  const withConf = ['/run/modprobe.d', '/etc/modprobe.d'].includes(confDir) ? [] : ['-C', confDir];
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const report: LoadReport = { loaded: [], refused: [], failed: [] };
  for (const module of [...new Set(modules.map(normalizeModule))]) {
    // Without our file (-C /dev/null) the chain shows the real module names, not `install /bin/false`.
    const deps = await system.exec(modprobe, [...common, '-C', '/dev/null', '--show-depends', module], { timeoutMs });
    if (deps.exitCode !== 0) {
      const message = deps.stderr.trim().split('\n').pop() || `modprobe --show-depends ${module} failed`;
      report.failed.push({ module, message });
      system.log(`lastword: module ${module}: ${message}`);
      continue;
    }
    const chain = parseShowDepends(deps.stdout);
    const bad = blacklistedInChain(chain, blacklist);
    if (bad) {
      report.refused.push({ module, blacklisted: bad });
      system.log(new LastwordError('EMODULE_BLACKLISTED', describeRefusal(module, bad), { action: 'warn' }).oneLine());
      continue;
    }
    if (chain.every((s) => s.kind === 'builtin')) { report.loaded.push(module); continue; }
    const r = await system.exec(modprobe, [...common, ...withConf, '-b', module], { timeoutMs });
    if (r.exitCode !== 0) {
      const message = r.timedOut ? `modprobe ${module} did not finish in ${timeoutMs / 1000} s` : r.stderr.trim().split('\n').pop() || `modprobe ${module} exited ${r.exitCode}`;
      report.failed.push({ module, message });
      system.log(`lastword: module ${module}: ${message}`);
      continue;
    }
    report.loaded.push(module);
  }
  return report;
}

export function describeRefusal(module: string, bad: BlacklistEntry): string {
  const where = bad.source.line !== undefined ? `${bad.source.file}:${bad.source.line}` : bad.source.file;
  const via = bad.module === module ? `module ${module} is blacklisted` : `module ${module} needs ${bad.module}, which is blacklisted`;
  return `${via} (${bad.reason}; ${where}); not loading it`;
}
