// makedumpfile's flattened format: records in any offset order reassemble into the file; a
// stream without the end marker or with a bad header is refused with the offset.
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeDataHeader, encodeEndMarker, encodeFlatHeader, reassemble, relayRecords } from '../../runtime/dumpfile/flattened.ts';
import { LastwordError } from '../../runtime/errors.ts';

function stream(parts: Buffer[], chunk = 7): Readable {
  const all = Buffer.concat(parts);
  const pieces: Buffer[] = [];
  for (let i = 0; i < all.length; i += chunk) pieces.push(all.subarray(i, i + chunk));
  return Readable.from(pieces);
}

async function collect(parts: Buffer[], chunk?: number): Promise<Buffer> {
  const out = Buffer.alloc(64);
  const end = await reassemble(stream(parts, chunk), async (b, off) => { b.copy(out, off); });
  return out.subarray(0, end);
}

describe('flattened format', () => {
  test('reassembles records written out of order, split across any chunk boundaries', async () => {
    const rec = (off: number, s: string) => [encodeDataHeader(off, s.length), Buffer.from(s)];
    for (const chunk of [1, 7, 4096, 100000]) {
      const got = await collect([encodeFlatHeader(), ...rec(10, 'world'), ...rec(0, 'hello'), ...rec(5, '-----'), ...rec(0, 'H'), encodeEndMarker()], chunk);
      assert.equal(got.toString(), 'Hello-----world');
    }
  });

  test('refuses a stream that ends without the end marker', async () => {
    await assert.rejects(collect([encodeFlatHeader(), encodeDataHeader(0, 4), Buffer.from('abcd')]),
      (err: unknown) => err instanceof LastwordError && err.code === 'EFLAT_FORMAT' && /truncated/.test(err.message));
  });

  test('refuses a stream that is not flattened', async () => {
    await assert.rejects(collect([Buffer.alloc(5000, 1)]),
      (err: unknown) => err instanceof LastwordError && err.code === 'EFLAT_FORMAT' && /signature/.test(err.message));
  });

  test('refuses a record whose offset is past 2^53, which a file position cannot hold exactly (it was written at the current position)', async () => {
    for (const off of [2n ** 53n, 0x0020000000000001n, 2n ** 62n]) {
      const hdr = Buffer.alloc(16);
      hdr.writeBigInt64BE(off, 0);
      hdr.writeBigInt64BE(4n, 8);
      await assert.rejects(collect([encodeFlatHeader(), hdr, Buffer.from('abcd'), encodeEndMarker()]),
        (err: unknown) => err instanceof LastwordError && err.code === 'EFLAT_FORMAT' && new RegExp(`bad record header \\(offset ${off}, size 4\\) at offset 0x1000`).test(err.message));
    }
  });

  test('refuses a malformed end marker', async () => {
    const bad = encodeEndMarker();
    bad.writeBigInt64BE(5n, 8);
    await assert.rejects(collect([encodeFlatHeader(), bad]), (err: unknown) => err instanceof LastwordError && /end marker|record header/.test(err.message));
  });

  test('relaying a stream cut anywhere forwards only whole records, and another writer can continue it', async () => {
    const rec = (off: number, s: string) => Buffer.concat([encodeDataHeader(off, s.length), Buffer.from(s)]);
    const first = [encodeFlatHeader(), rec(0, 'partial'), rec(7, '-dump-of-the-first'), rec(0, 'P'), encodeEndMarker()];
    const full = Buffer.concat(first);
    const boundaries = [4096, 4096 + 23, 4096 + 23 + 34, 4096 + 23 + 34 + 17];
    // every cut near a record boundary (and some elsewhere), split into odd chunks
    const cuts = new Set<number>([0, full.length]);
    for (const b of [...boundaries, full.length]) for (let d = -20; d <= 20; d++) if (b + d >= 0 && b + d <= full.length) cuts.add(b + d);
    for (let c = 0; c < full.length; c += 97) cuts.add(c);
    for (const cut of cuts) {
      const forwarded: Buffer[] = [];
      const r = await relayRecords(stream([full.subarray(0, cut)], 61), async (b) => { forwarded.push(Buffer.from(b)); });
      const whole = boundaries.filter((b) => b <= cut);
      const sent = Buffer.concat(forwarded);
      assert.equal(sent.length, whole.at(-1) ?? 0, `cut at ${cut}`);
      assert.ok(full.subarray(0, sent.length).equals(sent));
      assert.equal(r.headerSent, cut >= 4096);
      assert.equal(r.records, Math.max(0, whole.length - 1));
      assert.equal(r.ended, cut === full.length);
      assert.equal(r.droppedBytes, cut === full.length ? 0 : cut - sent.length);
      if (!r.headerSent) continue;
      // the second writer's records (no second header) overwrite what the first one wrote
      const continued = [sent, rec(0, 'second'), encodeEndMarker()];
      assert.equal((await collect(continued)).toString().slice(0, 6), 'second');
    }
  });

  test('relaying copies what it keeps: an input that reuses one buffer for every chunk relays the same stream', async () => {
    // as lastword reads makedumpfile's stdout: fs.read into one buffer, overwritten by the next read
    const rec = (off: number, n: number, fill: number) => Buffer.concat([encodeDataHeader(off, n), Buffer.alloc(n, fill)]);
    const records = [rec(0, 5000, 1), rec(9000, 0, 0), rec(5000, 3, 2), rec(100, 70000, 3), rec(0, 0, 0)];
    const full = Buffer.concat([encodeFlatHeader(), ...records, encodeEndMarker()]);
    for (const size of [1, 16, 61, 4096, 65536]) {
      const shared = Buffer.alloc(size);
      async function* reused(): AsyncGenerator<Buffer> {
        for (let i = 0; i < full.length; i += size) {
          const n = full.copy(shared, 0, i, Math.min(i + size, full.length));
          yield shared.subarray(0, n);
          shared.fill(0xee); // what the next read would do to it
        }
      }
      const forwarded: Buffer[] = [];
      const r = await relayRecords(reused(), async (b) => { forwarded.push(Buffer.from(b)); });
      assert.equal(r.ended, true, `chunks of ${size}`);
      assert.equal(r.records, records.length);
      assert.equal(r.droppedBytes, 0);
      assert.ok(Buffer.concat(forwarded).equals(full.subarray(0, full.length - 16)), `chunks of ${size}`);
    }
  });

  test('relaying stops at a stream that is not flattened and says so', async () => {
    const r = await relayRecords(stream([Buffer.alloc(5000, 1)]), async () => { assert.fail('nothing may be forwarded'); });
    assert.match(r.malformed ?? '', /not a makedumpfile flattened stream/);
    assert.equal(r.headerSent, false);
  });
});

