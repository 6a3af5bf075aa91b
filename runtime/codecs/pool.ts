// Compression workers: batches of pages go to worker_threads that call the native addon, so
// reading + filtering (main thread) overlap with compression. Results come back in submission
// order; the caller bounds the number of batches in flight (the pool's queue is bounded by it).
//
// Inside the single executable `new Worker(file)` cannot load the bundle from disk, so the
// worker is an eval'd script that only requires builtins and dlopens the addon file that the
// main thread already loaded (extracted from the SEA asset, see system/native-loader.ts).
import * as os from 'node:os';
import { Worker } from 'node:worker_threads';
import { LastwordError } from '../errors.ts';
import { loadedNativeFile } from '../system/native-loader.ts';
import { CODEC_FLAG, codecsAddon } from './codec.ts';
import type { CodecName, CodecsAddon, CompressedBatch } from './codec.ts';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const os = require('node:os');
const mod = { exports: {} };
process.dlopen(mod, workerData.addonFile, os.constants.dlopen.RTLD_NOW);
const addon = mod.exports;
parentPort.on('message', (m) => {
  try {
    const pages = Buffer.from(m.pages);
    const data = Buffer.from(m.data);
    const sizes = new Uint32Array(m.count);
    const used = addon.compressPages(m.method, pages, m.pageSize, m.count, data, sizes, m.detectZero);
    parentPort.postMessage({ id: m.id, sizes, data: m.data, used, pages: m.pages }, [m.data, sizes.buffer, m.pages]);
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: String(err && err.message || err) });
  }
});
`;

export interface CompressorOptions {
  codec: CodecName;
  pageSize: number;
  /** Report all-zero pages as size 0 (dump level bit 1) instead of compressing them. */
  detectZero: boolean;
  /** 0 = compress in the calling thread. */
  workers: number;
}

interface Pending {
  resolve: (b: CompressedBatch) => void;
  reject: (e: unknown) => void;
}

/** Compresses batches of pages, in worker threads or inline. */
export class PageCompressor {
  readonly opts: CompressorOptions;
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private addon: CodecsAddon;
  private nextId = 0;
  private failed: unknown;
  private closing = false;
  // Batch buffers go round main -> worker -> main instead of becoming garbage: a stream of fresh
  // 1 MiB ArrayBuffers makes RSS grow far beyond what is in use before V8 collects them.
  private readonly free: ArrayBuffer[] = [];

  constructor(opts: CompressorOptions) {
    this.opts = opts;
    // Loading here also extracts the addon in the executable, which gives the workers its path.
    this.addon = codecsAddon();
    if (opts.workers > 0) {
      const addonFile = loadedNativeFile('codecs');
      for (let i = 0; i < opts.workers; i++) {
        const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { addonFile } });
        w.on('message', (m: { id: number; error?: string; sizes: Uint32Array; data: ArrayBuffer; used: number; pages: ArrayBuffer }) => {
          if (m.pages) this.free.push(m.pages);
          const p = this.pending.get(m.id);
          if (!p) return;
          this.pending.delete(m.id);
          if (m.error !== undefined) p.reject(new LastwordError('ECOMPRESS', `compression worker failed: ${m.error}`));
          else p.resolve({ count: m.sizes.length, sizes: m.sizes, data: Buffer.from(m.data), used: m.used });
        });
        w.on('error', (err) => this.failAll(err));
        w.on('exit', (code) => { if (!this.closing) this.failAll(new Error(`worker exited with ${code}`)); });
        this.workers.push(w);
      }
    }
  }

  /**
   * Compresses `count` pages. With workers the `pages` buffer is transferred: the caller must not
   * use it afterwards (allocate a new one per batch).
   */
  compress(pages: Buffer, count: number): Promise<CompressedBatch> {
    if (this.failed) return Promise.reject(this.failed);
    const { codec, pageSize, detectZero } = this.opts;
    const data = this.buffer(count * pageSize);
    if (this.workers.length === 0) {
      try {
        const out = Buffer.from(data);
        const sizes = new Uint32Array(count);
        const used = this.addon.compressPages(CODEC_FLAG[codec], pages, pageSize, count, out, sizes, detectZero);
        if (pages.byteOffset === 0 && pages.byteLength === pages.buffer.byteLength) this.free.push(pages.buffer as ArrayBuffer);
        return Promise.resolve({ count, sizes, data: out, used });
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const id = this.nextId++;
    const w = this.workers[id % this.workers.length]!;
    // Only a whole, unshared ArrayBuffer can be transferred.
    const ab = pages.byteOffset === 0 && pages.byteLength === pages.buffer.byteLength
      ? pages.buffer as ArrayBuffer
      : pages.buffer.slice(pages.byteOffset, pages.byteOffset + count * pageSize) as ArrayBuffer;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.postMessage({ id, method: CODEC_FLAG[codec], pages: ab, data, pageSize, count, detectZero }, [ab, data]);
    });
  }

  /** A transferable buffer of at least `bytes` (batch buffers are all the same size). */
  buffer(bytes: number): ArrayBuffer {
    const i = this.free.findIndex((b) => b.byteLength >= bytes);
    return i >= 0 ? this.free.splice(i, 1)[0]! : new ArrayBuffer(bytes);
  }

  /** Hands a batch's data buffer back once it is written. */
  recycle(batch: CompressedBatch): void {
    const b = batch.data;
    if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && this.free.length < 64) this.free.push(b.buffer as ArrayBuffer);
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }

  private failAll(err: unknown): void {
    this.failed ??= new LastwordError('ECOMPRESS', `compression worker failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    for (const p of this.pending.values()) p.reject(this.failed);
    this.pending.clear();
  }
}

/** Default worker count: one per CPU the process may use. */
export function defaultWorkers(): number {
  return Math.max(1, os.availableParallelism());
}

