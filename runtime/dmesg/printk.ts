// The kernel log from a vmcore: the lockless printk ring buffer (5.10+, kernel/printk/
// printk_ringbuffer.c) or the variable-length log_buf (3.5..5.9), walked like makedumpfile's
// --dump-dmesg (printk.c, makedumpfile.c dump_dmesg) so the output is the same bytes.
import { LastwordError } from '../errors.ts';
import type { Vmcore } from '../vmcore/types.ts';
import { requireKey } from '../vmcore/vmcoreinfo.ts';
import { X86_64Memory, type LostPiece } from '../vmcore/x86_64.ts';
import { formatRecord } from './format.ts';
import type { RecordFormat } from './format.ts';

// printk_ringbuffer.h: the two top bits of state_var are the descriptor state.
const DESC_FLAGS_SHIFT = 62n;
const DESC_ID_MASK = (1n << DESC_FLAGS_SHIFT) - 1n;
const DESC_COMMITTED = 1n;
const DESC_FINALIZED = 2n;

export interface DmesgOptions extends Partial<RecordFormat> {
  memory?: X86_64Memory;
  /** Told when records are left out because a page of the ring could not be read. */
  warn?: (message: string) => void;
}

/**
 * One log record as the kernel stored it; callerId is undefined when the kernel has none. `lost`:
 * not a record but lastword's line standing for that many records a lost page of the ring held.
 */
export interface PrintkRecord {
  tsNsec: bigint;
  callerId: number | undefined;
  text: Buffer;
  lost?: number;
}

/**
 * The log as `makedumpfile --dump-dmesg` writes it. Records a lost page of the ring held are left
 * out, with a line in their place, and `warn` says how many (makedumpfile gives no log then).
 */
export function extractDmesg(vmcore: Vmcore, opts: DmesgOptions = {}): Buffer {
  const callerId = opts.callerId ?? true;
  const out: Buffer[] = [];
  let lost = 0;
  for (const r of printkRecords(vmcore, opts.memory)) {
    if (r.lost) lost += r.lost;
    formatRecord(out, r.tsNsec, callerId ? r.callerId : undefined, r.text);
  }
  if (lost) opts.warn?.(`${vmcore.file}: ${lost} log record${lost === 1 ? '' : 's'} could not be read (a page of the printk ring lost); the rest of the log is saved, a line marks each gap`);
  return Buffer.concat(out);
}

/** The records in the order makedumpfile prints them. */
export function printkRecords(vmcore: Vmcore, memory: X86_64Memory = new X86_64Memory(vmcore)): PrintkRecord[] {
  const info = vmcore.vmcoreinfo;
  const damaged = (err: unknown): never => {
    // Offsets from a damaged VMCOREINFO point outside what was read: say so in one line.
    if (err instanceof RangeError) {
      throw new LastwordError('EDMESG_DAMAGED', `${vmcore.file}: printk structures do not fit their VMCOREINFO sizes/offsets (${err.message})`, { where: { file: vmcore.file }, cause: err });
    }
    throw err;
  };
  if (info.symbol.has('prb')) {
    try {
      return lockless(vmcore, memory);
    } catch (err) {
      return damaged(err);
    }
  }
  if (info.symbol.has('log_buf') && info.symbol.has('log_buf_len') && !info.symbol.has('log_end')) {
    try {
      return variableLength(vmcore, memory);
    } catch (err) {
      return damaged(err);
    }
  }
  throw new LastwordError('EDMESG_UNSUPPORTED', `${vmcore.file}: VMCOREINFO has neither SYMBOL(prb) (5.10+) nor SYMBOL(log_buf) with log_first_idx (3.5..5.9)`, { where: { file: vmcore.file } });
}

