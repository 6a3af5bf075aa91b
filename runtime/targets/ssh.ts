// kdump.conf `ssh user@host`, Debian SSH=: the dump goes to a server through ssh2, with the host key
// checked strictly against known_hosts (kdump runs ssh with StrictHostKeyChecking=yes, BatchMode=yes):
// an unknown, changed or revoked key is refused with a message naming host and fingerprint.
// Two transports: SFTP writes at offsets (a finished kdump-compressed file, no `makedumpfile -R` on
// the server), or, for servers without SFTP, Fedora's flattened stream through `dd` on an exec channel.
import * as fs from 'node:fs';
// first: points ssh2's require of its native binding at lastword's build of it
import './sshcrypto.ts';
import ssh2 from 'ssh2';
import ssh2Crypto from 'ssh2/lib/protocol/crypto.js';
import type { ClientChannel, ConnectConfig, SFTPWrapper } from 'ssh2';
import { describeError, LastwordError } from '../errors.ts';
import { sourceAt, type SshTarget } from '../config/plan.ts';
import { hostKeyAlgorithms, knownKeysFor, verifyHostKey, type HostKeyVerdict } from './known-hosts.ts';
import { joinInside, targetDir } from './naming.ts';
import type { DumpSink, PositionalSink } from './sink.ts';
import { WritableStreamSink, type DumpTarget } from './target.ts';
import { enableMaglev } from './jit-tier.ts';
import { YoungGc } from './young-gc.ts';

/** Whether ssh2 runs its native ciphers (sshcrypto.node) rather than its per-packet JavaScript fallback. */
export function sshNativeCrypto(): boolean {
  return ssh2Crypto.bindingAvailable;
}

/**
 * Bytes of SFTP writes in flight: OpenSSH's sftp keeps 64 x 32 KiB, and sshd's channel window is
 * 2 MiB too, so more only queues inside ssh2 (8 MiB cost ~10 MiB of RSS for no speed).
 */
const SFTP_WINDOW = 2 << 20;
/** Block size of the server's dd in the stream transport (Fedora's kdump.sh: DD_BLKSIZE=512). */
export const DD_BLOCK = '1M';

/** One SFTP WRITE request when ssh2 keeps no limit (a newer ssh2 may name its field differently). */
const SFTP_CHUNK = 32 << 10;

/**
 * The largest WRITE the server takes: OpenSSH's sftp-server says so through limits@openssh.com
 * (255 KiB), which ssh2 asks for and keeps in a private field; fewer, larger writes cost the
 * server one request and one pwrite per 255 KiB instead of per 32 KiB.
 */
export function sftpWriteChunk(sftp: SFTPWrapper): number {
  const max = (sftp as unknown as { _maxWriteLen?: unknown })._maxWriteLen;
  // Without the extension ssh2 assumes 34000 bytes per packet minus its overhead (31,952 of data):
  // a longer write it splits in two, the second sent only once the first is answered.
  return typeof max === 'number' && Number.isInteger(max) && max > 0 ? Math.min(max, 1 << 20) : SFTP_CHUNK;
}

export interface SshOptions {
  /** Connection attempts for network errors (Debian retries its remote mkdir 16 times). Host key and auth errors are never retried. */
  attempts?: number;
  retryDelayMs?: number;
  readyTimeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
  log?: (line: string) => void;
}

