// Debian / Ubuntu /etc/default/kdump-tools and Fedora /etc/sysconfig/kdump: shell files that
// kdump-config / kdumpctl source. We read their assignments with runtime/config/shell.ts.
import { LastwordError } from '../errors.ts';
import { parseMakedumpfileArgs } from './collector.ts';
import { DEFAULT_SSH_KEY, POST_COMPRESSIONS, type ConnectRetry, type FailureAction, type FtpTarget, type Plan, type SourceRef, type Target } from './plan.ts';
import { parseShellAssignments, splitShellWords } from './shell.ts';
import { parseFtpSpec, parseNfsSpec, parseSshSpec } from './target-spec.ts';

function fail(src: SourceRef, why: string): never {
  throw new LastwordError('ECONFIG', `${src.file}:${src.line}: ${why}`, { where: { ...src } });
}

function count(v: string, name: string, src: SourceRef): number {
  if (!/^\d+$/.test(v)) fail(src, `${name}="${v}" is not a number`);
  return Number(v);
}

// KDUMP_FAIL_CMD values that are just one of our actions: run it natively, no shell needed.
const FAIL_CMD_ACTIONS: Record<string, FailureAction> = {
  reboot: 'reboot', 'reboot -f': 'reboot', poweroff: 'poweroff', 'poweroff -f': 'poweroff', halt: 'halt', 'halt -f': 'halt',
  '/bin/sh': 'shell', '/bin/bash': 'shell', sh: 'shell', bash: 'shell',
};

const DEBIAN_KNOWN = new Set([
  'USE_KDUMP', 'KDUMP_KERNEL', 'KDUMP_INITRD', 'KDUMP_COREDIR', 'KDUMP_FAIL_CMD', 'KDUMP_DUMP_DMESG', 'KDUMP_NUM_DUMPS',
  'KDUMP_COMPRESSION', 'MAKEDUMP_ARGS', 'KDUMP_KEXEC_ARGS', 'KDUMP_CMDLINE', 'KDUMP_CMDLINE_APPEND', 'HOSTTAG', 'NFS',
  'NFS_TIMEO', 'NFS_RETRANS', 'SSH', 'SSH_KEY', 'DEBUG_KERNEL', 'FTP', 'FTP_USER', 'FTP_PASSWORD', 'FTP_PORT', 'KDUMP_SYSCTL',
  'ARCH', 'NFS_MOUNT_RETRY', 'SSH_KDUMP_RETRY',
]);

