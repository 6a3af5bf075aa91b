// Loading the modules the dump target needs with kmod's modprobe (through System.exec), never a
// blacklisted one: before each load the module's closure over the capture kernel's modules.dep
// and modules.softdep (closure.ts) is checked, and a module that is, or needs, a blacklisted one is
// refused with a message naming both. The modprobe.d file written first (blacklist + install
// /bin/false) is kmod's own, weaker line: it stops alias matches and some dependencies, not all.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describeError, LastwordError } from '../errors.ts';
import { parseModuleIndex } from '../../initramfs/modules.ts';
import { planTargets, type BlacklistEntry, type Plan } from '../config/plan.ts';
import type { System } from '../system/types.ts';
import { modprobeBlacklistConf, normalizeModule } from './blacklist.ts';
import { blockedModules, describeBlocked, readModuleIndex, resolveRequest, type BlockedModule, type ModuleIndex } from './closure.ts';

/** The capture kernel's module index and what in it must not load. */
export interface ModuleGuard {
  index: ModuleIndex;
  blocked: Map<string, BlockedModule>;
  /** modules the initramfs builder left out (a blacklist it saw), with its reason: LEFT_OUT_FILE */
  leftOut: Map<string, string>;
}

/**
 * Beside modules.dep in the image: the modules `lastword initramfs` left out because of a
 * blacklist, one `name<TAB>reason` per line. At capture such a module is simply not found; this
 * lets the capture say why instead of only modprobe's "not found".
 */
export const LEFT_OUT_FILE = 'lastword.left-out';

export function formatLeftOut(excluded: readonly { module: string; reason: string }[]): string {
  return '# modules lastword initramfs left out of this image, and why\n' + excluded.map((x) => `${x.module}\t${x.reason.replace(/\s+/g, ' ')}\n`).join('');
}

export function parseLeftOut(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const tab = line.indexOf('\t');
    if (line.startsWith('#') || tab <= 0) continue;
    out.set(normalizeModule(line.slice(0, tab)), line.slice(tab + 1));
  }
  return out;
}

function readLeftOut(modulesDir: string): Map<string, string> {
  try {
    return parseLeftOut(fs.readFileSync(path.join(modulesDir, LEFT_OUT_FILE), 'utf8'));
  } catch {
    return new Map(); // an image without a left-out module, or a running system
  }
}

/**
 * Builds the guard from /lib/modules/<kver>. Without a readable modules.dep only the blacklisted
 * names themselves can be refused; `log` says so.
 */
export function moduleGuard(blacklist: readonly BlacklistEntry[], modulesDir: string, log: (line: string) => void = () => {}): ModuleGuard {
  let index: ModuleIndex;
  try {
    index = readModuleIndex(modulesDir);
  } catch (err) {
    log(`lastword: warning: no module index in ${modulesDir} (${describeError(err)}): dependencies of blacklisted modules cannot be checked`);
    index = parseModuleIndex({ dep: '', alias: '', builtin: '' });
  }
  return { index, blocked: blockedModules(index, blacklist), leftOut: readLeftOut(modulesDir) };
}

export function modulesDirOf(opts: ModprobeOptions = {}): string {
  return path.join(opts.modulesRoot ?? '/lib/modules', opts.kernelVersion ?? os.release());
}

/** Modules the plan's target needs beyond the block/NIC drivers of the hardware, plus extra_modules. */
export function targetModules(plan: Plan): string[] {
  const mods: string[] = [];
  for (const t of planTargets(plan)) {
    if (t.kind === 'local-fs') mods.push(t.fstype === 'virtiofs' ? 'virtiofs' : t.fstype);
    if (t.kind === 'nfs') mods.push('nfs', 'nfsv4', 'nfsv3');
    if (t.kind === 'root') mods.push('ext4', 'xfs');
  }
  return [...new Set([...mods, ...plan.modules.extra].map(normalizeModule))];
}

export interface ModprobeOptions {
  /** modprobe program (kmod's). */
  modprobe?: string;
  /** Directory the blacklist file goes to; kmod reads /run/modprobe.d by default. */
  confDir?: string;
  /** Kernel version to look up (-S); default: the running one. */
  kernelVersion?: string;
  /** Where the module trees are; default /lib/modules. */
  modulesRoot?: string;
  timeoutMs?: number;
}

export interface LoadReport {
  loaded: string[];
  /** Not loaded because it, or a module it needs, is blacklisted. */
  refused: { module: string; blacklisted: BlacklistEntry; chain: string[] }[];
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
 * Loads `modules` in order, each with its dependencies, refusing any whose closure holds a
 * blacklisted module. Never throws for one module: the report and the console say what happened,
 * and the target stage reports what is then missing.
 */
export async function loadModules(system: System, modules: readonly string[], guard: ModuleGuard, blacklist: readonly BlacklistEntry[], opts: ModprobeOptions = {}): Promise<LoadReport> {
  const modprobe = opts.modprobe ?? 'modprobe';
  const confDir = opts.confDir ?? '/run/modprobe.d';
  writeBlacklistConf(blacklist, confDir);
  const common = opts.kernelVersion ? ['-S', opts.kernelVersion] : [];
  // kmod only reads /etc, /run, /usr/lib... modprobe.d; anywhere else must be named with -C.
  const withConf = ['/run/modprobe.d', '/etc/modprobe.d'].includes(confDir) ? [] : ['-C', confDir];
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const report: LoadReport = { loaded: [], refused: [], failed: [] };
  for (const module of [...new Set(modules.map(normalizeModule))]) {
    const r0 = resolveRequest(guard.index, guard.blocked, module);
    const bad = r0.blocked[0];
    if (bad) {
      report.refused.push({ module, blacklisted: bad.blacklisted, chain: bad.chain });
      system.log(new LastwordError('EMODULE_BLACKLISTED', `${describeBlocked(bad)}; not loading it`, { action: 'warn' }).oneLine());
      continue;
    }
    if (r0.allowed.length && r0.allowed.every((m) => guard.index.builtin.has(m) && !guard.index.path.has(m))) { report.loaded.push(module); continue; }
    const r = await system.exec(modprobe, [...common, ...withConf, '-b', module], { timeoutMs });
    if (r.exitCode !== 0) {
      const said = r.timedOut ? `modprobe ${module} did not finish in ${timeoutMs / 1000} s` : r.stderr.trim().split('\n').pop() || `modprobe ${module} exited ${r.exitCode}`;
      const why = guard.leftOut.get(module);
      const message = why === undefined ? said : `not in this initramfs: lastword initramfs left it out: ${why} (${said})`;
      report.failed.push({ module, message });
      system.log(`lastword: module ${module}: ${message}`);
      continue;
    }
    report.loaded.push(module);
  }
  return report;
}
