// Fedora / RHEL /etc/kdump.conf (kdump-utils kdump.conf(5)): one `directive value` per line.
// Read like kdump-lib-initramfs.sh kdump_get_conf_val does: comment and blank lines skipped,
// trailing `# comments` cut, one pair of surrounding double quotes removed; the last occurrence
// of a directive wins. Differences from kdumpctl are deliberate and warn instead of refusing:
// the legacy `blacklist` and `disk_timeout` are honoured (issue 5 asks for every blacklist), the
// other legacy directives are ignored with a warning, so an old config still gives a dump.
import { LastwordError } from '../errors.ts';
import { parseCoreCollector } from './collector.ts';
import {
  DEFAULT_HOOK_TIMEOUT_MS, FAILURE_ACTIONS, FENCE_KDUMP_INTERVAL_S, FENCE_KDUMP_PORT, FINAL_ACTIONS,
  type FailureAction, type FencePlan, type FinalAction, type Hook, type Plan, type SourceRef, type Target,
} from './plan.ts';
import { splitShellWords } from './shell.ts';
import { FS_TARGET_TYPES, localFsTarget, parseDeviceSpec, parseNfsSpec, parseSshSpec } from './target-spec.ts';

export interface ConfLine {
  directive: string;
  value: string;
  line: number;
}

/** Splits kdump.conf text into directive lines the way kdump-utils reads them. */
export function readKdumpConfLines(text: string): ConfLine[] {
  const out: ConfLine[] = [];
  text.split('\n').forEach((raw, i) => {
    const s = raw.trim();
    if (s === '' || s.startsWith('#')) return;
    const m = /^(\S+)\s*(.*)$/.exec(s)!;
    let value = m[2]!;
    const hash = value.indexOf('#');
    if (hash >= 0) value = value.slice(0, hash).trimEnd();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    out.push({ directive: m[1]!, value, line: i + 1 });
  });
  return out;
}


function fail(src: SourceRef, why: string): never {
  throw new LastwordError('ECONFIG', `${src.file}:${src.line}: ${why}`, { where: { ...src } });
}

function need(l: ConfLine, src: SourceRef): string {
  if (l.value === '') fail(src, `'${l.directive}' needs a value`);
  return l.value;
}

function bool01(l: ConfLine, src: SourceRef): boolean {
  if (l.value !== '0' && l.value !== '1') fail(src, `'${l.directive}' must be 0 or 1, not '${l.value}'`);
  return l.value === '1';
}

/**
 * fence_kdump_args as fence_kdump_send's getopt_long reads them ("p:f:c:i:v::Vh"): -p/--ipport,
 * -f/--family, -c/--count, -i/--interval, -v/--verbose; words that are no option are more nodes,
 * as they would be on kdump.sh's `fence_kdump_send $FENCE_KDUMP_ARGS $FENCE_KDUMP_NODES`.
 */
export function parseFenceArgs(words: readonly string[], src: SourceRef): Omit<FencePlan, 'source'> {
  const out: Omit<FencePlan, 'source'> = { nodes: [], port: FENCE_KDUMP_PORT, family: 'auto', count: 0, intervalS: FENCE_KDUMP_INTERVAL_S };
  const long: Record<string, string> = { ipport: 'p', family: 'f', count: 'c', interval: 'i', verbose: 'v' };
  const int = (opt: string, v: string, min: number, max: number): number => {
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) fail(src, `fence_kdump_args: ${opt} '${v}' is not a number from ${min} to ${max}`);
    return Number(v);
  };
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    let opt: string;
    let value: string | undefined;
    if (w.startsWith('--')) {
      const eq = w.indexOf('=');
      const name = eq < 0 ? w.slice(2) : w.slice(2, eq);
      if (!(name in long)) fail(src, `fence_kdump_args: unknown option '${w}' (fence_kdump_send takes -p, -f, -c, -i, -v)`);
      opt = long[name]!;
      if (eq >= 0) value = w.slice(eq + 1);
    } else if (w.startsWith('-') && w.length > 1) {
      opt = w[1]!;
      if (!'pfciv'.includes(opt)) fail(src, `fence_kdump_args: unknown option '${w}' (fence_kdump_send takes -p, -f, -c, -i, -v)`);
      if (w.length > 2) value = w.slice(2);
    } else {
      out.nodes.push(w);
      continue;
    }
    if (opt === 'v') continue; // verbosity of fence_kdump_send's own output; lastword logs each node once
    if (value === undefined) {
      value = words[++i];
      if (value === undefined) fail(src, `fence_kdump_args: '${w}' needs a value`);
    }
    if (opt === 'p') out.port = int('port', value, 1, 65535);
    else if (opt === 'c') out.count = int('count', value, 0, 2 ** 31 - 1);
    else if (opt === 'i') out.intervalS = int('interval', value, 1, 2 ** 31 - 1);
    else if (value === 'auto' || value === 'ipv4' || value === 'ipv6') out.family = value;
    else fail(src, `fence_kdump_args: family '${value}' is not auto, ipv4 or ipv6`);
  }
  return out;
}

