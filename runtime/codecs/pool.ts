// Compression off the main thread: a batch of pages is read from the vmcore, checked for zero
// pages and compressed by the native addon on libuv's threadpool (runtime/codecs/native), while
// the main thread walks mem_map for the next batches. The caller bounds the batches in flight
// (`workers` at a time); each batch owns its buffers, reused from batch to batch, so memory stays
// a few MiB whatever the vmcore size. No worker_threads: each of those is a V8 isolate of its own
// (~10 MiB of RSS), and passing buffers between isolates is how buffers get detached or freed
// while still in use.
import * as os from 'node:os';
import { LastwordError } from '../errors.ts';
import { CODEC_FLAG, codecsAddon } from './codec.ts';
import type { CodecName, CodecsAddon, CompressedBatch } from './codec.ts';

export interface CompressorOptions {
  codec: CodecName;
  pageSize: number;
  /** Report all-zero pages as size 0 (dump level bit 1) instead of compressing them. */
  detectZero: boolean;
  /** Batches compressed at once on the threadpool; 0 = compress in the calling thread. */
  workers: number;
}

/** One batch's buffers: pages in `src` (or read into it from `spans`), compressed into `dst`. */
export class PageBatch {
  readonly src: Buffer;
  readonly dst: Buffer;
  readonly sizes: Uint32Array;
  /** [fileOffset, bytes] pairs that fill `src` in order; fileOffset -1 = zero-filled hole. */
  readonly spans: Float64Array;
  nspans = 0;
  count = 0;
  used = 0;
  readonly capacity: number;

  constructor(pageSize: number, capacity: number) {
    this.capacity = capacity;
    this.src = Buffer.alloc(capacity * pageSize);
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

  reset(): void {
    this.nspans = 0;
    this.count = 0;
    this.used = 0;
  }
}

/** Compresses batches of pages, on the threadpool or inline. */
export class PageCompressor {
  readonly opts: CompressorOptions;
  private readonly addon: CodecsAddon;
  private readonly method: number;

  constructor(opts: CompressorOptions) {
    this.opts = opts;
    this.addon = codecsAddon();
    // A checkout whose build/native predates the threadpool entry points (npm run build:native).
    if (typeof this.addon.compressPagesAsync !== 'function') {
      throw new LastwordError('ENATIVE_LOAD', 'the codecs addon is older than this lastword (no compressPagesAsync): run npm run build:native');
    }
    this.method = CODEC_FLAG[opts.codec];
  }

  /**
   * Reads the batch's spans from `fd` (when fd >= 0; else `src` already holds the pages) and
   * compresses them; `batch.used` and `batch.sizes` hold the result. The batch's buffers must not
   * be touched until the promise settles.
   */
  run(batch: PageBatch, fd: number): Promise<void> {
    const { pageSize, detectZero } = this.opts;
    if (this.opts.workers === 0) {
      try {
        batch.used = this.addon.compressPagesSpans(this.method, fd, batch.spans, batch.nspans, batch.src, pageSize, batch.count, batch.dst, batch.sizes, detectZero);
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(compressError(err));
      }
    }
    return new Promise((resolve, reject) => {
      try {
        this.addon.compressPagesAsync(this.method, fd, batch.spans, batch.nspans, batch.src, pageSize, batch.count, batch.dst, batch.sizes, detectZero, (err, used) => {
          if (err) reject(compressError(err));
          else { batch.used = used!; resolve(); }
        });
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

  async close(): Promise<void> {
    // Nothing to stop: threadpool jobs end with their batch, which the caller awaits.
  }
}

function compressError(err: unknown): LastwordError {
  if (err instanceof LastwordError) return err;
  return new LastwordError('ECOMPRESS', `page compression failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

/** Default compression threads: one per CPU the process may use. */
export function defaultWorkers(): number {
  return Math.max(1, os.availableParallelism());
}
