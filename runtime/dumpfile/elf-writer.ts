// ELF dump output (makedumpfile -E): an ELF64 core with the vmcore's notes and one PT_LOAD per run
// of dumped pages. As makedumpfile does, zero pages are dropped when the dump level has bit 1, and
// runs of fewer than PFN_EXCLUDED excluded pages are kept (written with their data) so the core
// does not break into tiny segments. With a page order (lastword save) the data is laid out
// crash-first (elf-crash-first.ts), so a dump cut short still opens in crash.
import { LastwordError } from '../errors.ts';
import { EHDR_SIZE, EM_X86_64, ET_CORE, PHDR_SIZE, PN_XNUM, PT_LOAD, PT_NOTE, SHDR_SIZE } from '../vmcore/elf.ts';
import { fillFirstBitmap } from '../filter/page-filter.ts';
import { pageReadFailure } from '../vmcore/reader.ts';
import type { PageFilter } from '../filter/types.ts';
import type { PageOrder } from '../filter/crash-first.ts';
import { cutForTiers, fileOrder, type RankedSegment } from './elf-crash-first.ts';
import type { LoadSegment, Vmcore } from '../vmcore/types.ts';
import { noPageReadError, type UnreadablePages } from './kdump-layout.ts';
import type { DumpSummary } from './kdump-writer.ts';
import type { DumpOutput } from './output.ts';

// makedumpfile.h
export const PFN_EXCLUDED = 256;
/** e_flags bit of an ELF dump that is not whole (makedumpfile.c check_and_modify_elf_headers; crash warns on it). */
export const DUMP_ELF_INCOMPLETE = 0x1;
const E_FLAGS = 48;
const PF_RWX = 7;
/** Bytes per read and write of page data: two such buffers; 4 MiB ones cost 6 MiB more peak RSS for no speed. */
const CHUNK = 1 << 20;

export interface ElfSegment {
  paddr: number;
  vaddr: bigint;
  /** p_filesz: bytes written. */
  size: number;
  /** p_memsz: reaches the next segment (or the load's end); readers see excluded pages as zeros. */
  memSize: number;
}

export interface ElfWriteOptions {
  vmcore: Vmcore;
  filter: PageFilter;
  output: DumpOutput;
  /** Called when a step ends, as KdumpWriteOptions.step. */
  step?: (name: string) => void;
  /** Where page data goes in the file: the order's tiers first (crash-first); pfn order without. */
  order?: PageOrder;
}