/** POSIX shell single-quoting for the remote commands of the exec transport. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function hostKeyError(t: SshTarget, v: Extract<HostKeyVerdict, { ok: false }>): LastwordError {
  const who = `${t.host}${t.port === 22 ? '' : `:${t.port}`}`;
  const at = sourceAt({ file: t.knownHosts, line: v.line });
  const msg = v.reason === 'unknown'
    ? `ssh ${t.user}@${who}: host key ${v.type} ${v.fingerprint} is not in ${t.knownHosts}; refusing to send the dump (add the server's key to known_hosts, e.g. kdumpctl propagate)`
    : v.reason === 'changed'
      ? `ssh ${t.user}@${who}: host key CHANGED: the server shows ${v.type} ${v.fingerprint}, ${at} holds another ${v.type} key; refusing (possible man-in-the-middle; fix known_hosts if the change is expected)`
      : `ssh ${t.user}@${who}: host key ${v.type} ${v.fingerprint} is marked @revoked at ${at}; refusing`;
  return new LastwordError('ETARGET_HOSTKEY', msg, { where: { file: t.knownHosts, line: v.line } });
}

function connectOnce(t: SshTarget, privateKey: Buffer, knownText: string, readyTimeout: number): Promise<ssh2.Client> {
  const known = knownKeysFor(knownText, t.host, t.port);
  return new Promise((resolve, reject) => {
    const conn = new ssh2.Client();
    let refused: LastwordError | undefined;
    const cfg: ConnectConfig = {
      host: t.host, port: t.port, username: t.user, privateKey, readyTimeout,
      // A cut cable shows up within ~20 s instead of TCP's minutes.
      keepaliveInterval: 5000, keepaliveCountMax: 3,
      hostVerifier: (key: Buffer) => {
        const v = verifyHostKey(known, key);
        if (!v.ok) refused = hostKeyError(t, v);
        return v.ok;
      },
    };
    const algs = hostKeyAlgorithms(known);
    if (algs.length) cfg.algorithms = { serverHostKey: algs as NonNullable<ConnectConfig['algorithms']>['serverHostKey'] };
    conn.once('ready', () => resolve(conn));
    conn.once('error', (err: Error & { level?: string }) => {
      conn.end();
      if (refused) return reject(refused);
      if (err.level === 'client-authentication') {
        return reject(new LastwordError('ETARGET_AUTH', `ssh ${t.user}@${t.host}: the server refused key ${t.key} (is it in the server's authorized_keys? kdumpctl propagate)`, { cause: err }));
      }
      reject(new LastwordError('ETARGET_CONNECT', `ssh ${t.user}@${t.host}:${t.port}: ${describeError(err)}`, { cause: err }));
    });
    conn.connect(cfg);
  });
}

/** Connects with strict host key checking; retries network errors only. */
export async function connectSsh(t: SshTarget, opts: SshOptions = {}): Promise<ssh2.Client> {
  enableMaglev();
  let privateKey: Buffer;
  let knownText: string;
  try {
    privateKey = fs.readFileSync(t.key);
  } catch (err) {
    throw new LastwordError('ETARGET_AUTH', `ssh key ${t.key} cannot be read: ${describeError(err)}`, { where: { file: t.key } });
  }
  try {
    knownText = fs.readFileSync(t.knownHosts, 'utf8');
  } catch (err) {
    throw new LastwordError('ETARGET_HOSTKEY', `${t.knownHosts} cannot be read, so the host key of ${t.host} cannot be checked: ${describeError(err)}`, { where: { file: t.knownHosts } });
  }
  const attempts = Math.max(1, opts.attempts ?? 1);
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (let i = 1; ; i++) {
    try {
      return await connectOnce(t, privateKey, knownText, opts.readyTimeoutMs ?? 20_000);
    } catch (err) {
      const retry = err instanceof LastwordError && err.code === 'ETARGET_CONNECT' && i < attempts;
      if (!retry) throw err;
      opts.log?.(`lastword: ${err.oneLine()} (attempt ${i} of ${attempts})`);
      await sleep(opts.retryDelayMs ?? 5000);
    }
  }
}

/** Runs a remote shell command; resolves with its exit code and output. */
function remote(conn: ssh2.Client, cmd: string, input?: Buffer | string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    conn.exec(cmd, (err, ch) => {
      if (err) return reject(new LastwordError('ETARGET_IO', `ssh: cannot run '${cmd}': ${describeError(err)}`, { cause: err }));
      let stdout = '';
      let stderr = '';
      let code = -1;
      ch.on('data', (d: Buffer) => { stdout += d.toString(); });
      ch.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      ch.on('exit', (c: number | null) => { code = c ?? -1; });
      ch.on('close', () => resolve({ code, stdout, stderr }));
      ch.end(input);
    });
  });
}

async function remoteOk(conn: ssh2.Client, cmd: string, input?: Buffer | string): Promise<string> {
  const r = await remote(conn, cmd, input);
  if (r.code !== 0) throw new LastwordError('ETARGET_IO', `ssh: '${cmd}' exited ${r.code}: ${r.stderr.trim().split('\n').at(-1) ?? ''}`);
  return r.stdout;
}

function sftpCall<T>(what: string, fn: (cb: (err: Error | null | undefined, v?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    fn((err, v) => (err ? reject(new LastwordError('ETARGET_IO', `sftp ${what}: ${describeError(err)}`, { cause: err, where: { file: what } })) : resolve(v as T)));
  });
}

/** A file on the server written through SFTP at offsets, with a bounded window of writes in flight. */
class SftpPositionalSink implements PositionalSink {
  readonly kind = 'positional';
  private inflight = 0;
  private failure: LastwordError | undefined;
  private wake: (() => void) | undefined;
  private readonly sftp: SFTPWrapper;
  private readonly handle: Buffer;
  private readonly file: string;
  private readonly chunk: number;
  private readonly young = new YoungGc();

  private readonly guard: <T>(p: Promise<T>) => Promise<T>;

