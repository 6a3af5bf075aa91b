// Compression off the main thread: a batch of pages is read from the vmcore, checked for zero
// pages and compressed by the native addon's own threads (CompressPool in runtime/codecs/native,
// exactly `workers` of them), while the main thread walks mem_map for the next batches. Batches
// queue in the addon, so a thread starts the next one as soon as it is done with one. The caller
// bounds the batches in flight; each batch owns its buffers, reused from batch to batch, so
// memory stays a few MiB whatever the vmcore size. No worker_threads: each of those is a V8
// isolate of its own (~10 MiB of RSS), and passing buffers between isolates is how buffers get
// detached or freed while still in use.
import * as os from 'node:os';
import { LastwordError } from '../errors.ts';
import { EHWPOISON } from '../system/vmcore-mmap.ts';
import { CODEC_FLAG, codecsAddon } from './codec.ts';
import type { CodecName, CodecsAddon, CompressPoolHandle, CompressedBatch } from './codec.ts';

export interface CompressorOptions {
  codec: CodecName;
  pageSize: number;
  /** Report all-zero pages as size 0 (dump level bit 1) instead of compressing them. */
  detectZero: boolean;
  /** Compression threads; 0 = compress in the calling thread. */
  workers: number;
  /** The vmcore fd whose spans are read through mappings (/proc/vmcore: Vmcore.mappedReads). */
  mappedFd?: number;
}

const NO_PAGES = Buffer.alloc(0);

/**
 * One batch's buffers: pages in `src`, or `spans` of the vmcore the compression thread reads into
 * its own buffer (then `src` is never allocated), compressed into `dst`.
 */
export class PageBatch {
  private pages: Buffer | undefined;
  readonly dst: Buffer;
  readonly sizes: Uint32Array;
  /** [fileOffset, bytes] pairs of the vmcore that make up the batch's pages in order; fileOffset -1 = zero-filled hole. */
  readonly spans: Float64Array;
  nspans = 0;
  count = 0;
  used = 0;
  readonly capacity: number;
  private readonly pageSize: number;

  /** The batch's page buffer, for callers that fill it themselves (allocated on first use). */
  get src(): Buffer {
    this.pages ??= Buffer.alloc(this.capacity * this.pageSize);
    return this.pages;
  }

  constructor(pageSize: number, capacity: number) {
    this.capacity = capacity;
    this.pageSize = pageSize;
    this.dst = Buffer.alloc(capacity * pageSize);
    this.sizes = new Uint32Array(capacity);
    this.spans = new Float64Array(2 * capacity + 2);
  }

  /** Appends `bytes` stored at `fileOffset` of the vmcore (-1: a hole, zeros); merges adjacent spans. */
  addSpan(fileOffset: number, bytes: number): void {
    const k = 2 * (this.nspans - 1);
    if (this.nspans > 0 && fileOffset >= 0 && this.spans[k]! >= 0 && this.spans[k]! + this.spans[k + 1]! === fileOffset) {
      this.spans[k + 1]! += bytes;
    } else if (this.nspans > 0 && fileOffset < 0 && this.spans[k]! < 0) {
      this.spans[k + 1]! += bytes;
    } else {
      if (this.nspans * 2 + 2 > this.spans.length) throw new RangeError('PageBatch: more spans than pages');
      this.spans[2 * this.nspans] = fileOffset;
      this.spans[2 * this.nspans + 1] = bytes;
      this.nspans++;
    }
  }

  /** The vmcore file offset of page `i`'s first byte that is read from the file (-1: the page is all hole). */
  fileOffsetOf(i: number): number {
    const start = i * this.pageSize, end = start + this.pageSize;
    for (let k = 0, at = 0; k < this.nspans && at < end; k++) {
      const off = this.spans[2 * k]!, len = this.spans[2 * k + 1]!;
      if (off >= 0 && at + len > start) return off + Math.max(0, start - at);
      at += len;
    }
    return -1;
  }

  reset(): void {
    this.nspans = 0;
    this.count = 0;
    this.used = 0;
  }
}

/**
 * A batch size at or above this is a page whose read failed (the addon's kUnreadable): the low 16
 * bits are the errno, 0xffff for the end of the file. Such a page is zero in no sense: its data is lost.
 */
export const UNREADABLE_PAGE = 0xffff0000;

/**
 * What the failed read of an UNREADABLE_PAGE size says, e.g. "EIO (errno 5)". Not through node:util
 * (getSystemErrorName): importing it cost 2.8 MiB of peak RSS in every `lastword filter` run.
 */
