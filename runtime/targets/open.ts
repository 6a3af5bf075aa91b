// Opens the plan's target: mounts a local filesystem (device by path, UUID= or LABEL=, found by
// reading superblocks) or an NFS export, opens a raw device, connects to an ssh server, or takes
// stdout. Everything that acts on the OS goes through the injected System.
import * as fs from 'node:fs';
import { describeError, LastwordError } from '../errors.ts';
import type { DeviceSpec, LocalFsTarget, NfsTarget, Plan, RawTarget } from '../config/plan.ts';
import { describeDevice } from '../config/target-spec.ts';
import { MNT, MS, type System } from '../system/types.ts';
import { majorMinor, parseMountInfo } from '../system/mountinfo.ts';
import { openSshTarget, type SshOptions } from './ssh.ts';
import { FdStreamSink, FsTarget, StreamTarget, WritableStreamSink, type DumpTarget } from './target.ts';

export interface OpenTargetOptions {
  sys: System;
  /** Directory the root target means (`lastword save --root`); '/' by default. */
  root?: string;
  /** Where local filesystems and NFS exports are mounted. */
  mountPoint?: string;
  /** Resolves a device spec to a /dev node, waiting for it (runtime/modules/blockdev.ts). */
  findDevice: (spec: DeviceSpec) => Promise<string>;
  log: (line: string) => void;
  /** mount.nfs attempts (Debian kdump-config tries 4 times). */
  nfsAttempts?: number;
  /** Time limit of one mount.nfs run (NFS_ATTEMPT_TIMEOUT_MS by default). */
  nfsAttemptTimeoutMs?: number;
  /** Time limit of all mount.nfs attempts together (NFS_MOUNT_TIMEOUT_MS by default). */
  nfsTimeoutMs?: number;
  retryDelayMs?: number;
  /** How long a virtiofs mount is retried while its tag is not there yet (VIRTIOFS_WAIT_MS). */
  virtiofsWaitMs?: number;
  ssh?: SshOptions;
  /**
   * The root target under PID 1, where the root filesystem is not mounted: its root=, rootfstype=
   * and rootflags= from the command line, or 'missing' when there is none. Undefined from a shell:
   * the root target is then `root` as it is.
   */
  rootFs?: { device: DeviceSpec; fstype?: string; options: string[] } | 'missing';
  /** stdout target: the stream to write (process.stdout by default). */
  stdout?: NodeJS.WritableStream;
}

export const DEFAULT_MOUNT_POINT = '/run/lastword/target';

/** Connection tries of a network target without Debian's *_RETRY: a server still booting gets a few. */
export const CONNECT_RETRY = { attempts: 4, delayMs: 5000 } as const;

/** mount(8) option words that are mount(2) flags; the rest goes to the filesystem as data. */
const FLAG_OPTIONS: Record<string, number> = {
  nosuid: MS.NOSUID, nodev: MS.NODEV, noexec: MS.NOEXEC, sync: 16, noatime: 1024, nodiratime: 2048, relatime: 1 << 21,
};
const IGNORED_OPTIONS = new Set(['defaults', 'rw', 'auto', 'noauto', 'nofail', 'user', 'nouser', '_netdev', 'suid', 'dev', 'exec', 'async', 'atime']);

/** Splits mount(8) options into mount(2) flags and data. `ro` is dropped: the dump needs a writable target. Pure. */
export function mountOptions(words: readonly string[]): { flags: number; data: string; dropped: string[] } {
  let flags = 0;
  const data: string[] = [];
  const dropped: string[] = [];
  for (const w of words.flatMap((o) => o.split(',')).filter(Boolean)) {
    if (w in FLAG_OPTIONS) flags |= FLAG_OPTIONS[w]!;
    else if (w === 'ro') dropped.push(w);
    else if (IGNORED_OPTIONS.has(w) || w.startsWith('x-') || w.startsWith('comment=')) continue;
    else data.push(w);
  }
  return { flags, data: data.join(','), dropped };
}

/**
 * The mount.nfs command line. Pure. Besides the configured options (kdump.conf `nfs` takes them as
 * written, Debian's kdump-config adds nolock,tcp,soft,timeo,retrans), two defaults suit a capture:
 * `nolock`, since no rpc.statd runs in the capture kernel and an NFSv3 mount (given, or negotiated
 * down from v4) needs it for NLM locking, which a single writer never uses; and `retry=0`, so
 * mount.nfs gives up after one try (its own default retries silently for 2 minutes) and lastword's
 * attempts, each on the console, bound the wait.
 */
