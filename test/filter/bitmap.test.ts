// The filter addon's bitmap arithmetic equals the byte-table loops it replaced, on random
// bitmaps of every length around the 8-byte words it works in, with partial last bytes.
import * as crypto from 'node:crypto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadNative } from '../../runtime/system/native-loader.ts';
import { andPopcountJs, anyBitIn, countBitsIn, popcountJs, type BitmapAddon } from '../../runtime/filter/bitmap.ts';
const addon = loadNative<BitmapAddon>('filter');

test('native popcount and andPopcount equal the JavaScript loops', () => {
  for (const bytes of [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 4096, 131072, 131075]) {
    const a = crypto.randomBytes(bytes), b = crypto.randomBytes(bytes);
    for (const bits of new Set([0, 1, Math.max(0, bytes * 8 - 3), bytes * 8])) {
      if (bits > bytes * 8) continue;
      assert.equal(addon.popcount(a, bits), popcountJs(a, bits), `popcount ${bytes} bytes, ${bits} bits`);
    }
    const x = Buffer.from(a), y = Buffer.from(a);
    const nNative = addon.andPopcount(x, b, bytes);
    const nJs = andPopcountJs(y, b, bytes);
    assert.equal(nNative, nJs, `andPopcount ${bytes} bytes`);
    assert.ok(x.equals(y), `andPopcount ${bytes} bytes: same bits left`);
  }
  // All ones and all zeros, and a dst longer than the span: bytes past it stay as they were.
  assert.equal(addon.popcount(Buffer.alloc(1000, 0xff), 8000), 8000);
  const dst = Buffer.alloc(24, 0xff);
  assert.equal(addon.andPopcount(dst, Buffer.alloc(24, 0x0f), 16), 64);
  assert.ok(dst.subarray(16).equals(Buffer.alloc(8, 0xff)));
  assert.throws(() => addon.popcount(Buffer.alloc(2), 17), RangeError);
  assert.throws(() => addon.andPopcount(Buffer.alloc(2), Buffer.alloc(1), 2), RangeError);
});

test('countBitsIn and anyBitIn agree with a bit-by-bit count over every range of a random bitmap', () => {
  const bm = crypto.randomBytes(9);
  bm[3] = 0;
  bm[4] = 0;
  bm[5] = 0;      // a run of 24 clear bits, so anyBitIn has ranges to say false on
  const bit = (i: number) => (bm[i >> 3]! >> (i & 7)) & 1;
  for (let from = 0; from <= 72; from++) {
    for (let to = from; to <= 72; to++) {
      let n = 0;
      for (let i = from; i < to; i++) n += bit(i);
      assert.equal(countBitsIn(bm, from, to), n, `[${from}, ${to})`);
      assert.equal(anyBitIn(bm, from, to), n > 0, `[${from}, ${to})`);
    }
  }
});
