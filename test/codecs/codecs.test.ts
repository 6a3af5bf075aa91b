// The page codecs against independent decoders: node:zlib inflates our zlib pages and decodes
// our zstd frames; every codec round-trips through the addon; the compression threads produce exactly
// what inline compression produces; incompressible pages never overrun a buffer.
import * as crypto from 'node:crypto';
import * as zlib from 'node:zlib';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CODEC_FLAG, codecsAddon, compressBatch, decompressPage } from '../../runtime/codecs/codec.ts';
import type { CodecName } from '../../runtime/codecs/codec.ts';
import { PageBatch, PageCompressor, UNREADABLE_PAGE, defaultWorkers, unreadableReason } from '../../runtime/codecs/pool.ts';
import { LastwordError } from '../../runtime/errors.ts';

const PAGE = 4096;

/** Pages a vmcore has: zero, random (incompressible), text, pointer arrays. */
function samplePages(count: number, seed = 1): Buffer {
  const buf = Buffer.alloc(count * PAGE);
  let x = seed;
  for (let i = 0; i < count; i++) {
    const p = buf.subarray(i * PAGE, (i + 1) * PAGE);
    switch (i % 4) {
      case 0: break;                                         // zero page
      case 1: crypto.randomFillSync(p); break;               // incompressible
      case 2: p.write(`page ${i}: the kernel's last words. `.repeat(120), 'latin1'); break;
      case 3: for (let j = 0; j < PAGE; j += 8) { x = (x * 1103515245 + 12345) >>> 0; p.writeBigUInt64LE(0xffff888000000000n + BigInt(x & 0xfff000), j); } break;
    }
  }
  return buf;
}

function pagesOf(batch: { sizes: Uint32Array; data: Buffer }): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (const s of batch.sizes) { out.push(batch.data.subarray(at, at + s)); at += s; }
  return out;
}

test('compression threads by default: one per CPU, none on one CPU (nr_cpus=1 capture kernels compress in the main thread)', () => {
  assert.equal(defaultWorkers(1), 0);
  assert.equal(defaultWorkers(2), 2);
  assert.equal(defaultWorkers(8), 8);
});