function hook(l: ConfLine, src: SourceRef): Hook {
  const words = splitShellWords(need(l, src), src.file, src.line);
  return { path: words[0]!, args: words.slice(1), timeoutMs: DEFAULT_HOOK_TIMEOUT_MS, source: src };
}

/** `--mount "<dev> <mountpoint> <fstype> [<options>]"` of dracut_args as a Target. */
function dracutMountTarget(value: string, src: SourceRef): Target {
  const [dev, , fstype, opts] = value.trim().split(/\s+/);
  if (!dev || !fstype) fail(src, `dracut_args --mount "${value}" is not "<device> <mountpoint> <fstype> [<options>]"`);
  const options = opts ? opts.split(',').filter((o) => o !== 'defaults') : [];
  if (fstype === 'nfs' || fstype === 'nfs4') return parseNfsSpec(dev, src, options);
  if (!FS_TARGET_TYPES.has(fstype)) fail(src, `dracut_args --mount: filesystem type '${fstype}' is not supported as a dump target`);
  return localFsTarget(fstype, dev, src, options);
}

/** Applies /etc/kdump.conf `text` (named `file` in messages) onto `plan`. */
export function applyKdumpConf(plan: Plan, text: string, file: string): void {
  let targetLine: number | undefined;
  let sshKey: string | undefined;
  let collectorSet = false;
  let fenceNodes: { nodes: string[]; src: SourceRef } | undefined;
  let fenceArgs: { words: string[]; src: SourceRef } | undefined;
  const setTarget = (t: Target, src: SourceRef) => {
    if (targetLine !== undefined) fail(src, `only one dump target is allowed; the first is at line ${targetLine}`);
    targetLine = src.line;
    plan.target = t;
  };
  const warn = (src: SourceRef, message: string) => plan.warnings.push({ ...src, message });
  plan.sources.push(file);
  plan.layout = 'fedora';
  plan.naming.layout = 'fedora';

  for (const l of readKdumpConfLines(text)) {
    const src: SourceRef = { file, line: l.line };
    const d = l.directive;
    if (FS_TARGET_TYPES.has(d)) {
      setTarget(localFsTarget(d, need(l, src), src), src);
      continue;
    }
    switch (d) {
      case 'raw':
        setTarget({ kind: 'raw', device: parseDeviceSpec(need(l, src), src), source: src }, src);
        break;
      case 'nfs':
        setTarget(parseNfsSpec(need(l, src), src), src);
        break;
      case 'ssh':
        setTarget(parseSshSpec(need(l, src), src), src);
        break;
      case 'net': {
        // Pre-2013 kexec-tools: `net user@host` or `net server:/export`.
        const v = need(l, src);
        warn(src, `'net' is deprecated; read as '${v.includes('@') ? 'ssh' : 'nfs'} ${v}'`);
        setTarget(v.includes('@') ? parseSshSpec(v, src) : parseNfsSpec(v, src), src);
        break;
      }
      case 'sshkey': sshKey = need(l, src); break;
      case 'path': plan.path = need(l, src); break;
      case 'core_collector': {
        const r = parseCoreCollector(need(l, src), src);
        plan.collector = r.collector;
        plan.warnings.push(...r.warnings);
        collectorSet = true;
        break;
      }
      case 'kdump_pre': plan.hooks.pre.unshift(hook(l, src)); break;
      case 'kdump_post': plan.hooks.post.push(hook(l, src)); break;
      case 'kdump_emergency': plan.hooks.emergency.push(hook(l, src)); break;
      case 'extra_bins': plan.image.extraBins.push(...splitShellWords(need(l, src), file, l.line).map((p) => ({ path: p, source: src }))); break;
      case 'extra_modules': plan.modules.extra.push(...need(l, src).split(/\s+/)); break;
      case 'default':
      case 'failure_action': {
        if (d === 'default') warn(src, "'default' is the old name of 'failure_action'");
        const v = need(l, src) as FailureAction;
        if (!FAILURE_ACTIONS.includes(v)) fail(src, `${d} '${v}' is not one of ${FAILURE_ACTIONS.join(', ')}`);
        plan.failureAction = v;
        break;
      }
      case 'final_action': {
        const v = need(l, src) as FinalAction;
        if (!FINAL_ACTIONS.includes(v)) fail(src, `final_action '${v}' is not one of ${FINAL_ACTIONS.join(', ')}`);
        plan.finalAction = v;
        break;
      }
      case 'force_rebuild': plan.image.forceRebuild = bool01(l, src); break;
      case 'force_no_rebuild': plan.image.forceNoRebuild = bool01(l, src); break;
      case 'dracut_args': {
        const args = splitShellWords(need(l, src), file, l.line);
        const mounts = args.flatMap((a, i) => (a === '--mount' ? [args[i + 1] ?? ''] : []));
        if (mounts.length > 1) fail(src, 'more than one --mount target in dracut_args');
        // kdumpctl takes `dracut_args --mount "<dev> <mnt> <fstype> [<opts>]"` as the dump target.
        if (mounts.length === 1) setTarget(dracutMountTarget(mounts[0]!, src), src);
        plan.image.dracutArgs.push(...args);
        break;
      }
      case 'blacklist':
        for (const m of need(l, src).split(/\s+/)) plan.modules.blacklist.push({ module: m, source: src, reason: 'kdump.conf blacklist' });
        break;
      case 'disk_timeout': {
        const v = need(l, src);
        if (!/^\d+$/.test(v)) fail(src, `disk_timeout '${v}' is not a number of seconds`);
        plan.modules.diskTimeoutMs = Number(v) * 1000;
        break;
      }
      case 'auto_reset_crashkernel':
        if (l.value !== 'yes' && l.value !== 'no') fail(src, `auto_reset_crashkernel must be yes or no, not '${l.value}'`);
        break; // first-kernel package policy; nothing for the capture
      case 'fence_kdump_args': fenceArgs = { words: splitShellWords(need(l, src), file, l.line), src }; break;
      case 'fence_kdump_nodes': fenceNodes = { nodes: need(l, src).split(/\s+/), src }; break;
      case 'options':
      case 'link_delay':
      case 'debug_mem_level':
        warn(src, `'${d}' is deprecated (kdump.conf(5)) and ignored`);
        break;
      default:
        warn(src, `unknown directive '${d}' ignored`);
    }
  }
  if (fenceNodes) {
    const a = fenceArgs ? parseFenceArgs(fenceArgs.words, fenceArgs.src) : parseFenceArgs([], fenceNodes.src);
    plan.fence = { ...a, nodes: [...fenceNodes.nodes, ...a.nodes], source: fenceNodes.src };
  } else if (fenceArgs) {
    warn(fenceArgs.src, "'fence_kdump_args' without 'fence_kdump_nodes': no node to notify");
  }
  const t = plan.target;
  if (t.kind === 'ssh' && sshKey !== undefined) t.key = sshKey;
  if (sshKey !== undefined && t.kind !== 'ssh') warn({ file }, "'sshkey' is set but the target is not ssh");
  // kdump.sh: ssh and raw targets get a flattened stream from makedumpfile -F; a makedumpfile
  // collector given for other targets with -F is stripped of it.
  if (collectorSet && plan.collector.flattened && t.kind !== 'ssh' && t.kind !== 'raw') plan.collector.flattened = false;
}
