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

/** Why a flattened header (its first 32 bytes or more) is not one we read, with where; undefined when it is. */
export function flatHeaderProblem(b: Buffer): { message: string; at: number } | undefined {
  if (!isFlatHeader(b)) return { message: 'not a makedumpfile flattened stream (bad signature or type)', at: 0 };
  const version = b.readBigInt64BE(24);
  if (version !== VERSION_FLAT_HEADER) return { message: `unsupported flattened version ${version}`, at: 24 };
  return undefined;
}

/** A 16-byte data header: the end marker, a record, or why it is neither. */
export type DataHeader = { kind: 'end' } | { kind: 'record'; offset: number; size: number } | { kind: 'bad'; message: string };

export function decodeDataHeader(b: Buffer): DataHeader {
  const off = b.readBigInt64BE(0), size = b.readBigInt64BE(8);
  if (off === END_FLAG_FLAT_HEADER || size === END_FLAG_FLAT_HEADER) {
    return off === size ? { kind: 'end' } : { kind: 'bad', message: 'malformed end marker' };
  }
  // Past 2^53 a file position is not an exact Number, and Node writes such a position at the
  // current one instead: the record would land in the wrong place without an error.
  if (off < 0n || size < 0n || size > 1n << 40n || off + size > BigInt(Number.MAX_SAFE_INTEGER)) return { kind: 'bad', message: `bad record header (offset ${off}, size ${size})` };
  return { kind: 'record', offset: Number(off), size: Number(size) };
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
        const bad = flatHeaderProblem(pending);
        if (bad) throw fail(bad.message, bad.at);
        pending = pending.subarray(MAX_SIZE_MDF_HEADER); consumed += MAX_SIZE_MDF_HEADER;
        state = 'record';
      } else if (state === 'record') {
        if (pending.length < DATA_HEADER_SIZE) break;
        const h = decodeDataHeader(pending);
        if (h.kind === 'bad') throw fail(h.message, consumed);
        pending = pending.subarray(DATA_HEADER_SIZE); consumed += DATA_HEADER_SIZE;
        if (h.kind === 'end') { state = 'end'; break; }
        recOffset = h.offset; recLeft = h.size;
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

/** What relayRecords passed on of another program's flattened stream. */
export interface RelayResult {
  /** The 4096-byte flattened header was forwarded: a continuation must not send another. */
  headerSent: boolean;
  /** The stream ended with its end marker (held back, not forwarded: the caller sends it). */
  ended: boolean;
  /** Whole records forwarded. */
  records: number;
  /** Bytes of a record cut short (or of a short header) that were dropped. */
  droppedBytes: number;
  /** Why relaying stopped before the input ended: the input is not a flattened stream. */
  malformed?: string;
}

/**
 * Passes another program's flattened stream on (e.g. makedumpfile -F's stdout) record by record:
 * only whole records are forwarded and the end marker is held back, so when that program dies
 * half-way the output is still a valid stream prefix that another writer can continue with its
 * own records (which overwrite any offset the first one wrote) and close with the end marker.
 * Memory: one record, in one buffer that is reused (makedumpfile writes records of at most 64 KiB).
 * Each chunk is copied out before the next one is asked for, so the input may reuse its buffer;
 * `forward` must be done with its argument when its promise resolves. A stream that is not
 * flattened stops the relay with `malformed` set (the caller stops the writer).
 */
export async function relayRecords(input: AsyncIterable<Buffer | string>, forward: (b: Buffer) => Promise<void>, name = 'input'): Promise<RelayResult> {
  const r: RelayResult = { headerSent: false, ended: false, records: 0, droppedBytes: 0 };
  let unit = Buffer.allocUnsafe(MAX_SIZE_MDF_HEADER); // the header, or a record's header and payload
  let have = 0;
  let need = MAX_SIZE_MDF_HEADER;
  let state: 'header' | 'record' | 'payload' | 'end' = 'header';
  for await (const c of input) {
    if (state === 'end') continue; // drain: nothing follows the end marker
    const chunk = typeof c === 'string' ? Buffer.from(c, 'latin1') : c;
    let at = 0;
    // (a unit may be complete without another byte: a record of size 0)
    while (state !== 'end' && (at < chunk.length || have >= need)) {
      const n = Math.min(need - have, chunk.length - at);
      chunk.copy(unit, have, at, at + n);
      have += n;
      at += n;
      if (have < need) break;
      if (state === 'header') {
        const bad = flatHeaderProblem(unit.subarray(0, need));
        if (bad) { r.malformed = `${name}: ${bad.message} at offset 0x${bad.at.toString(16)}`; return r; }
        await forward(unit.subarray(0, need));
        r.headerSent = true;
        state = 'record'; need = DATA_HEADER_SIZE; have = 0;
      } else if (state === 'record') {
        const h = decodeDataHeader(unit.subarray(0, DATA_HEADER_SIZE));
        if (h.kind === 'end') {
          r.ended = true; state = 'end'; have = 0;
        } else if (h.kind === 'bad') {
          r.malformed = `${name}: ${h.message} after record ${r.records}`;
          r.droppedBytes = have + chunk.length - at;
          return r;
        } else {
          need = DATA_HEADER_SIZE + h.size;
          if (unit.length < need) {
            const grown = Buffer.allocUnsafe(need);
            unit.copy(grown, 0, 0, have);
            unit = grown;
          }
          state = 'payload';
        }
      } else {
        await forward(unit.subarray(0, need));
        r.records++;
        state = 'record'; need = DATA_HEADER_SIZE; have = 0;
      }
    }
  }
  r.droppedBytes = have;      // 0 after the end marker
  return r;
}
