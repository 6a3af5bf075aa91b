// What the capture sees of a dump target, whatever it is (a mounted filesystem, an sftp server, a
// raw device, stdout): make the dump directory, open the dump file as a DumpSink, write the small
// files next to it, rename the dump when it is finished. Paths are absolute on the target and go
// through naming.ts, so nothing can be written outside the dump directory.
import * as fs from 'node:fs';
import type { Writable } from 'node:stream';
import { describeError, LastwordError } from '../errors.ts';
import { joinInside, targetDir, underRoot } from './naming.ts';
import type { DumpSink, PositionalSink, StreamSink } from './sink.ts';

export interface DumpTarget {
  /** One line for the console and the summary: `ssh root@10.0.0.1`, `ext4 UUID=... (/dev/vdb)`. */
  readonly description: string;
  /** raw and stdout hold one stream and nothing else: no directory, no dmesg or log file. */
  readonly hasFiles: boolean;
  /** The dump must be a flattened stream (raw, stdout, ssh `dd`). */
  readonly streamOnly: boolean;
  /** nfs / ssh: the dump directory carries the host tag. */
  readonly network: boolean;
  /** This host's address on the connection to the target (kdump.sh's HOST_IP), when known. */
  readonly localAddress?: string;
  mkdirs(dir: string): Promise<void>;
  /** Creates (truncates) `dir/name` with mode 0600 and returns the sink the writer fills. */
  openDump(dir: string, name: string, kind: DumpSink['kind']): Promise<DumpSink>;
  /** A small file (dmesg, log) written whole, mode 0600. */
  writeFile(dir: string, name: string, data: Buffer | string): Promise<void>;
  rename(dir: string, from: string, to: string): Promise<void>;
  list(dir: string): Promise<string[]>;
  /** Removes an old dump directory `dir/name` (KDUMP_NUM_DUMPS). */
  removeDump(dir: string, name: string): Promise<void>;
  /** Unmounts / disconnects. Never throws: the dump is already as safe as it will get. */
  close(): Promise<void>;
}

/** node:fs errors as target errors: a full target is its own code, so the summary can say so. */
export function targetError(err: unknown, what: string): LastwordError {
  if (err instanceof LastwordError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG') {
    return new LastwordError('ETARGET_FULL', `${what}: no space left on the target (${code})`, { cause: err, where: { file: what } });
  }
  return new LastwordError('ETARGET_IO', `${what}: ${describeError(err)}`, { cause: err, where: { file: what } });
}

/** A dump file on a mounted filesystem: pwrite at offsets, fsync on close. */
export class FilePositionalSink implements PositionalSink {
  readonly kind = 'positional';
  private readonly fd: number;
  private readonly file: string;
  /** close and abort may both be called after a failure; a closed fd number may already be someone else's. */
  private closed = false;
  private readonly fsync: boolean;
  private readonly sync: boolean;

  /**
   * `fsync: false` closes without waiting for the device, as makedumpfile does: for `lastword
   * filter` as a core_collector, whose caller (kdump.sh, kdump-config) runs sync after it.
   * `sync: true` writes from the calling thread, as makedumpfile does: a write on libuv's
   * threadpool costs a hand-off each way (and a thread more on the CPUs), while what the writes
   * would overlap, the compression, runs on the addon's threads with batches queued ahead, or on
   * this thread when there is one CPU. Not for the capture: its stall guard needs the event loop
   * to run while a write hangs on a dead NFS server or disk.
   */
  constructor(fd: number, file: string, { fsync = true, sync = false }: { fsync?: boolean; sync?: boolean } = {}) {
    this.fd = fd;
    this.file = file;
    this.fsync = fsync;
    this.sync = sync;
  }

  /** A write that fails names, as where.offset, the first byte it did not write (the bytes before it are in the file). */
  async pwrite(buf: Buffer, offset: number): Promise<void> {
    let done = 0;
    try {
      while (done < buf.length) {
        const bytesWritten = this.sync ? this.writeHere(buf, done, offset + done) : await new Promise<number>((resolve, reject) => {
          fs.write(this.fd, buf, done, buf.length - done, offset + done, (err, n) => (err ? reject(targetError(err, this.file)) : resolve(n)));
        });
        if (bytesWritten === 0) throw new LastwordError('ETARGET_FULL', `${this.file}: the target accepted no more bytes at offset ${offset + done}`);
        done += bytesWritten;
      }
    } catch (err) {
      const e = targetError(err, this.file);
      throw new LastwordError(e.code, e.message, { action: e.action, where: { ...e.where, offset: offset + done }, cause: e.cause ?? err });
    }
  }

  private writeHere(buf: Buffer, from: number, at: number): number {
    try {
      return fs.writeSync(this.fd, buf, from, buf.length - from, at);
    } catch (err) {
      throw targetError(err, this.file);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.fsync) fs.fsyncSync(this.fd);
    } catch (err) {
      try { fs.closeSync(this.fd); } catch { /* the fsync error is the one to report */ }
      throw targetError(err, this.file);
    }
    fs.closeSync(this.fd);
  }

  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // What was written stays: a partial dump is still worth keeping. Push it out if the device lets us.
    try { fs.fsyncSync(this.fd); } catch { /* best effort */ }
    try { fs.closeSync(this.fd); } catch { /* already closed */ }
  }
}

/** A byte stream onto a file descriptor: a raw block device, or a file when the stream is kept flattened. */
export class FdStreamSink implements StreamSink {
  readonly kind = 'stream';
  private offset = 0;
  private readonly inner: FilePositionalSink;

  constructor(fd: number, file: string) {
    this.inner = new FilePositionalSink(fd, file);
  }

