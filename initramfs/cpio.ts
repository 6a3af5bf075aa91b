// Deterministic newc ("070701") cpio writer, the format the kernel's init/initramfs.c unpacks,
// optionally gzip- or zstd-compressed with node:zlib. The same entries give the same bytes:
// entries are sorted by path (a directory sorts before its contents, which the kernel needs because
// it creates no parent directories), inode numbers count up from 1 in that order, owners are root,
// and every mtime is one fixed value. File data streams from the host file: the executable is
// ~100 MiB and must never sit in memory whole.
import * as fs from 'node:fs';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { LastwordError } from '../runtime/errors.ts';

export type CpioEntry =
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'file'; path: string; mode?: number; source: string }
  | { type: 'file'; path: string; mode?: number; data: Buffer | string }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'char' | 'block'; path: string; mode?: number; major: number; minor: number };

export type CpioCompression = 'none' | 'gzip' | 'zstd';

export interface CpioOptions {
  /** mtime of every entry (seconds); 0 unless a caller wants e.g. SOURCE_DATE_EPOCH */
  mtime?: number;
  compression?: CpioCompression;
  /** gzip 1-9 (default 9), zstd 1-19 (default 19) */
  level?: number;
}

// linux/stat.h
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const NEWC_MAGIC = '070701';
const TRAILER = 'TRAILER!!!';
// newc fields are 8 hex digits: no file in an initramfs may reach 4 GiB
const MAX_FIELD = 0xffffffff;

const pad4 = (n: number): Buffer => Buffer.alloc((4 - (n % 4)) % 4);

interface Header {
  ino: number;
  mode: number;
  nlink: number;
  mtime: number;
  size: number;
  rdevMajor?: number;
  rdevMinor?: number;
  name: string;
}

/** One newc header with its NUL-terminated name, padded so the data starts 4-aligned. */
export function newcHeader(h: Header): Buffer {
  const name = Buffer.from(h.name + '\0');
  // c_ino c_mode c_uid c_gid c_nlink c_mtime c_filesize c_devmajor c_devminor c_rdevmajor c_rdevminor c_namesize c_check
  const fields = [h.ino, h.mode, 0, 0, h.nlink, h.mtime, h.size, 0, 0, h.rdevMajor ?? 0, h.rdevMinor ?? 0, name.length, 0];
  for (const f of fields) {
    if (!Number.isInteger(f) || f < 0 || f > MAX_FIELD) {
      throw new LastwordError('ECPIO_FIELD', `cpio entry ${h.name}: field value ${f} does not fit newc's 32 bits`);
    }
  }
  const head = Buffer.from(NEWC_MAGIC + fields.map((f) => f.toString(16).padStart(8, '0')).join(''), 'latin1');
  return Buffer.concat([head, name, pad4(head.length + name.length)]);
}

/** 'usr/bin/x' from '/usr/bin/x', './usr/bin/x' or 'usr//bin/x/'; refuses '..' and empty paths. */
export function archivePath(p: string): string {
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (!parts.length || parts.includes('..')) throw new LastwordError('ECPIO_PATH', `cpio entry path '${p}' is empty or leaves the archive`);
  return parts.join('/');
}

/** Sorted by path components (so 'a' < 'a/b' < 'a-b'); duplicate paths are refused. */
export function sortEntries(entries: readonly CpioEntry[]): CpioEntry[] {
  const keyed = entries.map((e) => ({ e: { ...e, path: archivePath(e.path) } as CpioEntry, key: archivePath(e.path).split('/') }));
  keyed.sort((a, b) => {
    const n = Math.min(a.key.length, b.key.length);
    for (let i = 0; i < n; i++) {
      if (a.key[i] !== b.key[i]) return Buffer.compare(Buffer.from(a.key[i]!), Buffer.from(b.key[i]!));
    }
    return a.key.length - b.key.length;
  });
  for (let i = 1; i < keyed.length; i++) {
    if (keyed[i]!.e.path === keyed[i - 1]!.e.path) throw new LastwordError('ECPIO_PATH', `cpio entry ${keyed[i]!.e.path} is listed twice`);
  }
  return keyed.map((k) => k.e);
}