/** Pass 1: the PT_LOADs of the output and page counts. Reads page data only for zero detection. */
export function planElfSegments(vmcore: Vmcore, filter: PageFilter, order?: PageOrder): { segments: ElfSegment[]; ramPages: number; dumpable: number; zero: number; textLoads: readonly LoadSegment[] } {
  const B = vmcore.pageSize;
  const dropZero = (filter.dumpLevel & 1) !== 0;
  const cycle = filter.cyclePfns;
  const bm1 = Buffer.alloc(cycle / 8), bm2 = Buffer.alloc(cycle / 8);
  const page = Buffer.alloc(B), zeroPage = Buffer.alloc(B);
  const segments: ElfSegment[] = [];
  let ramPages = 0, dumpable = 0, zero = 0;
  // Dumped pfn runs, in pfn order (the filter works in pfn order, loads are sorted by paddr).
  // makedumpfile builds the segments of each PT_LOAD from that load's pages alone, so a run never
  // reaches across the first or last pfn of a PT_LOAD: excluded pages at a load's end stay outside
  // its p_filesz even when pages of the next load follow within PFN_EXCLUDED.
  const textLoads = vmcore.kernelText;
  const loads = [...textLoads, ...vmcore.loads];
  const edges = [...new Set(loads.flatMap((l) => [Math.floor(l.paddr / B), Math.ceil((l.paddr + l.memSize) / B)]))].sort((a, b) => a - b);
  let edge = 0;       // edges[edge] is the first edge above the current run's last pfn
  let runStart = -1, runEnd = -1;
  const runs: [number, number][] = [];
  for (let start = 0; start < vmcore.maxMapnr; start += cycle) {
    const end = Math.min(start + cycle, vmcore.maxMapnr);
    fillFirstBitmap(vmcore, start, end, bm1);
    filter.fillCycle(start, end, bm2, order?.sink);
    order?.observe(start, end, bm2);
    for (let pfn = start; pfn < end; pfn++) {
      const i = pfn - start;
      const ram = (bm1[i >> 3]! >> (i & 7)) & 1;
      if (!ram) continue;
      ramPages++;
      if (!((bm2[i >> 3]! >> (i & 7)) & 1)) continue;
      if (dropZero && readsAsZero(vmcore, pfn, page, zeroPage)) { zero++; continue; }
      dumpable++;
      // Short excluded gaps are merged right away: memory stays bounded by pages / PFN_EXCLUDED.
      const crossesEdge = edge < edges.length && edges[edge]! <= pfn;
      if (runStart >= 0 && pfn - runEnd < PFN_EXCLUDED && !crossesEdge) runEnd = pfn + 1;
      else {
        if (runStart >= 0) runs.push([runStart, runEnd]);
        runStart = pfn; runEnd = pfn + 1;
        while (edge < edges.length && edges[edge]! <= pfn) edge++;
      }
    }
  }
  if (runStart >= 0) runs.push([runStart, runEnd]);
  // The kernel-text PT_LOAD repeats RAM but carries the kernel image's virtual addresses: readers
  // of ELF cores (drgn) translate kernel symbols through it, as in makedumpfile's -E output.
  for (const load of loads) {
    const lStart = load.paddr, lEnd = load.paddr + load.fileSize, lMemEnd = load.paddr + load.memSize;
    const inLoad: ElfSegment[] = [];
    let cur: ElfSegment | undefined;
    for (const [a, b] of runs) {
      const s = Math.max(a * B, lStart), e = Math.min(b * B, lEnd);
      if (s >= e) continue;
      if (cur && s - (cur.paddr + cur.size) < PFN_EXCLUDED * B) {
        cur.size = e - cur.paddr;
      } else {
        cur = { paddr: s, vaddr: vaddrOf(load, s), size: e - s, memSize: 0 };
        inLoad.push(cur);
      }
    }
    // As makedumpfile does, the segments cover the whole load: excluded pages are the gap between
    // p_filesz and p_memsz, which ELF readers (crash, drgn) read as zeros instead of failing.
    if (inLoad.length === 0 || inLoad[0]!.paddr > lStart) {
      inLoad.unshift({ paddr: lStart, vaddr: load.vaddr, size: 0, memSize: 0 });
    }
    for (const [i, seg] of inLoad.entries()) seg.memSize = (inLoad[i + 1]?.paddr ?? lMemEnd) - seg.paddr;
    for (const seg of inLoad) segments.push(seg);      // not push(...): a large machine's load has 100,000s
  }
  return { segments, ramPages, dumpable, zero, textLoads };
}

/** Whether page `pfn` is all zeros; a page whose read fails is not (pass 2 finds it unreadable). */
function readsAsZero(vmcore: Vmcore, pfn: number, page: Buffer, zeroPage: Buffer): boolean {
  try {
    vmcore.readPages(pfn, 1, page);
  } catch (err) {
    if (pageReadFailure(err) === undefined) throw err;
    return false;
  }
  return page.equals(zeroPage);
}

function vaddrOf(load: LoadSegment, paddr: number): bigint {
  return BigInt.asUintN(64, load.vaddr + BigInt(paddr - load.paddr));
}

/**
 * Where the program headers of an ELF dump with `segments` PT_LOADs (and the PT_NOTE) go, and the
 * headers' size. More than 0xfffe program headers: one section header before them holds the count.
 */
function headersLayout(segments: number): { phnum: number; xnum: boolean; phoff: number; size: number } {
  const phnum = 1 + segments;
  const xnum = phnum >= PN_XNUM;
  const phoff = EHDR_SIZE + (xnum ? SHDR_SIZE : 0);
  return { phnum, xnum, phoff, size: phoff + phnum * PHDR_SIZE };
}