export function nfsMountArgs(t: NfsTarget, mountPoint: string): string[] {
  const server = t.server.includes(':') ? `[${t.server}]` : t.server;
  const opts = t.mountOptions.flatMap((o) => o.split(',')).filter(Boolean);
  const has = (...keys: string[]) => opts.some((o) => keys.includes(o.split('=')[0]!));
  if (t.timeo !== undefined && !has('timeo')) opts.push(`timeo=${t.timeo}`);
  if (t.retrans !== undefined && !has('retrans')) opts.push(`retrans=${t.retrans}`);
  if (!has('lock', 'nolock')) opts.push('nolock');
  if (!has('retry')) opts.push('retry=0');
  return [`${server}:${t.export}`, mountPoint, '-o', opts.join(',')];
}

/** The NFS version and transport the kernel settled on for the mount at `mnt`, from /proc/self/mounts. Pure. */
export function nfsMountInfo(mounts: string, mnt: string): { version?: string; proto?: string; options: string } | undefined {
  const line = mounts.split('\n').map((l) => l.split(' ')).reverse().find((f) => f[1] === mnt && /^nfs4?$/.test(f[2] ?? ''));
  if (!line) return undefined;
  const options = line[3] ?? '';
  const opt = (k: string) => options.split(',').find((o) => o.startsWith(k + '='))?.slice(k.length + 1);
  return { version: opt('vers'), proto: opt('proto'), options };
}

/** `NFS version 4.2 over tcp, hard, timeo=600, retrans=2`: what the kernel settled on. Pure. */
export function describeNfsMount(info: { version?: string; proto?: string; options: string }): string {
  const words = info.options.split(',');
  const pick = (k: string) => words.find((w) => w.startsWith(k + '='));
  const recovery = words.find((w) => w === 'soft' || w === 'hard' || w === 'softerr');
  return [`NFS version ${info.version ?? '?'}${info.proto ? ` over ${info.proto}` : ''}`, recovery, pick('timeo'), pick('retrans')].filter(Boolean).join(', ');
}

/** Per mount.nfs attempt: enough for a server that answers slowly, short of the console's silence. */
export const NFS_ATTEMPT_TIMEOUT_MS = 60_000;
/** All attempts together: a server that never answers ends in the failure action within this. */
export const NFS_MOUNT_TIMEOUT_MS = 150_000;

function unmounter(o: OpenTargetOptions, mnt: string): () => Promise<void> {
  return async () => {
    try {
      o.sys.sync();
      o.sys.umount2(mnt, 0);
    } catch (err) {
      o.log(`lastword: warning: cannot unmount ${mnt}: ${describeError(err)}; detaching it`);
      try { o.sys.umount2(mnt, MNT.DETACH); } catch { /* nothing more to do */ }
    }
  };
}

/**
 * mount(2) of a target read-write. The kernel gives a filesystem one read-only state: mounting it
 * read-write while it is mounted read-only elsewhere fails with EBUSY. That is the case when the
 * target is the disk the capture's /init mounted read-only to run lastword from (`lastword
 * initramfs --image-on`); that mount is then remounted read-write, and the mount tried again.
 */
function mountReadWrite(o: OpenTargetOptions, dev: string, mnt: string, fstype: string, flags: number, data: string): void {
  try {
    o.sys.mount(dev, mnt, fstype, flags, data);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EBUSY' || (flags & MS.RDONLY) !== 0) throw err;
    const other = readOnlyMountOf(dev);
    if (other === undefined) throw err;
    o.log(`lastword: ${dev} is mounted read-only on ${other} (the image lastword runs from); remounting it read-write for the dump`);
    o.sys.mount(dev, other, fstype, MS.REMOUNT, '');
    o.sys.mount(dev, mnt, fstype, flags, data);
  }
}

/** Where the block device `dev` is mounted read-only, from /proc/self/mountinfo; undefined if nowhere. */
function readOnlyMountOf(dev: string): string | undefined {
  try {
    const id = majorMinor(fs.statSync(dev).rdev);
    return parseMountInfo(fs.readFileSync('/proc/self/mountinfo', 'utf8')).find((e) => (e.majorMinor === id || e.source === dev) && e.options[0] === 'ro')?.mountPoint;
  } catch {
    return undefined;
  }
}