/** The uncompressed archive as chunks: headers, data, padding, then the trailer padded to 512 bytes. */
export async function* newcChunks(entries: readonly CpioEntry[], opts: { mtime?: number } = {}): AsyncGenerator<Buffer> {
  const mtime = opts.mtime ?? 0;
  let ino = 1;
  let offset = 0;
  const out = (b: Buffer): Buffer => { offset += b.length; return b; };
  for (const e of sortEntries(entries)) {
    const name = e.path;
    if (e.type === 'dir') {
      yield out(newcHeader({ ino: ino++, mode: S_IFDIR | (e.mode ?? 0o755), nlink: 2, mtime, size: 0, name }));
    } else if (e.type === 'symlink') {
      const t = Buffer.from(e.target);
      yield out(Buffer.concat([newcHeader({ ino: ino++, mode: S_IFLNK | 0o777, nlink: 1, mtime, size: t.length, name }), t, pad4(t.length)]));
    } else if (e.type !== 'file') {
      const kind = e.type === 'char' ? S_IFCHR : S_IFBLK;
      yield out(newcHeader({ ino: ino++, mode: kind | (e.mode ?? 0o600), nlink: 1, mtime, size: 0, rdevMajor: e.major, rdevMinor: e.minor, name }));
    } else if ('data' in e) {
      const d = Buffer.from(e.data);
      yield out(Buffer.concat([newcHeader({ ino: ino++, mode: S_IFREG | (e.mode ?? 0o644), nlink: 1, mtime, size: d.length, name }), d, pad4(d.length)]));
    } else {
      yield* fileChunks(e.source, name, ino++, e.mode, mtime, out);
    }
  }
  yield out(newcHeader({ ino: 0, mode: 0, nlink: 1, mtime: 0, size: 0, name: TRAILER }));
  // GNU cpio pads the archive to its 512-byte block; the kernel ignores the zeros
  yield Buffer.alloc((512 - (offset % 512)) % 512);
}

async function* fileChunks(source: string, name: string, ino: number, mode: number | undefined, mtime: number,
  out: (b: Buffer) => Buffer): AsyncGenerator<Buffer> {
  let st: fs.Stats;
  try {
    st = fs.statSync(source);
  } catch (err) {
    throw new LastwordError('ECPIO_SOURCE', `cpio entry ${name}: cannot read ${source}: ${(err as Error).message}`, { cause: err });
  }
  if (!st.isFile()) throw new LastwordError('ECPIO_SOURCE', `cpio entry ${name}: ${source} is not a regular file`);
  yield out(newcHeader({ ino, mode: S_IFREG | (mode ?? st.mode & 0o7777), nlink: 1, mtime, size: st.size, name }));
  let seen = 0;
  for await (const chunk of fs.createReadStream(source, { highWaterMark: 1 << 20 })) {
    const b = chunk as Buffer;
    seen += b.length;
    if (seen > st.size) break;
    yield out(b);
  }
  // a file that changes while it is archived would shift every later header
  if (seen !== st.size) throw new LastwordError('ECPIO_SOURCE', `cpio entry ${name}: ${source} changed size while archived (${st.size} -> ${seen} bytes)`);
  yield out(pad4(st.size));
}

function compressor(opts: CpioOptions): zlib.Gzip | zlib.ZstdCompress | undefined {
  switch (opts.compression ?? 'none') {
    case 'none': return undefined;
    // node's gzip header carries mtime 0 and OS 3 (unix): deterministic
    case 'gzip': return zlib.createGzip({ level: opts.level ?? 9 });
    case 'zstd': return zlib.createZstdCompress({
      params: {
        [zlib.constants.ZSTD_c_compressionLevel]: opts.level ?? 19,
        // the kernel's unzstd verifies the frame checksum: a damaged image fails loudly at unpack
        [zlib.constants.ZSTD_c_checksumFlag]: 1,
      },
    });
    default: throw new LastwordError('ECPIO_COMPRESSION', `unknown cpio compression '${String(opts.compression)}'`, { action: 'usage' });
  }
}

/** Streams the (compressed) archive into `dest`, with back-pressure. */
export async function writeCpio(entries: readonly CpioEntry[], dest: Writable, opts: CpioOptions = {}): Promise<void> {
  const z = compressor(opts);
  const source = Readable.from(newcChunks(entries, opts), { objectMode: false });
  if (z) await pipeline(source, z, dest);
  else await pipeline(source, dest);
}

/** Writes the archive to `file` atomically (a temporary name, then rename). */
export async function writeCpioFile(entries: readonly CpioEntry[], file: string, opts: CpioOptions = {}): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    await writeCpio(entries, fs.createWriteStream(tmp), opts);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