  constructor(sftp: SFTPWrapper, handle: Buffer, file: string, conn: ssh2.Client, guard: <T>(p: Promise<T>) => Promise<T>) {
    this.guard = guard;
    this.sftp = sftp;
    this.handle = handle;
    this.file = file;
    this.chunk = sftpWriteChunk(sftp);
    const cut = () => this.fail(new LastwordError('ETARGET_IO', `sftp ${file}: the connection to the server was lost`));
    conn.once('close', cut);
    sftp.once('close', cut);
  }

  private fail(err: LastwordError): void {
    this.failure ??= err;
    this.wake?.();
  }

  private async settle(limit: number): Promise<void> {
    while (this.inflight > limit && !this.failure) await new Promise<void>((r) => { this.wake = r; });
    if (this.failure) throw this.failure;
  }

  async pwrite(buf: Buffer, offset: number): Promise<void> {
    for (let off = 0; off < buf.length; off += this.chunk) {
      await this.settle(SFTP_WINDOW);
      const len = Math.min(this.chunk, buf.length - off);
      this.inflight += len;
      // ssh2 copies the data into its packet synchronously, so the writer may reuse `buf` at once.
      this.young.sent(len);
      this.sftp.write(this.handle, buf, off, len, offset + off, (err) => {
        this.inflight -= len;
        if (err) {
          const full = /no space|quota|failure/i.test(err.message);
          this.fail(new LastwordError(full ? 'ETARGET_FULL' : 'ETARGET_IO', `sftp ${this.file}: write at offset ${offset + off} failed: ${err.message}`, { cause: err }));
        }
        this.wake?.();
      });
    }
    if (this.failure) throw this.failure;
  }

  async close(): Promise<void> {
    await this.settle(0);
    // fsync@openssh.com where the server has it: the rename that follows must not outrun the data.
    await this.guard(sftpCall(this.file, (cb) => this.sftp.ext_openssh_fsync(this.handle, (e) => cb(e))).catch(() => undefined));
    await this.guard(sftpCall(this.file, (cb) => this.sftp.close(this.handle, (e) => cb(e))));
  }

  async abort(): Promise<void> {
    if (!this.failure) this.sftp.close(this.handle, () => {});
  }
}

export class SshDumpTarget implements DumpTarget {
  readonly description: string;
  readonly hasFiles = true;
  readonly network = true;
  private readonly conn: ssh2.Client;
  private readonly sftp: SFTPWrapper | undefined;
  /** Rejects when the connection closes: ssh2 leaves requests on a dead connection pending forever. */
  private readonly lost: Promise<never>;

  constructor(t: SshTarget, conn: ssh2.Client, sftp: SFTPWrapper | undefined) {
    this.conn = conn;
    this.sftp = sftp;
    this.description = `ssh ${t.user}@${t.host}${t.port === 22 ? '' : `:${t.port}`} (${sftp ? 'sftp' : 'flattened stream via dd'})`;
    this.lost = new Promise<never>((_, reject) => {
      conn.once('close', () => reject(new LastwordError('ETARGET_IO', `${this.description}: the connection to the server was lost`)));
    });
    this.lost.catch(() => { /* observed through guard() */ });
  }

  /** The address this host talks to the server from: what kdump.sh names the dump directory after. */
  get localAddress(): string | undefined {
    // ssh2 keeps its socket private; the address is only used for the name.
    const sock = (this.conn as unknown as { _sock?: { localAddress?: string } })._sock;
    return sock?.localAddress?.replace(/^::ffff:/, '');
  }

