// The (capture) kernel command line: `lastword.*` overrides of the config files, plus the kernel
// and dracut parameters that matter to the capture: reset_devices, modprobe.blacklist=,
// module_blacklist=, rd.driver.blacklist=, ip=, ifname=, nameserver=, rd.net.timeout.dhcp=,
// kdump_remote_ip= and kdump_test_id= (kdump-utils).
import { LastwordError } from '../errors.ts';
import { parseMakedumpfileArgs } from './collector.ts';
import { parseIfname, parseIpArgument } from './ip.ts';
import { FAILURE_ACTIONS, FINAL_ACTIONS, planTargets, type Codec, type Layout, type Plan, type SourceRef } from './plan.ts';
import { splitShellWords } from './shell.ts';
import { FS_TARGET_TYPES, localFsTarget, parseDeviceSpec, parseFtpSpec, parseNfsSpec, parseSshSpec } from './target-spec.ts';

/** Splits a kernel command line like the kernel's next_arg(): blanks separate, "..." quotes. */
export function splitCmdline(text: string): { name: string; value?: string }[] {
  const out: { name: string; value?: string }[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (i >= text.length) break;
    let word = '';
    let quoted = false;
    while (i < text.length && (quoted || !/\s/.test(text[i]!))) {
      if (text[i] === '"') quoted = !quoted;
      else word += text[i];
      i++;
    }
    const eq = word.indexOf('=');
    out.push(eq < 0 ? { name: word } : { name: word.slice(0, eq), value: word.slice(eq + 1) });
  }
  return out;
}

function bad(src: SourceRef, param: string, why: string): never {
  throw new LastwordError('ECONFIG_CMDLINE', `${src.file}: ${param}: ${why}`, { where: { ...src } });
}

function oneOf<T extends string>(v: string | undefined, allowed: readonly T[], src: SourceRef, param: string): T {
  if (v === undefined || !(allowed as readonly string[]).includes(v)) bad(src, param, `'${v ?? ''}' is not one of ${allowed.join(', ')}`);
  return v as T;
}

function seconds(v: string | undefined, src: SourceRef, param: string): number {
  if (v === undefined || !/^\d+$/.test(v)) bad(src, param, `'${v ?? ''}' is not a number of seconds`);
  return Number(v) * 1000;
}

/**
 * `lastword.target=` values: `root`, `stdout`, `raw:<dev>`, `<fstype>:<dev>`, `nfs:<server:/export>`,
 * `ssh:<user@host[:port]>`, `ftp:<host[:/dir]>`, `virtiofs:<tag>`. <dev> is a path, UUID=, LABEL=,
 * PARTUUID= or PARTLABEL=.
 */
function applyTarget(plan: Plan, v: string, src: SourceRef): void {
  // One target on the command line replaces all the configs name (Debian's FTP + SSH + NFS too).
  const was = planTargets(plan);
  plan.alsoTargets = [];
  if (v === 'root') { plan.target = { kind: 'root', source: src }; return; }
  if (v === 'stdout') { plan.target = { kind: 'stdout', source: src }; return; }
  const colon = v.indexOf(':');
  const kind = colon < 0 ? v : v.slice(0, colon);
  const rest = colon < 0 ? '' : v.slice(colon + 1);
  if (kind === 'raw') plan.target = { kind: 'raw', device: parseDeviceSpec(rest, src), source: src };
  else if (kind === 'nfs') plan.target = parseNfsSpec(rest, src);
  else if (kind === 'ssh') {
    const key = was.find((t) => t.kind === 'ssh')?.key;
    plan.target = parseSshSpec(rest, src, key);
  } else if (kind === 'ftp') {
    // the login and port of the configs' FTP target, if they have one
    const ftp = was.find((t) => t.kind === 'ftp');
    plan.target = parseFtpSpec(rest, src, ftp ?? {});
  } else if (FS_TARGET_TYPES.has(kind)) {
    plan.target = localFsTarget(kind, rest, src);
  } else bad(src, 'lastword.target', `'${v}' is not root, stdout, raw:<dev>, <fstype>:<dev>, nfs:<server:/path>, ssh:<user@host> or ftp:<host[:/dir]>`);
}

const CODECS: readonly Codec[] = ['none', 'zlib', 'lzo', 'snappy', 'zstd'];
const LAYOUTS: readonly Layout[] = ['fedora', 'debian'];

