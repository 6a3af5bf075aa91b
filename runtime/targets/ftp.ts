// Debian FTP="host[:dir]": kdump-config pipes `makedumpfile -F` into busybox ftpput. Here an FTP
// client of its own (RFC 959, passive data connections: EPSV, else PASV), binary mode, one control
// connection for the whole capture: the flattened dump is one STOR whose data connection is the
// stream sink; dmesg and the run log are small STORs; the finished dump is renamed (RNFR/RNTO) from
// its incomplete name, which kdump-config does not do (its ftpput writes the final name directly).
import * as net from 'node:net';
import { describeError, LastwordError } from '../errors.ts';
import type { FtpTarget } from '../config/plan.ts';
import { joinInside } from './naming.ts';
import type { DumpSink, StreamSink } from './sink.ts';
import { WritableStreamSink, type DumpTarget } from './target.ts';

export interface FtpReply { code: number; text: string }

export interface FtpOptions {
  /** Connection attempts for network errors (kdump-config retries its SSH mkdir; ftpput does not). */
  attempts?: number;
  retryDelayMs?: number;
  /** Time limit of one command's reply and of connecting. */
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
  log?: (line: string) => void;
}

/**
 * Splits the control connection's bytes into replies: `ddd text`, or `ddd-` lines up to the one
 * that starts `ddd ` (RFC 959 4.2). Pure; returns the complete replies and the rest.
 */
export function parseReplies(buffer: string): { replies: FtpReply[]; rest: string } {
  const replies: FtpReply[] = [];
  let rest = buffer;
  for (;;) {
    const first = /^(\d{3})([ -])(.*)\r?\n/.exec(rest);
    if (!first) break;
    if (first[2] === ' ') {
      replies.push({ code: Number(first[1]), text: first[3]! });
      rest = rest.slice(first[0].length);
      continue;
    }
    const end = new RegExp(`(^|\\n)${first[1]} (.*)\\r?\\n`).exec(rest.slice(first[0].length));
    if (!end) break;
    const upto = first[0].length + end.index + end[0].length;
    replies.push({ code: Number(first[1]), text: rest.slice(0, upto).trimEnd() });
    rest = rest.slice(upto);
  }
  return { replies, rest };
}

/** The data port of a passive reply: EPSV `(|||port|)` or PASV `(h1,h2,h3,h4,p1,p2)`. Pure. */
export function passivePort(reply: FtpReply): number | undefined {
  if (reply.code === 229) {
    const m = /\(([^\d\s])\1\1(\d+)\1\)/.exec(reply.text);
    return m ? Number(m[2]) : undefined;
  }
  if (reply.code === 227) {
    const m = /(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)/.exec(reply.text);
    return m ? Number(m[5]) * 256 + Number(m[6]) : undefined;
  }
  return undefined;
}

/** Full disk or quota on the server (RFC 959 452, 552) as the capture's ETARGET_FULL. */
function replyError(what: string, r: FtpReply): LastwordError {
  const code = r.code === 452 || r.code === 552 ? 'ETARGET_FULL' : r.code === 530 ? 'ETARGET_AUTH' : 'ETARGET_IO';
  return new LastwordError(code, `${what}: the server answered ${r.code} ${r.text.split('\n').pop()!.replace(/^\d{3}[ -]/, '')}`);
}

/** One control connection. Commands run one after the other. */
export class FtpConnection {
  private readonly socket: net.Socket;
  private readonly label: string;
  private readonly timeoutMs: number;
  private buffer = '';
  private readonly queue: FtpReply[] = [];
  private waiter: ((r: FtpReply | Error) => void) | undefined;
  private failure: Error | undefined;