/** How long a virtio-fs tag may take to appear after the driver loaded. */
export const VIRTIOFS_WAIT_MS = 30_000;

async function openLocalFs(t: LocalFsTarget, o: OpenTargetOptions): Promise<DumpTarget> {
  // virtiofs (kdump.conf `virtiofs <tag>`): the "device" is the tag of a virtio-fs device, no block device.
  const virtiofs = t.fstype === 'virtiofs';
  const dev = virtiofs ? describeDevice(t.device) : await o.findDevice(t.device);
  const mnt = o.mountPoint ?? DEFAULT_MOUNT_POINT;
  fs.mkdirSync(mnt, { recursive: true });
  const { flags, data, dropped } = mountOptions(t.mountOptions);
  if (dropped.length) o.log(`lastword: mounting ${describeDevice(t.device)} read-write although its options say ${dropped.join(',')}: the dump must be written`);
  const waitMs = virtiofs ? o.virtiofsWaitMs ?? VIRTIOFS_WAIT_MS : 0;
  const deadline = virtiofs ? o.sys.now() + waitMs : 0;
  for (;;) {
    try {
      mountReadWrite(o, dev, mnt, t.fstype, flags, data);
      break;
    } catch (err) {
      // The kernel knows a tag only once virtio_fs probed its device: EINVAL until then.
      if (virtiofs && o.sys.now() < deadline) { await o.sys.sleep(500); continue; }
      const what = virtiofs ? `virtiofs tag ${dev} (waited ${Math.round(waitMs / 1000)} s for the device)` : `${describeDevice(t.device)} (${dev}) as ${t.fstype}`;
      throw new LastwordError('ETARGET_MOUNT', `cannot mount ${what} on ${mnt}: ${describeError(err)}`, { cause: err, where: { file: `${t.source.file}`, line: t.source.line } });
    }
  }
  return new FsTarget({ root: mnt, description: virtiofs ? `virtiofs ${dev}` : `${t.fstype} ${describeDevice(t.device)} (${dev})`, release: unmounter(o, mnt) });
}

async function openNfs(t: NfsTarget, o: OpenTargetOptions): Promise<DumpTarget> {
  const mnt = o.mountPoint ?? DEFAULT_MOUNT_POINT;
  fs.mkdirSync(mnt, { recursive: true });
  const args = nfsMountArgs(t, mnt);
  const retry = t.retry ?? CONNECT_RETRY;
  const attempts = Math.max(1, o.nfsAttempts ?? retry.attempts);
  const delay = o.retryDelayMs ?? retry.delayMs;
  // Debian's NFS_MOUNT_RETRY is the admin's count: the overall limit grows to let each attempt run.
  const overall = o.nfsTimeoutMs ?? (t.retry ? Math.max(NFS_MOUNT_TIMEOUT_MS, attempts * ((o.nfsAttemptTimeoutMs ?? NFS_ATTEMPT_TIMEOUT_MS) + delay)) : NFS_MOUNT_TIMEOUT_MS);
  const deadline = o.sys.now() + overall;
  let last = '';
  let tried = 0;
  while (tried < attempts) {
    const limitMs = Math.max(1000, Math.min(o.nfsAttemptTimeoutMs ?? NFS_ATTEMPT_TIMEOUT_MS, deadline - o.sys.now()));
    tried++;
    const r = await o.sys.exec('mount.nfs', args, { timeoutMs: limitMs });
    if (r.exitCode === 0 && !r.timedOut) {
      let how = '';
      try {
        const info = nfsMountInfo(fs.readFileSync('/proc/self/mounts', 'utf8'), fs.realpathSync(mnt));
        if (info) how = ` (${describeNfsMount(info)})`;
      } catch { /* the mount table is only for the message */ }
      o.log(`lastword: mounted nfs ${args[0]} on ${mnt}${how}`);
      return new FsTarget({ root: mnt, network: true, description: `nfs ${args[0]}${how}`, release: unmounter(o, mnt) });
    }
    last = r.timedOut
      ? `no answer within ${Math.round(limitMs / 1000)} s`
      : (r.stderr || r.stdout).trim().split('\n').at(-1) || `exit status ${r.exitCode}`;
    o.log(`lastword: mount.nfs ${args.join(' ')} failed (attempt ${tried} of ${attempts}): ${last}`);
    if (tried >= attempts || o.sys.now() + delay >= deadline) break;
    await o.sys.sleep(delay);
  }
  throw new LastwordError('ETARGET_MOUNT', `cannot mount nfs ${args[0]} (server ${t.server}) after ${tried} attempt${tried === 1 ? '' : 's'}: ${last}`, { where: { file: t.source.file, line: t.source.line } });
}

