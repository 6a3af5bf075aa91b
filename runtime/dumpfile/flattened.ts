// makedumpfile's flattened format (-F): a dump written to a byte stream (stdout, ssh, a raw
// device) as records "put these bytes at this offset", reassembled into the real file by -R.
// Big-endian headers (makedumpfile.h: struct makedumpfile_header, struct makedumpfile_data_header).
import { LastwordError } from '../errors.ts';

export const MAKEDUMPFILE_SIGNATURE = 'makedumpfile';
export const TYPE_FLAT_HEADER = 1n;
export const VERSION_FLAT_HEADER = 1n;
/** MAX_SIZE_MDF_HEADER: the flattened header occupies one 4096-byte block. */
export const MAX_SIZE_MDF_HEADER = 4096;
export const DATA_HEADER_SIZE = 16;
/** END_FLAG_FLAT_HEADER: offset = size = -1 ends the stream. */
export const END_FLAG_FLAT_HEADER = -1n;

export function encodeFlatHeader(): Buffer {
  const b = Buffer.alloc(MAX_SIZE_MDF_HEADER);
  b.write(MAKEDUMPFILE_SIGNATURE, 0, 'latin1');
  b.writeBigInt64BE(TYPE_FLAT_HEADER, 16);
  b.writeBigInt64BE(VERSION_FLAT_HEADER, 24);
  return b;
}

export function encodeDataHeader(offset: number, size: number): Buffer {
  const b = Buffer.alloc(DATA_HEADER_SIZE);
  b.writeBigInt64BE(BigInt(offset), 0);
  b.writeBigInt64BE(BigInt(size), 8);
  return b;
}

export function encodeEndMarker(): Buffer {
  const b = Buffer.alloc(DATA_HEADER_SIZE);
  b.writeBigInt64BE(END_FLAG_FLAT_HEADER, 0);
  b.writeBigInt64BE(END_FLAG_FLAT_HEADER, 8);
  return b;
}

export function isFlatHeader(b: Buffer): boolean {
  return b.length >= 32 && b.toString('latin1', 0, 12) === MAKEDUMPFILE_SIGNATURE && b[12] === 0
    && b.readBigInt64BE(16) === TYPE_FLAT_HEADER;
}

/** Where a record's payload goes; what reassembly calls for each record. */
export type RecordSink = (payload: Buffer, offset: number) => Promise<void>;

/**
 * Reassembles a flattened stream (any async iterable of chunks: a file stream, stdin) by calling
 * `put` for every record in order. Returns the size of the reassembled file (highest end offset).
 */
export async function reassemble(input: AsyncIterable<Buffer | string>, put: RecordSink, name = 'input'): Promise<number> {
  let pending: Buffer = Buffer.alloc(0);
  let consumed = 0;       // bytes of the stream before `pending`
  let state: 'header' | 'record' | 'payload' | 'end' = 'header';
  let recOffset = 0, recLeft = 0, end = 0;
  const fail = (msg: string, at: number) => new LastwordError('EFLAT_FORMAT', `${name}: ${msg} at offset 0x${at.toString(16)} of the flattened stream`, { where: { file: name, offset: at } });
  for await (const c of input) {
    const chunk = typeof c === 'string' ? Buffer.from(c, 'latin1') : c;
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    for (;;) {
      if (state === 'header') {
        if (pending.length < MAX_SIZE_MDF_HEADER) break;
        if (!isFlatHeader(pending)) throw fail('not a makedumpfile flattened stream (bad signature or type)', 0);
        if (pending.readBigInt64BE(24) !== VERSION_FLAT_HEADER) throw fail(`unsupported flattened version ${pending.readBigInt64BE(24)}`, 24);
        pending = pending.subarray(MAX_SIZE_MDF_HEADER); consumed += MAX_SIZE_MDF_HEADER;
        state = 'record';
      } else if (state === 'record') {
        if (pending.length < DATA_HEADER_SIZE) break;
        const off = pending.readBigInt64BE(0), size = pending.readBigInt64BE(8);
        if (off === END_FLAG_FLAT_HEADER || size === END_FLAG_FLAT_HEADER) {
          if (off !== END_FLAG_FLAT_HEADER || size !== END_FLAG_FLAT_HEADER) throw fail('malformed end marker', consumed);
          state = 'end';
          pending = pending.subarray(DATA_HEADER_SIZE); consumed += DATA_HEADER_SIZE;
          break;
        }
        if (off < 0n || size < 0n || size > 1n << 40n) throw fail(`bad record header (offset ${off}, size ${size})`, consumed);
        recOffset = Number(off); recLeft = Number(size);
        pending = pending.subarray(DATA_HEADER_SIZE); consumed += DATA_HEADER_SIZE;
        end = Math.max(end, recOffset + recLeft);
        state = 'payload';
      } else if (state === 'payload') {
        if (recLeft === 0) { state = 'record'; continue; }
        if (pending.length === 0) break;
        const n = Math.min(recLeft, pending.length);
        await put(pending.subarray(0, n), recOffset);
        recOffset += n; recLeft -= n;
        pending = pending.subarray(n); consumed += n;
      } else {
        break;
      }
    }
    if (state === 'end') break;
  }
  if (state !== 'end') throw fail(state === 'header' ? 'stream shorter than the flattened header' : 'stream ends without the end marker (truncated)', consumed + pending.length);
  return end;
}