  private constructor(socket: net.Socket, label: string, timeoutMs: number) {
    this.socket = socket;
    this.label = label;
    this.timeoutMs = timeoutMs;
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      const { replies, rest } = parseReplies(this.buffer + d);
      this.buffer = rest;
      this.queue.push(...replies);
      this.wake();
    });
    const gone = (err?: Error) => {
      this.failure ??= err ?? new Error('the server closed the control connection');
      this.wake();
    };
    socket.on('error', gone);
    socket.on('close', () => gone());
  }

  private wake(): void {
    if (!this.waiter) return;
    const next = this.queue.shift() ?? this.failure;
    if (next === undefined) return;
    const w = this.waiter;
    this.waiter = undefined;
    w(next);
  }

  /** Local address of the control connection: this host's address on the dump network. */
  get localAddress(): string | undefined {
    return this.socket.localAddress;
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  static connect(host: string, port: number, timeoutMs: number): Promise<FtpConnection> {
    const label = `ftp ${host}:${port}`;
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      const timer = setTimeout(() => { socket.destroy(); reject(new LastwordError('ETARGET_CONNECT', `${label}: no connection within ${timeoutMs / 1000} s`)); }, timeoutMs);
      socket.once('error', (err) => { clearTimeout(timer); reject(new LastwordError('ETARGET_CONNECT', `${label}: ${describeError(err)}`, { cause: err })); });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        socket.setKeepAlive(true, 5000);
        resolve(new FtpConnection(socket, label, timeoutMs));
      });
    });
  }

  /** The next reply (preliminary 1xx ones included). */
  reply(): Promise<FtpReply> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.waiter = undefined; reject(new LastwordError('ETARGET_IO', `${this.label}: no answer within ${this.timeoutMs / 1000} s`)); }, this.timeoutMs);
      this.waiter = (r) => {
        clearTimeout(timer);
        if (r instanceof Error) reject(new LastwordError('ETARGET_IO', `${this.label}: ${describeError(r)}`, { cause: r }));
        else resolve(r);
      };
      this.wake();
    });
  }

  /** Sends a command; resolves with its reply when the code is one of `ok`, else throws naming it. */
  async command(line: string, ok: number[], what = line.split(' ')[0]!): Promise<FtpReply> {
    if (/[\r\n]/.test(line)) throw new LastwordError('ETARGET_NAME', `${this.label}: a line break in an FTP command (${JSON.stringify(line)})`);
    this.socket.write(line + '\r\n', 'latin1');
    const r = await this.reply();
    if (!ok.includes(r.code)) throw replyError(`${this.label}: ${what === 'PASS' ? 'PASS ***' : line}`, r);
    return r;
  }

  async login(user: string, password: string): Promise<void> {
    const hello = await this.reply();
    if (hello.code !== 220) throw replyError(`${this.label}: greeting`, hello);
    const u = await this.command(`USER ${user}`, [230, 331, 332]);
    if (u.code === 331) await this.command(`PASS ${password}`, [230, 202], 'PASS');
    await this.command('TYPE I', [200]);
  }

  /** A passive data connection to the server (EPSV, or PASV for servers without it). */
  async dataConnection(): Promise<net.Socket> {
    let port: number | undefined;
    try {
      port = passivePort(await this.command('EPSV', [229]));
    } catch (err) {
      if (!(err instanceof LastwordError) || err.code !== 'ETARGET_IO') throw err;
      port = passivePort(await this.command('PASV', [227]));
    }
    if (port === undefined) throw new LastwordError('ETARGET_IO', `${this.label}: no data port in the passive reply`);
    // Always the control connection's address: a PASV address behind NAT is often wrong.
    const host = this.remoteAddress!;
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port });
      s.once('error', (err) => reject(new LastwordError('ETARGET_CONNECT', `${this.label}: data connection to port ${port}: ${describeError(err)}`, { cause: err })));
      s.once('connect', () => { s.removeAllListeners('error'); resolve(s); });
    });
  }

  /**
   * STOR `file`: the data connection, once the server said it is ready (125/150). `finish()` ends
   * it and waits for the transfer's final reply (226/250), which says the server has the bytes.
   */
  async store(file: string): Promise<{ data: net.Socket; finish: () => Promise<void> }> {
    const data = await this.dataConnection();
    try {
      await this.command(`STOR ${file}`, [125, 150]);
    } catch (err) {
      data.destroy();
      throw err;
    }
    const closed = new Promise<void>((r) => { data.once('close', () => r()); });
    const finish = async () => {
      data.end();
      await closed;
      const r = await this.reply();
      if (r.code !== 226 && r.code !== 250) throw replyError(`${this.label}: STOR ${file}`, r);
    };
    return { data, finish };
  }

  async quit(): Promise<void> {
    try {
      this.socket.write('QUIT\r\n');
      await Promise.race([this.reply(), new Promise((r) => setTimeout(r, 2000))]);
    } catch { /* gone already */ }
    this.socket.destroy();
  }
}