/** The ELF header and program headers; `order`: the segments' indexes in file order (fileOrder). */
export function encodeElfHeaders(vmcore: Vmcore, segments: RankedSegment[], order: readonly number[], noteOffset: number, dataOffset: number): Buffer {
  const { phnum, xnum, phoff, size } = headersLayout(segments.length);
  const b = Buffer.alloc(size);
  b.write('\x7fELF', 0, 'latin1');
  b[4] = 2; b[5] = 1; b[6] = 1;   // ELFCLASS64, ELFDATA2LSB, EV_CURRENT
  b.writeUInt16LE(ET_CORE, 16);
  b.writeUInt16LE(EM_X86_64, 18);
  b.writeUInt32LE(1, 20);
  b.writeBigUInt64LE(BigInt(phoff), 32);
  b.writeBigUInt64LE(xnum ? BigInt(EHDR_SIZE) : 0n, 40);
  b.writeUInt16LE(EHDR_SIZE, 52);
  b.writeUInt16LE(PHDR_SIZE, 54);
  b.writeUInt16LE(xnum ? PN_XNUM : phnum, 56);
  b.writeUInt16LE(xnum ? SHDR_SIZE : 0, 58);
  b.writeUInt16LE(xnum ? 1 : 0, 60);
  // More than 0xfffe program headers: the count goes to sh_info of section header 0 (elf(5)).
  if (xnum) b.writeUInt32LE(phnum, EHDR_SIZE + 44);
  let p = phoff;
  b.writeUInt32LE(PT_NOTE, p);
  b.writeBigUInt64LE(BigInt(noteOffset), p + 8);
  b.writeBigUInt64LE(BigInt(vmcore.notes.length), p + 32);
  b.writeBigUInt64LE(BigInt(vmcore.notes.length), p + 40);
  const offsets = dataOffsets(segments, order, dataOffset);
  for (const [i, s] of segments.entries()) {
    p += PHDR_SIZE;
    b.writeUInt32LE(PT_LOAD, p);
    b.writeUInt32LE(PF_RWX, p + 4);
    b.writeBigUInt64LE(BigInt(offsets[i]!), p + 8);
    b.writeBigUInt64LE(s.vaddr, p + 16);
    b.writeBigUInt64LE(BigInt(s.paddr), p + 24);
    b.writeBigUInt64LE(BigInt(s.size), p + 32);
    b.writeBigUInt64LE(BigInt(s.memSize), p + 40);
  }
  return b;
}

/** Each segment's p_offset: their data one after the other from `dataOffset`, in file order. */
function dataOffsets(segments: RankedSegment[], order: readonly number[], dataOffset: number): number[] {
  const offsets: number[] = [];
  let off = dataOffset;
  for (const i of order) {
    offsets[i] = off;
    off += segments[i]!.size;
  }
  return offsets;
}

export async function writeElfDump(o: ElfWriteOptions): Promise<DumpSummary> {
  const { vmcore, filter, output } = o;
  let headers: Buffer | undefined;
  try {
    const plan = planElfSegments(vmcore, filter, o.order);
    const tiers = o.order?.tiers() ?? [];
    const segments: RankedSegment[] = tiers.length ? cutForTiers(plan.segments, tiers, vmcore.pageSize) : plan.segments;
    o.step?.('Excluding unnecessary pages');
    const order = fileOrder(segments);
    const noteOffset = headersLayout(segments.length).size;
    // Page data follows the notes directly, as makedumpfile writes it (write_elf_header: offset_note_dumpfile
    // + size_note); it was page-aligned here once, 3,756 bytes more on a 4 KiB-page vmcore for nothing
    // a reader needs.
    const dataOffset = noteOffset + vmcore.notes.length;
    headers = encodeElfHeaders(vmcore, segments, order, noteOffset, dataOffset);
    await output.write(headers, 0);
    await output.write(vmcore.notes, noteOffset);
    // Two reused buffers: one is read into while the other is being written (the write runs on
    // libuv's threadpool), so reading and writing overlap and memory stays two chunks.
    const bufs = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
    const writes: Promise<void>[] = [Promise.resolve(), Promise.resolve()];
    const reader = new ChunkReader(vmcore, plan.textLoads);
    let k = 0;
    let off = dataOffset;
    try {
      // In file order: a stream sink gets the data in ascending offsets.
      for (const i of order) {
        const s = segments[i]!;
        for (let done = 0; done < s.size; done += CHUNK) {
          const n = Math.min(CHUNK, s.size - done);
          await writes[k];
          const chunk = reader.read(s.paddr + done, bufs[k]!.subarray(0, n));
          const at = off + done;
          // One write at a time, in order (a stream sink gets records, which must not interleave).
          writes[k] = writes[k ^ 1]!.then(() => output.write(chunk, at));
          writes[k]!.catch(() => { /* awaited before the buffer's reuse and at the end */ });
          k ^= 1;
        }
        off += s.size;
      }
    } finally {
      await Promise.allSettled(writes);
    }
    await Promise.all(writes);
    const unreadable = reader.unreadable;
    if (unreadable) {
      // Not one page read: no dump to speak of (as in the kdump-compressed writer).
      if (unreadable.pages >= plan.dumpable) throw noPageReadError(vmcore.file, plan.dumpable, unreadable);
      await output.write(flaggedIncomplete(headers), 0);
    }
    await output.close();
    o.step?.('Copying data');
    return { maxMapnr: vmcore.maxMapnr, ramPages: plan.ramPages, dumpablePages: plan.dumpable, zeroPages: plan.zero, bytes: output.bytesWritten, ...(unreadable ? { unreadable } : {}) };
  } catch (err) {
    await output.abortIncomplete(headers && flaggedIncomplete(headers));
    if (err instanceof LastwordError) throw err;
    throw new LastwordError('EDUMP_WRITE', `cannot write the ELF dump: ${(err as Error).message}`, { cause: err });
  }
}