/** Filesystems tried for root= without rootfstype=, in the order distributions install them. */
const ROOT_FSTYPES = ['ext4', 'xfs', 'btrfs'];

async function openRootFs(o: OpenTargetOptions): Promise<DumpTarget> {
  const r = o.rootFs;
  if (r === undefined) return new FsTarget({ root: o.root ?? '/', description: `root filesystem${o.root && o.root !== '/' ? ` (${o.root})` : ''}` });
  if (r === 'missing') {
    // Writing under the initramfs' own / would look like success and vanish at the reboot.
    throw new LastwordError('ETARGET_ROOT', 'the dump target is the root filesystem, but the capture command line has no root=; set a target in the kdump config (e.g. ext4 UUID=...) or add root= to KDUMP_COMMANDLINE_APPEND');
  }
  const dev = await o.findDevice(r.device);
  const mnt = o.mountPoint ?? DEFAULT_MOUNT_POINT;
  fs.mkdirSync(mnt, { recursive: true });
  const { flags, data } = mountOptions(r.options);
  let last: unknown;
  for (const fstype of r.fstype ? [r.fstype] : ROOT_FSTYPES) {
    try {
      mountReadWrite(o, dev, mnt, fstype, flags, data);
      return new FsTarget({ root: mnt, description: `root filesystem ${describeDevice(r.device)} (${dev}, ${fstype})`, release: unmounter(o, mnt) });
    } catch (err) {
      last = err;
    }
  }
  throw new LastwordError('ETARGET_MOUNT', `cannot mount the root filesystem ${describeDevice(r.device)} (${dev}) read-write: ${describeError(last)}`, { cause: last });
}

async function openRaw(t: RawTarget, o: OpenTargetOptions): Promise<DumpTarget> {
  const dev = await o.findDevice(t.device);
  return new StreamTarget({
    description: `raw ${describeDevice(t.device)} (${dev}, flattened)`,
    open: async () => {
      try {
        return new FdStreamSink(fs.openSync(dev, fs.constants.O_WRONLY), dev);
      } catch (err) {
        throw new LastwordError('ETARGET_IO', `cannot open raw device ${dev}: ${describeError(err)}`, { cause: err, where: { file: dev } });
      }
    },
  });
}

export async function openTarget(plan: Plan, o: OpenTargetOptions): Promise<DumpTarget> {
  const t = plan.target;
  switch (t.kind) {
    case 'root':
      return openRootFs(o);
    case 'local-fs':
      return openLocalFs(t, o);
    case 'nfs':
      return openNfs(t, o);
    case 'raw':
      return openRaw(t, o);
    case 'ssh': {
      // Debian retries its remote mkdir SSH_KDUMP_RETRY (16) times, 3 s apart; elsewhere a server
      // still booting gets a few tries too.
      const retry = t.retry ?? CONNECT_RETRY;
      return openSshTarget(t, { log: o.log, sleep: (ms) => o.sys.sleep(ms), attempts: retry.attempts, retryDelayMs: retry.delayMs, ...o.ssh });
    }
    case 'ftp': {
      const { openFtpTarget } = await import('./ftp.ts');
      // kdump-config gives ftpput one try; a server still booting gets a few here, as for ssh.
      return openFtpTarget(t, { log: o.log, sleep: (ms) => o.sys.sleep(ms), attempts: CONNECT_RETRY.attempts, retryDelayMs: CONNECT_RETRY.delayMs });
    }
    case 'stdout': {
      const out = (o.stdout ?? process.stdout) as NodeJS.WritableStream & import('node:stream').Writable;
      return new StreamTarget({ description: 'standard output (flattened)', open: async () => new WritableStreamSink(out, 'stdout', async () => {}) });
    }
  }
}