  async write(buf: Buffer): Promise<void> {
    await this.inner.pwrite(buf, this.offset);
    this.offset += buf.length;
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  abort(): Promise<void> {
    return this.inner.abort();
  }
}

/** A stream sink on a node Writable (stdout, an ssh exec channel), honouring its back-pressure. */
export class WritableStreamSink implements StreamSink {
  readonly kind = 'stream';
  private failure: LastwordError | undefined;
  private readonly stream: Writable;
  private readonly what: string;
  private readonly finish: () => Promise<void>;
  private readonly written: ((bytes: number) => void) | undefined;

  /** `written` hears of each buffer the stream is done with (the ssh sink collects garbage by it). */
  constructor(stream: Writable, what: string, finish: () => Promise<void>, written?: (bytes: number) => void) {
    this.stream = stream;
    this.what = what;
    this.finish = finish;
    this.written = written;
    stream.on('error', (err) => { this.failure ??= targetError(err, what); });
  }

  async write(buf: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    // Resolves when the stream is done with `buf` (its write callback), so the writer may reuse the
    // buffer then and nothing is copied; one write in flight is one chunk of memory, not a queue.
    await new Promise<void>((resolve) => {
      let settled = false;
      const done = () => {
        if (settled) return;
        settled = true;
        this.stream.off('close', done);
        resolve();
      };
      // A stream destroyed under the write may never call back: its close ends the wait too.
      this.stream.once('close', done);
      this.stream.write(buf, (err) => {
        if (err) this.failure ??= targetError(err, this.what);
        done();
      });
    });
    if (this.failure) throw this.failure;
    this.written?.(buf.length);
    if (this.stream.destroyed || this.stream.writableEnded) throw this.failure ?? new LastwordError('ETARGET_IO', `${this.what}: the stream closed while the dump was written`);
  }

  async close(): Promise<void> {
    if (this.failure) throw this.failure;
    await this.finish();
    if (this.failure) throw this.failure;
  }

  async abort(): Promise<void> {
    try { this.stream.destroy(); } catch { /* already gone */ }
  }
}

/** A target that is a directory tree on this machine: the root filesystem, a mounted disk, an NFS mount. */
export class FsTarget implements DumpTarget {
  readonly description: string;
  readonly hasFiles = true;
  readonly streamOnly = false;
  readonly network: boolean;
  private readonly root: string;
  private readonly release: () => Promise<void>;

  constructor(opts: { root: string; description: string; network?: boolean; release?: () => Promise<void> }) {
    this.root = opts.root;
    this.description = opts.description;
    this.network = opts.network ?? false;
    this.release = opts.release ?? (async () => {});
  }

  /** Where a target path is on this machine. */
  local(dir: string, name?: string): string {
    const d = underRoot(this.root, targetDir(dir));
    return name === undefined ? d : joinInside(d, name);
  }

  async mkdirs(dir: string): Promise<void> {
    const p = this.local(dir);
    try {
      await fs.promises.mkdir(p, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw targetError(err, p);
    }
  }

  async openDump(dir: string, name: string, kind: DumpSink['kind']): Promise<DumpSink> {
    const p = this.local(dir, name);
    let fd: number;
    try {
      // O_NOFOLLOW: a symlink planted in the dump directory cannot redirect the dump.
      fd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, 0o600);
      fs.fchmodSync(fd, 0o600);
    } catch (err) {
      throw targetError(err, p);
    }
    return kind === 'positional' ? new FilePositionalSink(fd, p) : new FdStreamSink(fd, p);
  }

  async writeFile(dir: string, name: string, data: Buffer | string): Promise<void> {
    const sink = await this.openDump(dir, name, 'positional');
    try {
      await (sink as PositionalSink).pwrite(Buffer.isBuffer(data) ? data : Buffer.from(data), 0);
      await sink.close();
    } catch (err) {
      await sink.abort();
      throw err;
    }
  }

  async rename(dir: string, from: string, to: string): Promise<void> {
    const a = this.local(dir, from);
    const b = this.local(dir, to);
    try {
      await fs.promises.rename(a, b);
      // The rename is what marks the dump complete: make it durable like kdump.sh's `sync -f`.
      const d = fs.openSync(this.local(dir), 'r');
      try { fs.fsyncSync(d); } finally { fs.closeSync(d); }
    } catch (err) {
      throw targetError(err, b);
    }
  }

  async list(dir: string): Promise<string[]> {
    try {
      return await fs.promises.readdir(this.local(dir));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw targetError(err, this.local(dir));
    }
  }

  async removeDump(dir: string, name: string): Promise<void> {
    await fs.promises.rm(this.local(dir, name), { recursive: true, force: true });
  }

  async close(): Promise<void> {
    await this.release();
  }
}

/** A target that is one byte stream: a raw device or stdout. */
export class StreamTarget implements DumpTarget {
  readonly description: string;
  readonly hasFiles = false;
  readonly streamOnly = true;
  readonly network = false;
  private readonly open: () => Promise<StreamSink>;
  private readonly release: () => Promise<void>;

  constructor(opts: { description: string; open: () => Promise<StreamSink>; release?: () => Promise<void> }) {
    this.description = opts.description;
    this.open = opts.open;
    this.release = opts.release ?? (async () => {});
  }

  async mkdirs(): Promise<void> {}
  async openDump(): Promise<DumpSink> {
    return this.open();
  }
  async writeFile(): Promise<void> {
    throw new LastwordError('ETARGET_IO', `${this.description} holds only the dump stream`, { action: 'warn' });
  }
  async rename(): Promise<void> {}
  async list(): Promise<string[]> {
    return [];
  }
  async removeDump(): Promise<void> {}
  async close(): Promise<void> {
    await this.release();
  }
}