/** Applies /etc/default/kdump-tools onto `plan` (layout becomes 'debian'). */
export function applyKdumpTools(plan: Plan, text: string, file: string): void {
  const { assignments, ignored } = parseShellAssignments(text, file);
  plan.sources.push(file);
  plan.layout = 'debian';
  plan.naming.layout = 'debian';
  const last = new Map<string, { value: string; src: SourceRef }>();
  for (const a of assignments) last.set(a.name, { value: a.value, src: { file, line: a.line } });
  for (const i of ignored) plan.warnings.push({ file, line: i.line, message: `not a variable assignment, ignored: ${i.text.slice(0, 60)}` });
  for (const a of assignments) {
    if (!DEBIAN_KNOWN.has(a.name)) plan.warnings.push({ file, line: a.line, message: `unknown variable ${a.name} ignored` });
  }
  const get = (name: string) => {
    const e = last.get(name);
    return e === undefined || e.value === '' ? undefined : e;
  };

  const use = get('USE_KDUMP');
  if (use) plan.enabled = use.value !== '0';
  const coredir = get('KDUMP_COREDIR');
  if (coredir) plan.path = coredir.value;
  const kernel = get('KDUMP_KERNEL');
  if (kernel) plan.kexec.kernel = kernel.value;
  const initrd = get('KDUMP_INITRD');
  if (initrd) plan.kexec.initrd = initrd.value;
  const dbg = get('DEBUG_KERNEL');
  if (dbg) plan.kexec.debugKernel = dbg.value;
  const kargs = get('KDUMP_KEXEC_ARGS');
  if (kargs) plan.kexec.kexecArgs = splitShellWords(kargs.value, file, kargs.src.line);
  const cl = get('KDUMP_CMDLINE');
  if (cl) plan.kexec.commandline = cl.value;
  const append = get('KDUMP_CMDLINE_APPEND');
  if (append) plan.kexec.commandlineAppend = append.value.split(/\s+/).filter(Boolean);

  const dmesg = get('KDUMP_DUMP_DMESG');
  if (dmesg) plan.dmesg = dmesg.value !== '0';
  const num = get('KDUMP_NUM_DUMPS');
  if (num) plan.numDumps = count(num.value, 'KDUMP_NUM_DUMPS', num.src);
  const comp = get('KDUMP_COMPRESSION');
  if (comp?.value) {
    // kdump-config's check_compression: anything else is an error that disables compression.
    const method = POST_COMPRESSIONS.find((m) => m === comp.value);
    if (method) plan.postCompression = { method, source: comp.src };
    else plan.warnings.push({ ...comp.src, message: `KDUMP_COMPRESSION '${comp.value}' is not supported (${POST_COMPRESSIONS.join(', ')}); compression disabled, as kdump-config does` });
  }

  const failCmd = get('KDUMP_FAIL_CMD');
  if (failCmd) {
    const action = FAIL_CMD_ACTIONS[failCmd.value.trim()];
    if (action) plan.failureAction = action;
    else {
      // kdump-config runs it with `eval`; we hand it to /bin/sh in the capture, then reboot as
      // kdump-tools does when the command returns.
      plan.failureCommand = failCmd.value;
      plan.failureAction = 'reboot';
    }
  }

  const args = get('MAKEDUMP_ARGS');
  if (args) {
    const r = parseMakedumpfileArgs(splitShellWords(args.value, file, args.src.line), args.src);
    plan.collector = r.collector;
    plan.warnings.push(...r.warnings);
  }

  const hosttag = get('HOSTTAG');
  if (hosttag) {
    if (hosttag.value !== 'ip' && hosttag.value !== 'hostname') fail(hosttag.src, `HOSTTAG="${hosttag.value}" is not ip or hostname`);
    plan.naming.hostTag = hosttag.value;
  }

  // kdump-config savecore: FTP if set, SSH if set, then NFS, or the local KDUMP_COREDIR when
  // neither FTP nor SSH is set; each gets its own dump.
  const ssh = get('SSH');
  const nfs = get('NFS');
  const ftp = get('FTP');
  // kdump-config: NFS_MOUNT_RETRY=${NFS_MOUNT_RETRY:=4}, SSH_KDUMP_RETRY=${SSH_KDUMP_RETRY:=16},
  // tries that many times, `sleep 3` between; the variables are not in its documented config
  // but it sources the file, so a value set there counts.
  const retry = (name: string, dflt: number, anchor: SourceRef): ConnectRetry => {
    const v = get(name);
    if (!v) return { attempts: dflt, delayMs: 3000, source: anchor };
    let n = count(v.value, name, v.src);
    if (n < 1) {
      // kdump-config's loop would not run at all and carry on as if the target were there.
      plan.warnings.push({ ...v.src, message: `${name}=${v.value}: kdump-config would skip the connection check; lastword tries once` });
      n = 1;
    }
    return { attempts: n, delayMs: 3000, source: v.src };
  };
  const targets: Target[] = [];
  if (ftp) targets.push(parseFtpTarget(ftp.value, ftp.src, get('FTP_USER'), get('FTP_PASSWORD'), get('FTP_PORT')));
  if (ssh) {
    const key = get('SSH_KEY')?.value ?? DEFAULT_SSH_KEY;
    // kdump-tools pipes a flattened stream into `ssh dd`; keep that file layout on the server.
    targets.push({ ...parseSshSpec(ssh.value, ssh.src, key), transport: 'flattened', retry: retry('SSH_KDUMP_RETRY', 16, ssh.src) });
  }
  if (nfs) {
    const timeo = get('NFS_TIMEO');
    const retrans = get('NFS_RETRANS');
    const t = count(timeo?.value ?? '600', 'NFS_TIMEO', timeo?.src ?? nfs.src);
    const r = count(retrans?.value ?? '3', 'NFS_RETRANS', retrans?.src ?? nfs.src);
    // kdump-config: mount -t nfs -o nolock -o tcp -o soft -o timeo=... -o retrans=...
    targets.push({ ...parseNfsSpec(nfs.value, nfs.src, ['nolock', 'tcp', 'soft', `timeo=${t}`, `retrans=${r}`]), retry: retry('NFS_MOUNT_RETRY', 4, nfs.src) });
  }
  if (targets.length > 0) {
    plan.target = targets[0]!;
    plan.alsoTargets = targets.slice(1);
  }
}