function lockless(vmcore: Vmcore, memory: X86_64Memory): PrintkRecord[] {
  const info = vmcore.vmcoreinfo;
  const file = vmcore.file;
  const off = (name: string) => requireKey(info.offset, 'OFFSET', name, file);
  const size = (name: string) => requireKey(info.size, 'SIZE', name, file);
  const counter = info.offset.get('atomic_long_t.counter') ?? 0;

  const rbAddr = memory.readU64(requireKey(info.symbol, 'SYMBOL', 'prb', file));
  const rb = memory.readVirt(rbAddr, size('printk_ringbuffer'));
  const ring = off('printk_ringbuffer.desc_ring');
  const countBits = rb.readUInt32LE(ring + off('prb_desc_ring.count_bits'));
  const dataRing = off('printk_ringbuffer.text_data_ring');
  const sizeBits = rb.readUInt32LE(dataRing + off('prb_data_ring.size_bits'));
  if (countBits > 24 || sizeBits > 31) {
    throw new LastwordError('EDMESG_DAMAGED', `${file}: printk ring buffer at 0x${rbAddr.toString(16)} has count_bits ${countBits}, size_bits ${sizeBits}`, { where: { file } });
  }
  const count = 2 ** countBits;
  const dataSize = 2 ** sizeBits;
  const sizeDesc = size('prb_desc');
  const sizeInfo = size('printk_info');
  // A page of the ring whose data is lost (EIO, a memory error) reads as zeros; the records it held
  // are left out, a line in their place says how many (lostIn, below).
  const salvage = (v: bigint, length: number): { buf: Buffer; lost: LostPiece[] } => {
    const buf = Buffer.alloc(length);
    return { buf, lost: memory.readVirtSalvaging(v, length, buf) };
  };
  const { buf: descs, lost: lostDescs } = salvage(rb.readBigUInt64LE(ring + off('prb_desc_ring.descs')), count * sizeDesc);
  const { buf: infos, lost: lostInfos } = salvage(rb.readBigUInt64LE(ring + off('prb_desc_ring.infos')), count * sizeInfo);
  const { buf: data, lost: lostData } = salvage(rb.readBigUInt64LE(dataRing + off('prb_data_ring.data')), dataSize);
  const reason = [...lostDescs, ...lostInfos, ...lostData][0]?.reason;
  const tailId = rb.readBigUInt64LE(ring + off('prb_desc_ring.tail_id') + counter) & DESC_ID_MASK;
  const headId = rb.readBigUInt64LE(ring + off('prb_desc_ring.head_id') + counter) & DESC_ID_MASK;

  const offState = off('prb_desc.state_var') + counter;
  const offLpos = off('prb_desc.text_blk_lpos');
  const offBegin = offLpos + off('prb_data_blk_lpos.begin');
  const offNext = offLpos + off('prb_data_blk_lpos.next');
  const offTextLen = off('printk_info.text_len');
  const offTs = off('printk_info.ts_nsec');
  const offCaller = info.offset.get('printk_info.caller_id');

  const out: PrintkRecord[] = [];
  let lostRun = 0;
  const lose = () => { lostRun++; };
  /** The line that stands for the records lost since the last one written. */
  const flushLost = () => {
    if (lostRun === 0) return;
    const ts = out.length ? out[out.length - 1]!.tsNsec : 0n;
    out.push({ tsNsec: ts, callerId: undefined, text: Buffer.from(`lastword: ${lostRun} log record${lostRun === 1 ? '' : 's'} lost here: a page of the printk ring could not be read (${reason})`), lost: lostRun });
    lostRun = 0;
  };
  const record = (id: bigint) => {
    const slot = Number(id % BigInt(count));
    const d = slot * sizeDesc;
    if (lostIn(lostDescs, d, sizeDesc)) return lose();
    const sv = descs.readBigUInt64LE(d + offState);
    if ((sv & DESC_ID_MASK) !== id) return;
    const state = sv >> DESC_FLAGS_SHIFT;
    if (state !== DESC_COMMITTED && state !== DESC_FINALIZED) return;
    let begin = Number(descs.readBigUInt64LE(d + offBegin) % BigInt(dataSize));
    const next = Number(descs.readBigUInt64LE(d + offNext) % BigInt(dataSize));
    if (begin === next) return;
    const inf = slot * sizeInfo;
    if (lostIn(lostInfos, inf, sizeInfo)) return lose();
    let textLen = infos.readUInt16LE(inf + offTextLen);
    if (begin > next) begin = 0;
    begin += 8;                       // the block's descriptor id
    if (next >= begin && next - begin < textLen) textLen = next - begin;
    if (lostIn(lostData, begin, textLen)) return lose();
    const text = data.subarray(begin, Math.min(begin + textLen, data.length));
    const callerId = offCaller !== undefined ? infos.readUInt32LE(inf + offCaller) : undefined;
    flushLost();
    out.push({ tsNsec: infos.readBigUInt64LE(inf + offTs), callerId, text });
  };
  if (((headId - tailId) & DESC_ID_MASK) < BigInt(count)) {
    for (let id = tailId; id !== headId; id = (id + 1n) & DESC_ID_MASK) record(id);
    record(headId);
  } else {
    // A live ring never spans more than `count` descriptors: tail_id or head_id is damaged (walking
    // from one to the other would take up to 2^62 steps). Every slot whose descriptor is committed
    // or finalized is a record; in id order they are the log, as the walk would have read it.
    const ids: bigint[] = [];
    for (let slot = 0; slot < count; slot++) {
      const sv = descs.readBigUInt64LE(slot * sizeDesc + offState);
      const state = sv >> DESC_FLAGS_SHIFT;
      if (state === DESC_COMMITTED || state === DESC_FINALIZED) ids.push(sv & DESC_ID_MASK);
    }
    ids.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const id of ids) record(id);
  }
  flushLost();
  return out;
}

