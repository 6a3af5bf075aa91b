// loadPlan: finds and reads the configs (through an injected reader, so tests and `--root` can
// point it at any tree) and applies them in order: distribution defaults, the config file(s),
// the hook directories, the network the image builder took from its host (when the command line
// has no ip= of its own), then the kernel command line, whose `lastword.*` overrides win.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LastwordError } from '../errors.ts';
import { applyCmdline, splitCmdline } from './cmdline.ts';
import { defaultPlan } from './defaults.ts';
import { applyKdumpConf } from './kdump-conf.ts';
import { applyKdumpTools, applySysconfigKdump } from './kdump-tools.ts';
import { DEFAULT_HOOK_TIMEOUT_MS, type Hook, type Layout, type Plan } from './plan.ts';

export interface ConfigReader {
  /** File text, or undefined when it does not exist. */
  readFile(file: string): string | undefined;
  /** Entry names, or undefined when the directory does not exist. */
  listDir(dir: string): string[] | undefined;
}

/** Reads the real filesystem under `root` (default /). */
export function fsReader(root = '/'): ConfigReader {
  const at = (p: string) => path.join(root, p);
  const missing = (err: unknown) => ['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '');
  return {
    readFile(file) {
      try { return fs.readFileSync(at(file), 'utf8'); } catch (err) { if (missing(err)) return undefined; throw err; }
    },
    listDir(dir) {
      try { return fs.readdirSync(at(dir)); } catch (err) { if (missing(err)) return undefined; throw err; }
    },
  };
}

export const FEDORA_CONF = '/etc/kdump.conf';
export const FEDORA_SYSCONFIG = '/etc/sysconfig/kdump';
export const DEBIAN_CONF = '/etc/default/kdump-tools';
/**
 * In a capture image: ifname=, ip=, nameserver= and kdump_remote_ip= words that `lastword initramfs`
 * derived from the build host's route to the dump target (network/host-config.ts), as kdumpctl
 * carries the host's network into its image. An ip= on the command line replaces all of them.
 */
export const HOST_NETWORK_FILE = '/etc/lastword/host-network.conf';
const HOOK_DIRS = { pre: '/etc/kdump/pre.d', post: '/etc/kdump/post.d', emergency: '/etc/kdump/emergency.d' } as const;

export interface LoadPlanOptions {
  /** A config file to read instead of the standard places; its syntax decides the layout. */
  config?: string;
  /** The kernel command line; default: /proc/cmdline through the reader. */
  cmdline?: string;
  /** Where the standard files are looked up (default /); ignored for an explicit `config`. */
  root?: string;
  reader?: ConfigReader;
}

/** Is this a sourced shell file (kdump-tools / sysconfig) rather than kdump.conf directives? */
export function looksLikeShellConfig(text: string, file: string): boolean {
  const base = path.basename(file);
  if (base === 'kdump.conf') return false;
  if (base === 'kdump-tools') return true;
  return text.split('\n').some((l) => /^\s*(export\s+)?[A-Za-z_][A-Za-z0-9_]*=/.test(l));
}

function hooksFrom(reader: ConfigReader, dir: string): Hook[] {
  const names = reader.listDir(dir) ?? [];
  // kdump.conf(5): "collectively sorted and executed in lexical order".
  return names.filter((n) => !n.startsWith('.')).sort().map((n) => ({
    path: `${dir}/${n}`, args: [], timeoutMs: DEFAULT_HOOK_TIMEOUT_MS, fromDir: true, source: { file: `${dir}/${n}` },
  }));
}

export function loadPlan(opts: LoadPlanOptions = {}): Plan {
  const reader = opts.reader ?? fsReader(opts.root ?? '/');
  const explicitReader = opts.reader ?? fsReader('/');
  let plan: Plan;
  if (opts.config !== undefined) {
    const text = explicitReader.readFile(opts.reader ? opts.config : path.resolve(opts.config));
    if (text === undefined) {
      throw new LastwordError('ECONFIG_MISSING', `${opts.config}: no such config file`, { where: { file: opts.config } });
    } else if (looksLikeShellConfig(text, opts.config)) {
      plan = defaultPlan('debian');
      applyKdumpTools(plan, text, opts.config);
    } else {
      plan = defaultPlan('fedora');
      applyKdumpConf(plan, text, opts.config);
    }
  } else {
    const fedora = reader.readFile(FEDORA_CONF);
    const debian = reader.readFile(DEBIAN_CONF);
    const layout: Layout = fedora === undefined && debian !== undefined ? 'debian' : 'fedora';
    plan = defaultPlan(layout);
    if (fedora !== undefined) {
      const sys = reader.readFile(FEDORA_SYSCONFIG);
      if (sys !== undefined) applySysconfigKdump(plan, sys, FEDORA_SYSCONFIG);
      applyKdumpConf(plan, fedora, FEDORA_CONF);
      if (debian !== undefined) plan.warnings.push({ file: DEBIAN_CONF, message: `ignored: ${FEDORA_CONF} exists and is used` });
    } else if (debian !== undefined) {
      applyKdumpTools(plan, debian, DEBIAN_CONF);
    } else {
      plan.warnings.push({ file: FEDORA_CONF, message: `neither ${FEDORA_CONF} nor ${DEBIAN_CONF} found; using the defaults` });
    }
  }
  if (plan.layout === 'fedora') {
    // kdump.conf(5): kdump_pre runs first, then pre.d; post.d runs before kdump_post.
    plan.hooks.pre.push(...hooksFrom(reader, HOOK_DIRS.pre));
    plan.hooks.post.unshift(...hooksFrom(reader, HOOK_DIRS.post));
    plan.hooks.emergency.unshift(...hooksFrom(reader, HOOK_DIRS.emergency));
  }
  const cmdline = opts.cmdline ?? reader.readFile('/proc/cmdline');
  const hostNetwork = reader.readFile(HOST_NETWORK_FILE);
  if (hostNetwork !== undefined && !splitCmdline(cmdline ?? '').some((w) => w.name === 'ip')) {
    applyCmdline(plan, hostNetwork.split('\n').filter((l) => !l.trimStart().startsWith('#')).join(' '), HOST_NETWORK_FILE);
  }
  if (cmdline !== undefined) applyCmdline(plan, cmdline, opts.cmdline !== undefined ? '<cmdline>' : '/proc/cmdline');
  return plan;
}