const SYSCONFIG_KNOWN = new Set([
  'KDUMP_KERNELVER', 'KDUMP_COMMANDLINE', 'KDUMP_COMMANDLINE_REMOVE', 'KDUMP_COMMANDLINE_APPEND', 'FADUMP_COMMANDLINE_APPEND',
  'KEXEC_ARGS', 'KDUMP_BOOTDIR', 'KDUMP_IMG', 'KDUMP_IMG_EXT', 'VMCORE_CREATION_NOTIFICATION', 'KDUMP_STDLOGLVL',
  'KDUMP_SYSLOGLVL', 'KDUMP_KMSGLOGLVL', 'MKDUMPRD_ARGS',
]);

/** Applies Fedora's /etc/sysconfig/kdump (first-kernel kexec settings) onto `plan`. */
export function applySysconfigKdump(plan: Plan, text: string, file: string): void {
  const { assignments, ignored } = parseShellAssignments(text, file);
  plan.sources.push(file);
  for (const i of ignored) plan.warnings.push({ file, line: i.line, message: `not a variable assignment, ignored: ${i.text.slice(0, 60)}` });
  const vars = new Map<string, string>();
  for (const a of assignments) {
    vars.set(a.name, a.value);
    if (!SYSCONFIG_KNOWN.has(a.name)) plan.warnings.push({ file, line: a.line, message: `unknown variable ${a.name} ignored` });
  }
  const words = (v: string | undefined) => (v ?? '').split(/\s+/).filter(Boolean);
  if (vars.get('KDUMP_KERNELVER')) plan.kexec.kernelVersion = vars.get('KDUMP_KERNELVER');
  if (vars.get('KDUMP_COMMANDLINE')) plan.kexec.commandline = vars.get('KDUMP_COMMANDLINE');
  if (vars.has('KDUMP_COMMANDLINE_REMOVE')) plan.kexec.commandlineRemove = words(vars.get('KDUMP_COMMANDLINE_REMOVE'));
  if (vars.has('KDUMP_COMMANDLINE_APPEND')) plan.kexec.commandlineAppend = words(vars.get('KDUMP_COMMANDLINE_APPEND'));
  if (vars.has('KEXEC_ARGS')) plan.kexec.kexecArgs = splitShellWords(vars.get('KEXEC_ARGS')!, file);
  // Where the kernel is looked for (kdumpctl's prepare_kdump_kernel, cli/kexec.ts findKdumpKernel).
  if (vars.get('KDUMP_BOOTDIR')) plan.kexec.bootDirs = words(vars.get('KDUMP_BOOTDIR'));
  if (vars.get('KDUMP_IMG')) plan.kexec.image = vars.get('KDUMP_IMG');
  if (vars.has('KDUMP_IMG_EXT')) plan.kexec.imageExt = vars.get('KDUMP_IMG_EXT');
}

/** FTP= with FTP_USER, FTP_PASSWORD and FTP_PORT. */
function parseFtpTarget(value: string, src: SourceRef, user?: { value: string }, password?: { value: string }, port?: { value: string; src: SourceRef }): FtpTarget {
  let p: number | undefined;
  if (port?.value) {
    p = count(port.value, 'FTP_PORT', port.src);
    if (p < 1 || p > 65535) fail(port.src, `FTP_PORT="${port.value}" is not a port number`);
  }
  return parseFtpSpec(value, src, { user: user?.value, password: password?.value, port: p });
}
