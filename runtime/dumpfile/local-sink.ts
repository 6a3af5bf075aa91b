// The sinks of `lastword filter` on this machine: a dump file (positional) and stdout or a file
// taking the flattened stream. The capture's targets have their own (runtime/targets).
import { once } from 'node:events';
import * as fs from 'node:fs';
import type { Writable } from 'node:stream';
import { LastwordError } from '../errors.ts';
import type { PositionalSink, StreamSink } from '../targets/sink.ts';

function fileError(err: unknown, file: string, offset?: number): LastwordError {
  const code = (err as NodeJS.ErrnoException).code;
  const where = { file, offset };
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG') {
    return new LastwordError('ETARGET_FULL', `${file}: no space left (${code})${offset === undefined ? '' : ` writing at offset 0x${offset.toString(16)}`}`, { where, cause: err });
  }
  return new LastwordError('ETARGET_IO', `${file}: ${(err as Error).message}`, { where, cause: err });
}

/** Opens `file` for a new dump: refuses to replace an existing file unless `overwrite` (makedumpfile -f). */
export function openDumpFile(file: string, overwrite: boolean): number {
  try {
    const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | (overwrite ? fs.constants.O_TRUNC : fs.constants.O_EXCL);
    return fs.openSync(file, flags, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new LastwordError('EDUMP_EXISTS', `${file} already exists (use -f to overwrite)`, { where: { file }, action: 'usage' });
    }
    throw fileError(err, file);
  }
}

export class FileDumpSink implements PositionalSink {
  readonly kind = 'positional';
  readonly file: string;
  private readonly fd: number;

  constructor(fd: number, file: string) {
    this.fd = fd;
    this.file = file;
  }

  async pwrite(buf: Buffer, offset: number): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      let n: number;
      try {
        n = await new Promise<number>((resolve, reject) => {
          fs.write(this.fd, buf, done, buf.length - done, offset + done, (err, w) => (err ? reject(err) : resolve(w)));
        });
      } catch (err) {
        throw fileError(err, this.file, offset + done);
      }
      if (n === 0) throw new LastwordError('ETARGET_FULL', `${this.file}: no more bytes accepted at offset 0x${(offset + done).toString(16)}`, { where: { file: this.file, offset: offset + done } });
      done += n;
    }
  }

  async close(): Promise<void> {
    try {
      fs.fsyncSync(this.fd);
    } catch (err) {
      try { fs.closeSync(this.fd); } catch { /* the fsync error is the one to report */ }
      throw fileError(err, this.file);
    }
    fs.closeSync(this.fd);
  }

  async abort(): Promise<void> {
    // A partial dump is still worth keeping: push out what was written.
    try { fs.fsyncSync(this.fd); } catch { /* best effort */ }
    try { fs.closeSync(this.fd); } catch { /* already closed */ }
  }
}

/** The flattened stream to stdout (or any Writable), with back-pressure. */
export class WritableDumpSink implements StreamSink {
  readonly kind = 'stream';
  private readonly stream: Writable;
  private readonly what: string;
  private failure: LastwordError | undefined;

  constructor(stream: Writable, what: string) {
    this.stream = stream;
    this.what = what;
    stream.on('error', (err) => { this.failure ??= fileError(err, what); });
  }

  async write(buf: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    // Resolve when the stream has handed `buf` on, so the writer may reuse it without a copy.
    await new Promise<void>((resolve) => {
      this.stream.write(buf, (err) => {
        if (err) this.failure ??= fileError(err, this.what);
        resolve();
      });
    });
    if (this.failure) throw this.failure;
    if (this.stream.destroyed) throw new LastwordError('ETARGET_IO', `${this.what}: closed while the dump was written`);
  }

  async close(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.stream !== process.stdout) {
      this.stream.end();
      await once(this.stream, 'finish');
    } else {
      await new Promise<void>((resolve) => this.stream.write('', () => resolve()));
    }
    if (this.failure) throw this.failure;
  }

  async abort(): Promise<void> {
    if (this.stream !== process.stdout) this.stream.destroy();
  }
}
