// makedumpfile's flattened format: records in any offset order reassemble into the file; a
// stream without the end marker or with a bad header is refused with the offset.
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeDataHeader, encodeEndMarker, encodeFlatHeader, reassemble } from '../../runtime/dumpfile/flattened.ts';
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

  test('refuses a malformed end marker', async () => {
    const bad = encodeEndMarker();
    bad.writeBigInt64BE(5n, 8);
    await assert.rejects(collect([encodeFlatHeader(), bad]), (err: unknown) => err instanceof LastwordError && /end marker|record header/.test(err.message));
  });
});