/** The ELF header of `headers` with DUMP_ELF_INCOMPLETE set in e_flags. */
function flaggedIncomplete(headers: Buffer): Buffer {
  const ehdr = Buffer.from(headers.subarray(0, EHDR_SIZE));
  ehdr.writeUInt32LE(ehdr.readUInt32LE(E_FLAGS) | DUMP_ELF_INCOMPLETE, E_FLAGS);
  return ehdr;
}

/**
 * Reads page data for the ELF writer. A chunk whose read fails with a data error (a bad sector,
 * /proc/vmcore unable to copy a page) is read again page by page: pages that still fail are zeros
 * in the chunk and counted once each, like the filter's dumpable pages (a page is read twice when
 * a chunk ends inside it, and the kernel-text PT_LOAD repeats pages of RAM), every other page is
 * kept. Other errors end the dump.
 */
class ChunkReader {
  unreadable: UnreadablePages | undefined;
  private readonly vmcore: Vmcore;
  private readonly textLoads: readonly LoadSegment[];
  /** lost pfns inside the kernel text (at most its pages), which the RAM loads read again */
  private readonly lostText = new Set<number>();
  private lastLostPfn = -1;

  constructor(vmcore: Vmcore, textLoads: readonly LoadSegment[]) {
    this.vmcore = vmcore;
    this.textLoads = textLoads;
  }

  read(paddr: number, into: Buffer): Buffer {
    try {
      return this.vmcore.readPhys(paddr, into.length, into);
    } catch (err) {
      if (pageReadFailure(err) === undefined) throw err;
    }
    const B = this.vmcore.pageSize;
    for (let at = 0; at < into.length;) {
      // Page by page, on page boundaries (a segment may start or end inside a page).
      const n = Math.min(into.length - at, B - ((paddr + at) % B));
      const page = into.subarray(at, at + n);
      try {
        this.vmcore.readPhys(paddr + at, n, page);
      } catch (err) {
        const reason = pageReadFailure(err);
        if (reason === undefined) throw err;
        page.fill(0);
        this.lost(paddr + at, reason);
      }
      at += n;
    }
    return into;
  }

  private lost(paddr: number, reason: string): void {
    const pfn = Math.floor(paddr / this.vmcore.pageSize);
    if (pfn === this.lastLostPfn) return;
    this.lastLostPfn = pfn;
    if (this.textLoads.some((t) => paddr >= t.paddr && paddr < t.paddr + t.fileSize)) {
      if (this.lostText.has(pfn)) return;
      this.lostText.add(pfn);
    }
    if (this.unreadable) { this.unreadable.pages++; return; }
    const l = this.vmcore.loads.find((x) => paddr >= x.paddr && paddr < x.paddr + x.fileSize);
    const firstOffset = l ? l.offset + (paddr - l.paddr) : -1;
    this.unreadable = { pages: 1, firstOffset, firstPfn: pfn, reason, zeroFilled: true };
  }
}
