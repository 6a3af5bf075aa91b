// Bitmap arithmetic shared by the page filter, the writers and the crash-first order: bits set,
// and the 2nd bitmap masked by the 1st. Word by word in the filter addon (runtime/filter/native) when it is loaded;
// the byte-table loops below are the fallback and the reference (test/filter/bitmap.test.ts).
import { loadNative } from '../system/native-loader.ts';

/** The filter addon's bitmap functions (runtime/filter/native/page-walk.cc). */
export interface BitmapAddon {
  popcount(bitmap: Buffer, bits: number): number;
  andPopcount(dst: Buffer, src: Buffer, bytes: number): number;
}

/** Bits set in a byte. */
export const POPCOUNT8 = Uint8Array.from({ length: 256 }, (_, i) => {
  let n = 0;
  for (let v = i; v; v >>= 1) n += v & 1;
  return n;
});

let addon: BitmapAddon | null | undefined;
function native(): BitmapAddon | null {
  if (addon === undefined) {
    try {
      const a = loadNative<Partial<BitmapAddon>>('filter');
      addon = typeof a.popcount === 'function' && typeof a.andPopcount === 'function' ? (a as BitmapAddon) : null;
    } catch {
      addon = null;
    }
  }
  return addon;
}

/** Bits set among the first `bits` of `bitmap`, in JavaScript. */
export function popcountJs(bitmap: Buffer, bits: number): number {
  let n = 0;
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) n += POPCOUNT8[bitmap[i]!]!;
  for (let i = whole * 8; i < bits; i++) if (bitmap[i >> 3]! & (1 << (i & 7))) n++;
  return n;
}

/** dst &= src over `bytes` bytes, in JavaScript; returns the bits left set in dst. */
export function andPopcountJs(dst: Buffer, src: Buffer, bytes: number): number {
  let n = 0;
  for (let i = 0; i < bytes; i++) n += POPCOUNT8[(dst[i] = dst[i]! & src[i]!)]!;
  return n;
}

/** Bits set among the first `bits` of `bitmap`. */
export function popcount(bitmap: Buffer, bits: number): number {
  const a = native();
  return a ? a.popcount(bitmap, bits) : popcountJs(bitmap, bits);
}

/** dst &= src over `bytes` bytes; returns the bits left set in dst. */
export function andPopcount(dst: Buffer, src: Buffer, bytes: number): number {
  const a = native();
  return a ? a.andPopcount(dst, src, bytes) : andPopcountJs(dst, src, bytes);
}

/** Bits set among bits [from, to) of `bitmap` (bit i of byte i >> 3, LSB first). */
export function countBitsIn(bitmap: Buffer, from: number, to: number): number {
  let n = 0;
  let i = from;
  for (; i < to && (i & 7) !== 0; i++) n += (bitmap[i >> 3]! >> (i & 7)) & 1;
  for (; i + 8 <= to; i += 8) n += POPCOUNT8[bitmap[i >> 3]!]!;
  for (; i < to; i++) n += (bitmap[i >> 3]! >> (i & 7)) & 1;
  return n;
}

/** Whether any of bits [from, to) of `bitmap` is set. */
export function anyBitIn(bitmap: Buffer, from: number, to: number): boolean {
  let i = from;
  for (; i < to && (i & 7) !== 0; i++) if ((bitmap[i >> 3]! >> (i & 7)) & 1) return true;
  for (; i + 8 <= to; i += 8) if (bitmap[i >> 3] !== 0) return true;
  for (; i < to; i++) if ((bitmap[i >> 3]! >> (i & 7)) & 1) return true;
  return false;
}