/** The dump target over FTP. */
export class FtpDumpTarget implements DumpTarget {
  readonly description: string;
  readonly hasFiles = true;
  readonly streamOnly = true;
  readonly network = true;
  private readonly conn: FtpConnection;
  /** FTP_COREDIR without a leading '/': paths stay relative to the login directory. */
  private readonly relative: boolean;

  constructor(conn: FtpConnection, t: FtpTarget) {
    this.conn = conn;
    this.relative = !t.dir.startsWith('/');
    this.description = `ftp ${t.user}@${t.host}${t.port === 21 ? '' : `:${t.port}`} (flattened)`;
  }

  get localAddress(): string | undefined {
    return this.conn.localAddress;
  }

  private remote(dir: string, name?: string): string {
    const p = name === undefined ? dir : joinInside(dir, name);
    return this.relative ? p.replace(/^\/+/, '') || '.' : p;
  }

  /** MKD of each level; one that exists (or cannot be made) is left to the STOR to report. */
  async mkdirs(dir: string): Promise<void> {
    const parts = dir.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      await this.conn.command(`MKD ${this.remote('/' + parts.slice(0, i).join('/'))}`, [257, 521, 550]).catch(() => undefined);
    }
  }

  async openDump(dir: string, name: string, kind: DumpSink['kind']): Promise<DumpSink> {
    if (kind !== 'stream') throw new LastwordError('ETARGET_IO', `${this.description}: only a flattened stream can be sent`);
    const file = this.remote(dir, name);
    const { data, finish } = await this.conn.store(file);
    const sink: StreamSink = new WritableStreamSink(data, `${this.description}: ${file}`, finish);
    return sink;
  }

  async writeFile(dir: string, name: string, data: Buffer | string): Promise<void> {
    const file = this.remote(dir, name);
    const { data: sock, finish } = await this.conn.store(file);
    await new Promise<void>((resolve, reject) => {
      sock.write(Buffer.isBuffer(data) ? data : Buffer.from(data), (err) => (err ? reject(new LastwordError('ETARGET_IO', `${this.description}: ${file}: ${describeError(err)}`)) : resolve()));
    });
    await finish();
  }

  async rename(dir: string, from: string, to: string): Promise<void> {
    await this.conn.command(`RNFR ${this.remote(dir, from)}`, [350]);
    await this.conn.command(`RNTO ${this.remote(dir, to)}`, [250]);
  }

  /** kdump-config keeps no count of FTP dumps (KDUMP_NUM_DUMPS is for local ones). */
  async list(): Promise<string[]> {
    return [];
  }

  async removeDump(): Promise<void> {}

  async close(): Promise<void> {
    await this.conn.quit();
  }
}

/** Connects and logs in; network errors are retried, a refused login is not. */
export async function openFtpTarget(t: FtpTarget, o: FtpOptions = {}): Promise<FtpDumpTarget> {
  const attempts = Math.max(1, o.attempts ?? 1);
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (let i = 1; ; i++) {
    let conn: FtpConnection | undefined;
    try {
      conn = await FtpConnection.connect(t.host, t.port, o.timeoutMs ?? 30_000);
      await conn.login(t.user, t.password);
      return new FtpDumpTarget(conn, t);
    } catch (err) {
      await conn?.quit();
      const e = err instanceof LastwordError ? err : new LastwordError('ETARGET_CONNECT', `ftp ${t.host}: ${describeError(err)}`, { cause: err });
      if (e.code === 'ETARGET_AUTH' || i >= attempts) {
        if (e.code === 'ETARGET_AUTH') throw new LastwordError('ETARGET_AUTH', `${e.message} (FTP_USER / FTP_PASSWORD in ${t.source.file})`, { cause: e, where: { file: t.source.file, line: t.source.line } });
        throw e;
      }
      o.log?.(`lastword: ${e.message} (attempt ${i} of ${attempts}); trying again`);
      await sleep(o.retryDelayMs ?? 5000);
    }
  }
}