  private guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, this.lost]);

  /** Without SFTP the dump can only be a flattened stream. */
  get streamOnly(): boolean {
    return this.sftp === undefined;
  }

  async mkdirs(dir: string): Promise<void> {
    const d = targetDir(dir);
    if (!this.sftp) return void (await this.guard(remoteOk(this.conn, `mkdir -p -- ${shellQuote(d)}`)));
    let at = '';
    for (const part of d.split('/').filter(Boolean)) {
      at += '/' + part;
      const p = at;
      const exists = await this.guard(sftpCall<unknown>(p, (cb) => this.sftp!.stat(p, cb)).then(() => true, () => false));
      if (!exists) await this.guard(sftpCall<void>(p, (cb) => this.sftp!.mkdir(p, { mode: 0o700 }, (e) => cb(e))));
    }
  }

  async openDump(dir: string, name: string, kind: DumpSink['kind']): Promise<DumpSink> {
    const file = joinInside(targetDir(dir), name);
    if (kind === 'positional' && this.sftp) {
      const sftp = this.sftp;
      const handle = await this.guard(sftpCall<Buffer>(file, (cb) => sftp.open(file, 'w', { mode: 0o600 }, cb)));
      return new SftpPositionalSink(sftp, handle, file, this.conn, this.guard);
    }
    // Fedora's transport, `umask 0077 && dd bs=512 of=<dir>/vmcore-incomplete` fed the flattened
    // stream, with a larger block: 512-byte writes made the server's dd the bottleneck (bench:
    // OpenSSH into that dd at 0.55-0.6x of OpenSSH into cat). On a pipe dd writes what each read
    // returned, so the file is the same bytes; Fedora keeps the size in DD_BLKSIZE for this reason.
    const cmd = `umask 0077 && dd bs=${DD_BLOCK} of=${shellQuote(file)} 2>/dev/null`;
    const ch = await new Promise<ClientChannel>((resolve, reject) => {
      this.conn.exec(cmd, (err, c) => (err ? reject(new LastwordError('ETARGET_IO', `ssh: cannot start dd for ${file}: ${describeError(err)}`)) : resolve(c)));
    });
    let code: number | null = null;
    let stderr = '';
    ch.on('exit', (c: number | null) => { code = c; });
    ch.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    // dd prints nothing on stdout, but the channel only reaches 'close' once its readable side is drained.
    ch.resume();
    const closed = new Promise<void>((r) => ch.once('close', () => r()));
    this.conn.once('close', () => { ch.emit('error', new Error('the connection to the server was lost')); ch.destroy(); });
    const young = new YoungGc();
    return new WritableStreamSink(ch, `ssh dd ${file}`, async () => {
      ch.end();
      await closed;
      if (code !== 0) throw new LastwordError('ETARGET_IO', `ssh dd of=${file} exited ${code ?? 'without a status'}${stderr ? ': ' + stderr.trim() : ''}`);
    }, (bytes) => young.sent(bytes));
  }

  async writeFile(dir: string, name: string, data: Buffer | string): Promise<void> {
    const file = joinInside(targetDir(dir), name);
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (!this.sftp) return void (await this.guard(remoteOk(this.conn, `umask 0077 && cat > ${shellQuote(file)}`, buf)));
    const sink = await this.openDump(dir, name, 'positional') as PositionalSink;
    await sink.pwrite(buf, 0);
    await sink.close();
  }

  async rename(dir: string, from: string, to: string): Promise<void> {
    const d = targetDir(dir);
    const a = joinInside(d, from);
    const b = joinInside(d, to);
    const sftp = this.sftp;
    if (!sftp) return void (await this.guard(remoteOk(this.conn, `mv -f -- ${shellQuote(a)} ${shellQuote(b)}`)));
    // posix-rename@openssh.com replaces like mv; plain SFTP rename refuses an existing name.
    await this.guard(sftpCall<void>(b, (cb) => sftp.ext_openssh_rename(a, b, (e) => cb(e)))
      .catch(() => sftpCall<void>(b, (cb) => sftp.rename(a, b, (e) => cb(e)))));
  }

  async list(dir: string): Promise<string[]> {
    const d = targetDir(dir);
    const sftp = this.sftp;
    if (!sftp) return (await this.guard(remote(this.conn, `ls -1A -- ${shellQuote(d)}`))).stdout.split('\n').filter(Boolean);
    return this.guard(sftpCall<Array<{ filename: string }>>(d, (cb) => sftp.readdir(d, cb)).then((l) => l.map((e) => e.filename), () => []));
  }

  async removeDump(dir: string, name: string): Promise<void> {
    await this.guard(remoteOk(this.conn, `rm -rf -- ${shellQuote(joinInside(targetDir(dir), name))}`));
  }

  async close(): Promise<void> {
    try { this.sftp?.end(); } catch { /* connection already gone */ }
    this.conn.end();
  }
}

/** Connects and opens the transport the plan asks for; SFTP falls back to the dd stream when the server has no SFTP. */
export async function openSshTarget(t: SshTarget, opts: SshOptions = {}): Promise<SshDumpTarget> {
  if (!sshNativeCrypto()) opts.log?.("lastword: ssh2 runs its JavaScript ciphers (sshcrypto.node not loaded), at about half of OpenSSH's speed");
  const conn = await connectSsh(t, opts);
  let sftp: SFTPWrapper | undefined;
  if (t.transport === 'sftp') {
    try {
      sftp = await new Promise<SFTPWrapper>((resolve, reject) => conn.sftp((err, s) => (err ? reject(err) : resolve(s))));
    } catch (err) {
      opts.log?.(`lastword: ssh ${t.user}@${t.host} has no SFTP (${describeError(err)}); sending a flattened stream through dd instead`);
    }
  }
  conn.on('error', () => { /* reported by the sink that was writing */ });
  return new SshDumpTarget(t, conn, sftp);
}