/** Applies the command line `text` (named `file`, e.g. /proc/cmdline) onto `plan`. */
export function applyCmdline(plan: Plan, text: string, file: string): void {
  const src: SourceRef = { file };
  plan.sources.push(file);
  const blacklist = (v: string | undefined, param: string) => {
    for (const m of (v ?? '').split(',').filter(Boolean)) plan.modules.blacklist.push({ module: m, source: src, reason: `${param}= on the kernel command line` });
  };
  let ipSeen = false;
  for (const { name, value } of splitCmdline(text)) {
    switch (name) {
      case 'reset_devices': plan.modules.resetDevices = true; continue;
      case 'modprobe.blacklist':
      case 'module_blacklist':
      case 'rd.driver.blacklist':
      case 'lastword.blacklist':
        blacklist(value, name); continue;
      case 'ip':
        if (!ipSeen) plan.network.ip = []; // the cmdline replaces, never extends, configured ip=
        ipSeen = true;
        plan.network.ip.push(parseIpArgument(value ?? '', src));
        continue;
      case 'ifname':
        plan.network.ifnames.push(parseIfname(value ?? '', src));
        continue;
      case 'nameserver':
        if (value) plan.network.nameservers.push(value);
        continue;
      case 'rd.net.timeout.dhcp':
      case 'lastword.net_timeout':
        plan.network.timeoutMs = seconds(value, src, name); continue;
      case 'kdump_remote_ip': if (value) plan.network.remoteIp = value; continue;
      case 'kdump_test_id': if (value) plan.naming.testId = value; continue;
    }
    if (!name.startsWith('lastword.')) continue;
    const key = name.slice('lastword.'.length);
    const p = name;
    switch (key) {
      case 'dump_level': {
        const r = parseMakedumpfileArgs(['-d', value ?? ''], src, plan.collector.program);
        plan.collector.dumpLevel = r.collector.dumpLevel;
        break;
      }
      case 'codec': plan.collector.codec = oneOf(value, CODECS, src, p); break;
      case 'format': plan.collector.format = oneOf(value, ['kdump', 'elf'] as const, src, p); break;
      case 'core_collector': {
        const r = parseMakedumpfileArgs(splitShellWords(value ?? '', file), src);
        plan.collector = r.collector;
        plan.warnings.push(...r.warnings);
        break;
      }
      case 'target': applyTarget(plan, value ?? '', src); break;
      case 'path': if (!value) bad(src, p, 'empty path'); plan.path = value; break;
      case 'final_action': plan.finalAction = oneOf(value, FINAL_ACTIONS, src, p); break;
      case 'failure_action': plan.failureAction = oneOf(value, FAILURE_ACTIONS, src, p); break;
      case 'layout': plan.layout = plan.naming.layout = oneOf(value, LAYOUTS, src, p); break;
      case 'hosttag': plan.naming.hostTag = oneOf(value, ['ip', 'hostname'] as const, src, p); break;
      case 'dmesg': plan.dmesg = oneOf(value, ['0', '1'] as const, src, p) === '1'; break;
      case 'num_dumps':
        if (!/^\d+$/.test(value ?? '')) bad(src, p, `'${value ?? ''}' is not a count`);
        plan.numDumps = Number(value);
        break;
      case 'disk_timeout': plan.modules.diskTimeoutMs = seconds(value, src, p); break;
      case 'stall_timeout': plan.stallTimeoutMs = seconds(value, src, p); break;
      case 'hook_timeout': {
        const ms = seconds(value, src, p);
        for (const h of [...plan.hooks.pre, ...plan.hooks.post, ...plan.hooks.emergency]) h.timeoutMs = ms;
        break;
      }
      case 'extra_modules': plan.modules.extra.push(...(value ?? '').split(',').filter(Boolean)); break;
      case 'sshkey':
      case 'known_hosts':
      case 'ssh_transport': {
        const t = plan.target;
        if (t.kind !== 'ssh') { plan.warnings.push({ ...src, message: `${p} ignored: the target is not ssh` }); break; }
        if (!value) bad(src, p, 'empty value');
        if (key === 'sshkey') t.key = value;
        else if (key === 'known_hosts') t.knownHosts = value;
        else t.transport = oneOf(value, ['sftp', 'flattened'] as const, src, p);
        break;
      }
      default:
        plan.warnings.push({ ...src, message: `unknown parameter ${p} ignored` });
    }
  }
}