/** Whether [at, at + length) of a buffer meets one of its lost pieces. */
function lostIn(lost: readonly LostPiece[], at: number, length: number): boolean {
  return lost.some((l) => at < l.at + l.bytes && l.at < at + Math.max(length, 1));
}

function variableLength(vmcore: Vmcore, memory: X86_64Memory): PrintkRecord[] {
  const info = vmcore.vmcoreinfo;
  const file = vmcore.file;
  const sym = (name: string) => requireKey(info.symbol, 'SYMBOL', name, file);
  // The struct was renamed from `log` to `printk_log` in 3.11.
  const struct = info.size.has('printk_log') ? 'printk_log' : 'log';
  const sizeLog = requireKey(info.size, 'SIZE', struct, file);
  const offLen = requireKey(info.offset, 'OFFSET', `${struct}.len`, file);
  const offTextLen = requireKey(info.offset, 'OFFSET', `${struct}.text_len`, file);
  const offTs = requireKey(info.offset, 'OFFSET', `${struct}.ts_nsec`, file);
  const offCaller = info.offset.get(`${struct}.caller_id`);

  const firstIdx = memory.readU32(sym('log_first_idx'));
  const nextIdx = memory.readU32(sym('log_next_idx'));
  const logBuf = memory.readU64(sym('log_buf'));
  const len = memory.readU32(sym('log_buf_len')) | 0;
  if (len <= 0 || len > 1 << 30 || firstIdx >= len || nextIdx >= len) {
    throw new LastwordError('EDMESG_DAMAGED', `${file}: log_buf_len ${len}, log_first_idx ${firstIdx}, log_next_idx ${nextIdx} are inconsistent`, { where: { file } });
  }
  const buf = memory.readVirt(logBuf, len);
  const out: PrintkRecord[] = [];
  // log_from_ptr / log_next: a record of length 0 marks the wrap to the start of the buffer.
  const recordAt = (p: number) => (buf.readUInt16LE(p + offLen) === 0 ? 0 : p);
  let p = firstIdx;
  const limit = Math.ceil(len / Math.max(sizeLog, 1)) + 1;
  for (let n = 0; p !== nextIdx; n++) {
    if (n > limit) {
      throw new LastwordError('EDMESG_DAMAGED', `${file}: cycle in log_buf at 0x${logBuf.toString(16)}, idx 0x${p.toString(16)} (the printk log_buf is corrupted)`, { where: { file } });
    }
    const r = recordAt(p);
    const textLen = buf.readUInt16LE(r + offTextLen);
    const text = buf.subarray(r + sizeLog, Math.min(r + sizeLog + textLen, len));
    out.push({ tsNsec: buf.readBigUInt64LE(r + offTs), callerId: offCaller !== undefined ? buf.readUInt32LE(r + offCaller) : undefined, text });
    const msgLen = buf.readUInt16LE(r + offLen);
    const next = r + msgLen;
    if (msgLen === 0 || next < 0 || next > len - sizeLog) {
      throw new LastwordError('EDMESG_DAMAGED', `${file}: index outside log_buf at 0x${logBuf.toString(16)}, idx 0x${p.toString(16)} (the printk log_buf is corrupted)`, { where: { file } });
    }
    p = next;
  }
  return out;
}
