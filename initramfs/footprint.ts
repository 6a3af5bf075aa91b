// What an initramfs costs the capture kernel: its compressed size (held while the kernel unpacks
// it) and its unpacked size (rootfs is tmpfs/ramfs: those pages stay pinned for the whole capture).
// Streams the image through a newc parser; gzip, zstd or plain, as the kernel's unpacker accepts.
import * as fs from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { LastwordError } from '../runtime/errors.ts';

export interface InitramfsFootprint {
  compressedBytes: number;
  /** bytes of file data in the archive (symlink targets included): what rootfs holds */
  unpackedBytes: number;
  entries: number;
  /** the largest files, biggest first (path, bytes) */
  largest: Array<[string, number]>;
}

const HEADER = 110;

/** Counts newc entries and their data sizes from a stream of uncompressed archive bytes. */
class NewcCounter extends Writable {
  unpacked = 0;
  entries = 0;
  files: Array<[string, number]> = [];
  private buf = Buffer.alloc(0);
  private skip = 0;
  private done = false;

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error) => void): void {
    try {
      this.feed(chunk);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  private feed(chunk: Buffer): void {
    if (this.done) return;
    let data = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      if (this.skip) {
        const n = Math.min(this.skip, data.length);
        this.skip -= n;
        data = data.subarray(n);
        if (this.skip) break;
      }
      if (data.length < HEADER) break;
      const magic = data.toString('latin1', 0, 6);
      if (magic !== '070701' && magic !== '070702') throw new LastwordError('EINITRD_FORMAT', `not a newc cpio archive (magic '${magic}')`);
      const field = (i: number) => parseInt(data.toString('latin1', 6 + i * 8, 14 + i * 8), 16);
      const size = field(6);
      const namesize = field(11);
      const nameEnd = HEADER + namesize;
      if (data.length < nameEnd) break;
      const name = data.toString('latin1', HEADER, nameEnd - 1);
      if (name === 'TRAILER!!!') { this.done = true; break; }
      this.entries++;
      this.unpacked += size;
      if (size) this.files.push([name, size]);
      const dataStart = Math.ceil(nameEnd / 4) * 4;
      this.skip = dataStart + Math.ceil(size / 4) * 4;
    }
    this.buf = Buffer.from(data);
  }
}

function decompressorFor(head: Buffer): zlib.Gunzip | zlib.ZstdDecompress | undefined {
  if (head[0] === 0x1f && head[1] === 0x8b) return zlib.createGunzip();
  if (head.readUInt32LE(0) === 0xfd2fb528) return zlib.createZstdDecompress();
  if (head.toString('latin1', 0, 6).startsWith('0707')) return undefined;
  throw new LastwordError('EINITRD_FORMAT', 'initramfs is neither newc cpio, gzip nor zstd (lz4/xz/bzip2 images are not read here)');
}

export async function initramfsFootprint(file: string): Promise<InitramfsFootprint> {
  const fd = fs.openSync(file, 'r');
  const head = Buffer.alloc(8);
  fs.readSync(fd, head, 0, 8, 0);
  fs.closeSync(fd);
  const counter = new NewcCounter();
  const z = decompressorFor(head);
  if (z) await pipeline(fs.createReadStream(file), z, counter);
  else await pipeline(fs.createReadStream(file), counter);
  return {
    compressedBytes: fs.statSync(file).size,
    unpackedBytes: counter.unpacked,
    entries: counter.entries,
    largest: counter.files.sort((a, b) => b[1] - a[1]).slice(0, 5),
  };
}