export function unreadableReason(size: number): string {
  const errno = size & 0xffff;
  if (errno === 0xffff) return 'the vmcore file ends before it';
  if (errno === EHWPOISON) return `EHWPOISON (errno ${errno}: a memory error in the crashed kernel's page)`;
  const name = Object.entries(os.constants.errno).find(([, v]) => v === errno)?.[0];
  return name ? `${name} (errno ${errno})` : `errno ${errno}`;
}

/** Compresses batches of pages, on the addon's compression threads or inline. */
export class PageCompressor {
  readonly opts: CompressorOptions;
  private readonly addon: CodecsAddon;
  private readonly method: number;
  private pool: CompressPoolHandle | undefined;
  private readonly pending = new Map<number, { batch: PageBatch; resolve: () => void; reject: (err: LastwordError) => void }>();
  private nextId = 0;

  constructor(opts: CompressorOptions) {
    this.opts = opts;
    this.addon = codecsAddon();
    // A checkout whose build/native predates the compression threads (npm run build:native).
    if (typeof this.addon.CompressPool !== 'function') {
      throw new LastwordError('ENATIVE_LOAD', 'the codecs addon is older than this lastword (no CompressPool): run npm run build:native');
    }
    this.method = CODEC_FLAG[opts.codec];
    if (opts.mappedFd !== undefined && opts.mappedFd >= 0) this.addon.mapReads(opts.mappedFd);
  }

  private threads(): CompressPoolHandle {
    this.pool ??= new this.addon.CompressPool(this.opts.workers, (id, used, error) => {
      const p = this.pending.get(id);
      if (!p) return;
      this.pending.delete(id);
      if (error !== null) p.reject(compressError(new Error(error)));
      else { p.batch.used = used; p.resolve(); }
    });
    return this.pool;
  }

  /**
   * Reads the batch's spans from `fd` (when fd >= 0, into the compressing thread's own buffer;
   * else `src` already holds the pages) and
   * compresses them; `batch.used` and `batch.sizes` hold the result. The batch's buffers must not
   * be touched until the promise settles.
   */
  run(batch: PageBatch, fd: number): Promise<void> {
    const { pageSize, detectZero } = this.opts;
    const src = fd >= 0 ? NO_PAGES : batch.src;
    if (this.opts.workers === 0) {
      try {
        batch.used = this.addon.compressPagesSpans(this.method, fd, batch.spans, batch.nspans, src, pageSize, batch.count, batch.dst, batch.sizes, detectZero);
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(compressError(err));
      }
    }
    return new Promise((resolve, reject) => {
      const id = this.nextId++ >>> 0;
      try {
        this.threads().submit(id, this.method, fd, batch.spans, batch.nspans, src, pageSize, batch.count, batch.dst, batch.sizes, detectZero);
        this.pending.set(id, { batch, resolve, reject });
      } catch (err) {
        reject(compressError(err));
      }
    });
  }

  /** Compresses `count` pages of `pages` (a convenience for callers that have the pages in memory). */
  async compress(pages: Buffer, count: number): Promise<CompressedBatch> {
    const batch = new PageBatch(this.opts.pageSize, count);
    pages.copy(batch.src, 0, 0, count * this.opts.pageSize);
    batch.count = count;
    await this.run(batch, -1);
    return { count, sizes: batch.sizes, data: batch.dst, used: batch.used };
  }

  /** Ends the compression threads once they finished the queued batches (their results still arrive). */
  async close(): Promise<void> {
    this.pool?.close();
    this.pool = undefined;
    if (this.opts.mappedFd !== undefined && this.opts.mappedFd >= 0) this.addon.mapReads(-1);
  }
}

function compressError(err: unknown): LastwordError {
  if (err instanceof LastwordError) return err;
  return new LastwordError('ECOMPRESS', `page compression failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

/**
 * Default compression threads: one per CPU the process may use, and none (compression in the main
 * thread) on one CPU, as a capture kernel with kdump's nr_cpus=1 has: there a thread only adds a
 * hand-off and a switch per batch. In a 6.1 capture kernel (QEMU TCG, `npm run bench:capture`),
 * -l -d 31 of a 1 GiB guest took 1.46-1.59 s inline against 1.39-1.87 s with one thread (copying
 * step 0.89 s against ~1.05 s).
 */
export function defaultWorkers(cpus = os.availableParallelism()): number {
  return cpus > 1 ? cpus : 0;
}