describe('page codecs', () => {
  const addon = codecsAddon();
  const pages = samplePages(16);

  for (const codec of ['zlib', 'lzo', 'snappy', 'zstd', 'none'] as CodecName[]) {
    test(`${codec}: every page round-trips, incompressible pages are stored raw`, () => {
      const batch = compressBatch(addon, codec, pages, PAGE, 16, false);
      const stored = pagesOf(batch);
      assert.equal(batch.used, stored.reduce((n, b) => n + b.length, 0));
      for (let i = 0; i < 16; i++) {
        const size = batch.sizes[i]!;
        const original = pages.subarray(i * PAGE, (i + 1) * PAGE);
        if (i % 4 === 1 || codec === 'none') assert.equal(size, PAGE, `page ${i} should be raw`);
        else assert.ok(size < PAGE, `page ${i} (kind ${i % 4}) did not compress: ${size}`);
        const out = Buffer.alloc(PAGE);
        decompressPage(addon, size < PAGE ? CODEC_FLAG[codec] : 0, stored[i]!, out, { file: 'test', pfn: i });
        assert.ok(out.equals(original), `page ${i} differs after the round trip`);
      }
    });
  }

  test('zlib pages are zlib streams (node:zlib inflates them) and zstd pages are zstd frames', () => {
    for (const [codec, decode] of [['zlib', zlib.inflateSync], ['zstd', zlib.zstdDecompressSync]] as const) {
      const batch = compressBatch(addon, codec, pages, PAGE, 16, false);
      const stored = pagesOf(batch);
      for (const i of [0, 2, 3]) assert.ok(decode(stored[i]!).equals(pages.subarray(i * PAGE, (i + 1) * PAGE)), `${codec} page ${i}`);
    }
  });

  test('with zero detection, all-zero pages take no space and report size 0', () => {
    const batch = compressBatch(addon, 'lzo', pages, PAGE, 16, true);
    for (let i = 0; i < 16; i++) assert.equal(batch.sizes[i] === 0, i % 4 === 0, `page ${i}`);
  });

  test('corrupt compressed data is an EDUMP_PAGE error naming the pfn', () => {
    for (const codec of ['zlib', 'lzo', 'snappy', 'zstd'] as CodecName[]) {
      const batch = compressBatch(addon, codec, pages, PAGE, 16, false);
      const bad = Buffer.from(pagesOf(batch)[2]!);
      bad.fill(0x5a, 0, Math.min(bad.length, 24));
      assert.throws(() => decompressPage(addon, CODEC_FLAG[codec], bad, Buffer.alloc(PAGE), { file: 'dump', pfn: 0x1234 }),
        (err: unknown) => err instanceof LastwordError && err.code === 'EDUMP_PAGE' && /pfn 0x1234/.test(err.message), codec);
    }
  });

  // The worst case of every codec: random pages expand (lzo by up to n/16+67 bytes), and a batch
  // of them is compressed straight into a buffer of exactly count * pageSize. Page sizes other
  // than 4 KiB and batch sizes that are not a power of two move where the buffer ends.
  for (const codec of ['zlib', 'lzo', 'snappy', 'zstd'] as CodecName[]) {
    test(`${codec}: batches of incompressible pages are stored raw, inline and on the compression threads`, async () => {
      for (const [pageSize, count] of [[4096, 256], [4096, 1], [4096, 7], [16384, 33], [65536, 5]] as const) {
        const src = crypto.randomBytes(pageSize * count);
        // Exactly sized (no slack), so an overrun would land outside the allocation.
        const dst = Buffer.alloc(pageSize * count), sizes = new Uint32Array(count);
        const used = addon.compressPages(CODEC_FLAG[codec], src, pageSize, count, dst, sizes, false);
        assert.equal(used, pageSize * count, `${codec} ${pageSize}x${count}: every random page is stored raw`);
        assert.ok(dst.equals(src), `${codec} ${pageSize}x${count}: raw pages are the input`);
        const pool = new PageCompressor({ codec, pageSize, detectZero: true, workers: 2 });
        const batches = await Promise.all([0, 1, 2].map(() => pool.compress(src, count)));
        await pool.close();
        for (const b of batches) {
          assert.equal(b.used, pageSize * count);
          assert.ok(b.data.subarray(0, b.used).equals(src));
        }
      }
    });

    test(`${codec}: pages read from a file by the compression threads round-trip, six batches in flight on two threads`, async (t) => {
      const fs = await import('node:fs');
      const os = await import('node:os');
      const path = await import('node:path');
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-codecs-'));
      t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
      const file = path.join(dir, 'pages');
      const count = 64;
      const pages = samplePages(count, 7);
      fs.writeFileSync(file, Buffer.concat([Buffer.alloc(PAGE, 0xee), pages]));
      const fd = fs.openSync(file, 'r');
      t.after(() => fs.closeSync(fd));
      const pool = new PageCompressor({ codec, pageSize: PAGE, detectZero: true, workers: 2 });
      // Each thread reads into its own buffer, reused from batch to batch: batches that share a
      // thread must still each get their own pages. Batch k: pages k..k+9 of the file, a 2-page
      // hole, then pages k+12.. to the end of the batch (fewer for later batches).
      const batches = [0, 1, 2, 3, 4, 5].map((k) => {
        const n = count - k;
        const batch = new PageBatch(PAGE, count);
        batch.addSpan(PAGE + k * PAGE, 10 * PAGE);
        batch.addSpan(-1, 2 * PAGE);
        batch.addSpan(PAGE + (k + 12) * PAGE, (n - 12) * PAGE);
        batch.count = n;
        const expect = Buffer.from(pages.subarray(k * PAGE, (k + n) * PAGE));
        expect.fill(0, 10 * PAGE, 12 * PAGE);
        return { batch, expect };
      });
      await Promise.all(batches.map(({ batch }) => pool.run(batch, fd)));
      await pool.close();
      for (const [k, { batch, expect }] of batches.entries()) {
        let at = 0;
        for (let i = 0; i < batch.count; i++) {
          const size = batch.sizes[i]!;
          const original = expect.subarray(i * PAGE, (i + 1) * PAGE);
          if (size === 0) { assert.ok(original.equals(Buffer.alloc(PAGE)), `batch ${k} page ${i} reported zero`); continue; }
          const out = Buffer.alloc(PAGE);
          decompressPage(addon, size < PAGE ? CODEC_FLAG[codec] : 0, batch.dst.subarray(at, at + size), out, { file: 'test', pfn: i });
          assert.ok(out.equals(original), `batch ${k} page ${i} differs after the round trip`);
          at += size;
        }
        assert.equal(at, batch.used);
      }
    });
  }

  test('a read error that is no data error (EISDIR) rejects with ECOMPRESS naming the offset', async () => {
    const fs = await import('node:fs');
    const fd = fs.openSync('/', 'r');
    try {
      const pool = new PageCompressor({ codec: 'lzo', pageSize: PAGE, detectZero: false, workers: 1 });
      const batch = new PageBatch(PAGE, 4);
      batch.addSpan(8192, 4 * PAGE);
      batch.count = 4;
      await assert.rejects(pool.run(batch, fd), (err: unknown) => err instanceof LastwordError && err.code === 'ECOMPRESS' && /offset 8192: Is a directory/.test(err.message));
      await pool.close();
    } finally {
      fs.closeSync(fd);
    }
  });

  test('pages past the end of the vmcore file come back as unreadable, the others compressed; on the threads and inline', async () => {
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-short-'));
    const file = path.join(dir, 'short');
    const pages = samplePages(3, 5);
    fs.writeFileSync(file, pages.subarray(0, 2 * PAGE + 100));       // page 2 is cut short, page 3 is not there
    const fd = fs.openSync(file, 'r');
    try {
      for (const workers of [1, 0]) {
        const pool = new PageCompressor({ codec: 'zstd', pageSize: PAGE, detectZero: false, workers });
        const batch = new PageBatch(PAGE, 4);
        batch.addSpan(0, 4 * PAGE);
        batch.count = 4;
        await pool.run(batch, fd);
        await pool.close();
        assert.ok(batch.sizes[0]! > 0 && batch.sizes[0]! <= PAGE && batch.sizes[1]! > 0 && batch.sizes[1]! <= PAGE, `workers ${workers}: pages 0, 1 compressed`);
        assert.ok(batch.sizes[2]! >= UNREADABLE_PAGE && batch.sizes[3]! >= UNREADABLE_PAGE, `workers ${workers}: pages 2, 3 unreadable`);
        assert.equal(unreadableReason(batch.sizes[3]!), 'the vmcore file ends before it');
        assert.equal(batch.used, batch.sizes[0]! + batch.sizes[1]!, 'nothing stored for the unreadable pages');
        assert.equal(batch.fileOffsetOf(3), 3 * PAGE);
      }
    } finally {
      fs.closeSync(fd);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('--num-threads N is N compression threads: more batches than threads queue, all finish, the threads end on close', async () => {
    const fs = await import('node:fs');
    const compressThreads = () => fs.readdirSync('/proc/self/task').filter((t) => {
      try { return fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() === 'lw-compress'; } catch { return false; }
    }).length;
    const before = compressThreads();
    const pool = new PageCompressor({ codec: 'zlib', pageSize: PAGE, detectZero: true, workers: 3 });
    const inputs = Array.from({ length: 20 }, (_, k) => samplePages(16, k + 11));
    const pending = inputs.map((b) => pool.compress(Buffer.from(b), 16));
    assert.equal(compressThreads() - before, 3, 'three threads named lw-compress while batches are queued');
    const results = await Promise.all(pending);
    for (let k = 0; k < inputs.length; k++) {
      const expected = compressBatch(addon, 'zlib', inputs[k]!, PAGE, 16, true);
      assert.ok(results[k]!.data.subarray(0, results[k]!.used).equals(expected.data.subarray(0, expected.used)), `batch ${k}`);
    }
    await pool.close();
    assert.equal(compressThreads(), before, 'the threads ended');
  });

  test('the compression threads compress exactly like the calling thread, results in submission order', async () => {
    const pool = new PageCompressor({ codec: 'zstd', pageSize: PAGE, detectZero: true, workers: 2 });
    try {
      const inputs = Array.from({ length: 6 }, (_, k) => samplePages(32, k + 1));
      const expected = inputs.map((b) => compressBatch(addon, 'zstd', b, PAGE, 32, true));
      const results = await Promise.all(inputs.map((b) => pool.compress(Buffer.from(b), 32)));
      for (let k = 0; k < inputs.length; k++) {
        assert.deepEqual([...results[k]!.sizes], [...expected[k]!.sizes], `batch ${k} sizes`);
        assert.ok(results[k]!.data.subarray(0, results[k]!.used).equals(expected[k]!.data.subarray(0, expected[k]!.used)), `batch ${k} data`);
      }
    } finally {
      await pool.close();
    }
  });

  test('every batch entry point refuses buffers too small for the page count, before compressing', async () => {
    const count = 4, zlibFlag = CODEC_FLAG.zlib;
    const src = samplePages(count), sizes = new Uint32Array(count), spans = new Float64Array(2);
    const short = Buffer.alloc(count * PAGE - 1);
    const tooSmall = (err: unknown) => err instanceof RangeError && /too small for the page count/.test(err.message);
    assert.throws(() => addon.compressPages(zlibFlag, src, PAGE, count, short, sizes, true), tooSmall, 'compressPages, dst');
    assert.throws(() => addon.compressPages(zlibFlag, src, PAGE, count, Buffer.alloc(count * PAGE), new Uint32Array(count - 1), true), tooSmall, 'compressPages, sizes');
    assert.throws(() => addon.compressPagesSpans(zlibFlag, -1, spans, 0, short, PAGE, count, Buffer.alloc(count * PAGE), sizes, true), tooSmall, 'compressPagesSpans, src');
    const pool = new addon.CompressPool(1, () => assert.fail('nothing was queued'));
    try {
      assert.throws(() => pool.submit(0, zlibFlag, -1, spans, 0, src, PAGE, count, short, sizes, true), tooSmall, 'CompressPool.submit, dst');
    } finally {
      pool.close();
    }
  });
});
