// The page codecs of kdump-compressed dumps behind one interface. Every codec is the one
// makedumpfile uses for the same option, so crash and makedumpfile read what we write:
//   -c zlib (compress2 level 1, zlib stream), -l lzo1x_1, -p raw snappy block, -z zstd level 1 frame.
// Compression runs in batches of pages inside the native addon (runtime/codecs/native), on the
// addon's own threads (pool.ts).
import { LastwordError } from '../errors.ts';
import { loadNative } from '../system/native-loader.ts';
import {
  DUMP_DH_COMPRESSED_LZO, DUMP_DH_COMPRESSED_SNAPPY, DUMP_DH_COMPRESSED_ZLIB, DUMP_DH_COMPRESSED_ZSTD,
} from '../dumpfile/kdump-layout.ts';

export type CodecName = 'none' | 'zlib' | 'lzo' | 'snappy' | 'zstd';

/** The page_desc flag (and header status bit) of each codec; 0 = stored raw. */
export const CODEC_FLAG: Record<CodecName, number> = {
  none: 0,
  zlib: DUMP_DH_COMPRESSED_ZLIB,
  lzo: DUMP_DH_COMPRESSED_LZO,
  snappy: DUMP_DH_COMPRESSED_SNAPPY,
  zstd: DUMP_DH_COMPRESSED_ZSTD,
};

/** The native addon's functions (runtime/codecs/native/codecs.cc). */
export interface CodecsAddon {
  /** null when the codec (its CODEC_FLAG) can be used, else why not: its library is missing (codec-libs.h). */
  codecError(method: number): string | null;
  /** The shared library the codec is opened from at run time ("" for none and zlib). */
  codecLibrary(method: number): string;
  /**
   * Compresses `count` pages of `src` into `dst` back to back; sizes[i] = stored length of page i
   * (< pageSize compressed, == pageSize raw, 0 = all-zero page when detectZero). Returns bytes used.
   */
  compressPages(method: number, src: Buffer, pageSize: number, count: number, dst: Buffer, sizes: Uint32Array, detectZero: boolean): number;
  /**
   * Like compressPages, but first preads the pages from vmcore `fd` (when fd >= 0): `spans` holds
   * `nspans` [fileOffset, bytes] pairs read in order into the calling thread's own page buffer
   * (`src` is then not used and may be empty), fileOffset < 0 = zero-filled hole.
   */
  compressPagesSpans(method: number, fd: number, spans: Float64Array, nspans: number, src: Buffer, pageSize: number, count: number, dst: Buffer, sizes: Uint32Array, detectZero: boolean): number;
  /** `threads` compression threads; onDone(id, used, error) reports each submitted batch. */
  CompressPool: new (threads: number, onDone: (id: number, used: number, error: string | null) => void) => CompressPoolHandle;
  /** Decompresses one page into `dst`; returns the length produced. Throws on corrupt data. */
  decompressPage(method: number, src: Buffer, dst: Buffer): number;
  /** Spans of vmcore `fd` are read through mappings from now on, on every thread (-1: none). */
  mapReads(fd: number): void;
  /** Windows mapped so far by every thread (for tests). */
  mappedWindows(): number;
}

/** The addon's compression threads (codecs.cc CompressPool). */
export interface CompressPoolHandle {
  /** compressPagesSpans on a compression thread; the buffers must stay untouched until onDone(id). */
  submit(id: number, method: number, fd: number, spans: Float64Array, nspans: number, src: Buffer, pageSize: number, count: number, dst: Buffer, sizes: Uint32Array, detectZero: boolean): void;
  /** The threads finish the queued batches and end. */
  close(): void;
}

export function codecsAddon(): CodecsAddon {
  return loadNative<CodecsAddon>('codecs');
}

/** Codecs whose library the addon opens at run time (liblzo2, libsnappy, libzstd). */
export const LIBRARY_CODECS = ['lzo', 'snappy', 'zstd'] as const;

/**
 * `name`, or zlib when the library behind it is missing on this system (said through `warn`): the
 * dump is written either way and crash reads either. On Debian 12 with kdump-tools and
 * makedumpfile installed there is no libsnappy, for one.
 */
export function usableCodec(name: CodecName, warn: (message: string) => void): CodecName {
  if (name === 'none' || name === 'zlib') return name;      // no library to open (nor the addon, for ELF)
  const why = codecsAddon().codecError(CODEC_FLAG[name]);
  if (why === null) return name;
  warn(`${name} cannot be used (${why}); the dump is compressed with zlib instead`);
  return 'zlib';
}

/** The result of compressing one batch: page i's bytes are data[offsets[i], offsets[i]+sizes[i]). */
export interface CompressedBatch {
  count: number;
  sizes: Uint32Array;
  data: Buffer;
  used: number;
}

/** Compresses a batch in this thread. Workers call the same function (see pool.ts). */
export function compressBatch(addon: CodecsAddon, codec: CodecName, pages: Buffer, pageSize: number, count: number, detectZero: boolean): CompressedBatch {
  const data = Buffer.allocUnsafe(count * pageSize);
  const sizes = new Uint32Array(count);
  const used = addon.compressPages(CODEC_FLAG[codec], pages, pageSize, count, data, sizes, detectZero);
  return { count, sizes, data, used };
}

/** Decompresses one stored page (page_desc.flags says which codec) into `into` (pageSize bytes). */
export function decompressPage(addon: CodecsAddon, flags: number, stored: Buffer, into: Buffer, where: { file: string; pfn: number }): void {
  const method = flags & (DUMP_DH_COMPRESSED_ZLIB | DUMP_DH_COMPRESSED_LZO | DUMP_DH_COMPRESSED_SNAPPY | DUMP_DH_COMPRESSED_ZSTD);
  if (method === 0) {
    if (stored.length !== into.length) {
      throw new LastwordError('EDUMP_PAGE', `${where.file}: raw page of pfn 0x${where.pfn.toString(16)} is ${stored.length} bytes, expected ${into.length}`, { where });
    }
    stored.copy(into);
    return;
  }
  let got: number;
  try {
    got = addon.decompressPage(method, stored, into);
  } catch (err) {
    throw new LastwordError('EDUMP_PAGE', `${where.file}: cannot decompress pfn 0x${where.pfn.toString(16)}: ${(err as Error).message}`, { where, cause: err });
  }
  if (got !== into.length) {
    throw new LastwordError('EDUMP_PAGE', `${where.file}: pfn 0x${where.pfn.toString(16)} decompressed to ${got} bytes, expected ${into.length}`, { where });
  }
}

export function parseCodecName(s: string): CodecName {
  if (s === 'none' || s === 'zlib' || s === 'lzo' || s === 'snappy' || s === 'zstd') return s;
  throw new LastwordError('EUSAGE', `unknown compression ${JSON.stringify(s)} (none, zlib, lzo, snappy, zstd)`, { action: 'usage' });
}
