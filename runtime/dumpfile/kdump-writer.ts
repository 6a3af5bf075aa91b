// Writes a kdump-compressed dump (makedumpfile's default format) from a vmcore and a page filter
// into a DumpSink. Two passes over the filter's cycles: the first writes both bitmaps and counts
// the dumpable pages (which fixes where page data starts), the second writes page_descs and page
// data in ~1 MiB writes. Data is always written before the descs that point at it, so if the
// target fails the file is a valid prefix; the header is then rewritten as INCOMPLETE.
import { LastwordError } from '../errors.ts';
import { CODEC_FLAG } from '../codecs/codec.ts';
import type { CodecName } from '../codecs/codec.ts';
import { PageBatch, PageCompressor, UNREADABLE_PAGE, unreadableReason, type CompressorOptions } from '../codecs/pool.ts';
import { andPopcount, countBitsIn, popcount } from '../filter/bitmap.ts';
import { fillFirstBitmap } from '../filter/page-filter.ts';
import type { KernelPageSink, PageFilter } from '../filter/types.ts';
import type { PageOrder } from '../filter/crash-first.ts';
import type { Vmcore } from '../vmcore/types.ts';
import {
  DISK_DUMP_HEADER_VERSION, DUMP_DH_COMPRESSED_INCOMPLETE, KDUMP_SIGNATURE, KDUMP_SUB_HEADER_SIZE, PAGE_DESC_SIZE,
  encodeDiskDumpHeader, encodeSubHeader, geometry, noPageReadError, subHeaderBlocks,
} from './kdump-layout.ts';
import type { DiskDumpHeader, UnreadablePages } from './kdump-layout.ts';
import { DumpOutput } from './output.ts';

/** Pages per compression batch: 256 KiB of 4 KiB pages. */
export const BATCH_PAGES = 64;
/** Page descs are written 256 KiB (10922 descs) at a time. */
const DESC_FLUSH_BYTES = Math.floor((256 << 10) / PAGE_DESC_SIZE) * PAGE_DESC_SIZE;
/** ...or after this much page data, whichever comes first. */
const DESC_AFTER_DATA_BYTES = 1 << 20;
/** Pass 1's bitmaps are kept for pass 2 up to this size (bounded memory for huge machines). */
const BITMAP_KEEP_BYTES = 4 << 20;
const EMPTY = Buffer.alloc(0);

export interface DumpHeaderInfo {
  /** init_uts_ns.name, 390 bytes. */
  utsname: Buffer;
  crashTime: number;
  physBase: bigint;
}

export interface KdumpWriteOptions {
  vmcore: Vmcore;
  filter: PageFilter;
  output: DumpOutput;
  codec: CodecName;
  headerInfo: DumpHeaderInfo;
  /** Compression worker threads; 0 = compress in this thread. */
  workers: number;
  /** Called after each written batch with pages done and total. */
  progress?: (done: number, total: number) => void;
  /** Called when a step ends (makedumpfile's STEP names: 'Excluding unnecessary pages', 'Copying data'). */
  step?: (name: string) => void;
  /**
   * Which pages to write before the others (runtime/filter/crash-first.ts): a dump cut short then
   * has them. Without it pages are written in pfn order, as makedumpfile writes them. The order
   * never changes which pages are in the dump, nor the bitmaps and the table of page_descs.
   */
  order?: PageOrder;
}

export interface DumpSummary {
  maxMapnr: number;
  ramPages: number;
  dumpablePages: number;
  zeroPages: number;
  bytes: number;
  /** Dumpable pages whose read from the vmcore failed: not in the dump, which is flagged incomplete. */
  unreadable?: UnreadablePages;
}

export async function writeKdumpCompressed(o: KdumpWriteOptions): Promise<DumpSummary> {
  const { vmcore, filter, output } = o;
  const B = vmcore.pageSize;
  // max_mapnr as makedumpfile writes it: the filter's, trimmed to the last section with a mem_map.
  const maxMapnr = filter.maxMapnr;
  const level = filter.dumpLevel;
  const geo = geometry(B, subHeaderBlocks(B, vmcore.notes.length), maxMapnr);
  const header: DiskDumpHeader = {
    signature: KDUMP_SIGNATURE,
    headerVersion: DISK_DUMP_HEADER_VERSION,
    utsname: o.headerInfo.utsname,
    timestampSec: BigInt(o.headerInfo.crashTime),
    timestampUsec: 0n,
    status: CODEC_FLAG[o.codec],
    blockSize: B,
    subHdrSize: geo.subHdrSize,
    bitmapBlocks: geo.bitmapBlocks,
    maxMapnr32: Math.min(maxMapnr, 0xffffffff),
    totalRamBlocks: 0, deviceBlocks: 0, writtenBlocks: 0, currentCpu: 0,
    nrCpus: vmcore.nrCpus,
  };
  /** The header of a dump that lacks pages (cut short, or pages the vmcore could not give), as makedumpfile marks it. */
  const incompleteHeader = () => encodeDiskDumpHeader({ ...header, status: header.status | DUMP_DH_COMPRESSED_INCOMPLETE });
  let headerWritten = false;
  try {
    // Marked incomplete until the last page is written, so a dump cut short by a crash of the
    // capture itself never looks complete.
    await output.write(encodeDiskDumpHeader({ ...header, status: header.status | DUMP_DH_COMPRESSED_INCOMPLETE }), 0);
    headerWritten = true;
    const offsetNote = B + KDUMP_SUB_HEADER_SIZE;
    const sub = Buffer.alloc(geo.subHdrSize * B);
    encodeSubHeader({
      physBase: o.headerInfo.physBase, dumpLevel: level, split: 0, startPfn: 0n, endPfn: 0n,
      offsetVmcoreinfo: offsetNote + vmcore.vmcoreinfoDescOffset, sizeVmcoreinfo: vmcore.vmcoreinfoDescSize,
      offsetNote, sizeNote: vmcore.notes.length, offsetEraseinfo: 0, sizeEraseinfo: 0,
      startPfn64: 0n, endPfn64: 0n, maxMapnr64: BigInt(maxMapnr),
    }, sub);
    vmcore.notes.copy(sub, KDUMP_SUB_HEADER_SIZE);
    await output.write(sub, B);

    // Pass 1: bitmaps, counts. The 2nd bitmap of each cycle is kept for pass 2 while all of them
    // fit in BITMAP_KEEP_BYTES (128 GiB of RAM with 4 KiB pages), so mem_map is walked once.
    const cycle = filter.cyclePfns;
    const bm1 = Buffer.alloc(cycle / 8), bm2 = Buffer.alloc(cycle / 8);
    const kept: Buffer[] | undefined = Math.ceil(maxMapnr / 8) <= BITMAP_KEEP_BYTES ? [] : undefined;
    /** Dumpable pages before each cycle: the page_desc index of the cycle's first dumpable page. */
    const descsBefore: number[] = [];
    /**
     * Both bitmaps of [start, end) into bm1 and bm2; returns the dumpable pages (bm2 is masked by
     * bm1). Pass 1 (`sink`) lets the order take its pages from the filter's walk.
     */
    const fillBitmaps = (start: number, end: number, sink?: KernelPageSink): number => {
      fillFirstBitmap(vmcore, start, end, bm1);
      filter.fillCycle(start, end, bm2, sink);
      return andPopcount(bm2, bm1, Math.ceil((end - start) / 8));      // never dump a page the vmcore has no data for
    };
    let ramPages = 0, dumpable = 0;
    for (let start = 0; start < maxMapnr; start += cycle) {
      const end = Math.min(start + cycle, maxMapnr);
      const bytes = Math.ceil((end - start) / 8);
      descsBefore.push(dumpable);
      dumpable += fillBitmaps(start, end, o.order?.sink);
      o.order?.observe(start, end, bm2);
      ramPages += popcount(bm1, 8 * bytes);
      kept?.push(Buffer.from(bm2.subarray(0, bytes)));
      await output.write(bm1.subarray(0, bytes), geo.offsetBitmap1 + start / 8);
      await output.write(bm2.subarray(0, bytes), geo.offsetBitmap2 + start / 8);
    }
    // The rest of each bitmap up to the block boundary stays zero (sparse / already zero in a stream
    // reassembly); write it explicitly so stream and file outputs are byte-identical.
    const tail = geo.bitmapBytes - Math.ceil(maxMapnr / 8);
    if (tail > 0) {
      await output.write(Buffer.alloc(tail), geo.offsetBitmap1 + Math.ceil(maxMapnr / 8));
      await output.write(Buffer.alloc(tail), geo.offsetBitmap2 + Math.ceil(maxMapnr / 8));
    }

    o.step?.('Excluding unnecessary pages');
    // Pass 2: descs and data. Batches of BATCH_PAGES dumpable pages are read and compressed on the
    // compression threads (two batches queued per thread, so none waits for this one) while this
    // thread finds the next batch's pages. Results are taken in order: each batch's compressed
    // bytes are written from the batch's own buffer (no staging copy), and the descs gather in a
    // buffer written when full. All writes go through one chain, so they reach the file in order:
    // data always before the descs that point at it.
    const zeroPageShared = (level & 1) !== 0;
    // Pages are read by the compression thread from the vmcore file when the vmcore says where they
    // are (through mappings of it when it is /proc/vmcore); otherwise here, into the batch.
    const fd = vmcore.pageSpans && vmcore.fd !== undefined && vmcore.fd >= 0 ? vmcore.fd : -1;
    const compressor = new PageCompressor({
      codec: o.codec, pageSize: B, detectZero: zeroPageShared, workers: o.workers, ...(fd >= 0 && vmcore.mappedReads ? { mappedFd: fd } : {}),
    } satisfies CompressorOptions);
    let zeroPages = 0;
    let unreadable: UnreadablePages | undefined;
    let writing: Promise<void> = Promise.resolve();
    /** Runs `then` once every write queued so far is done. */
    const afterWrites = (then: () => void | Promise<void>) => {
      writing = writing.then(then);
      writing.catch(() => { /* awaited before every reuse of a buffer and at the end */ });
    };
    const write = (buf: Buffer, offset: number) => afterWrites(() => output.write(buf, offset));
    // A write of descs that the target cut short (full) may end inside a desc: its offset written,
    // its size not. Zeroed, it reads as a page not written, as in any dump cut short; left, it would
    // point at data with size 0. (Overwriting bytes the file already has needs no new space.)
    const writeDescs = (buf: Buffer, offset: number) => afterWrites(async () => {
      try {
        await output.write(buf, offset);
      } catch (err) {
        const stopped = err instanceof LastwordError && typeof err.where.offset === 'number' ? err.where.offset : -1;
        const torn = (stopped - offset) % PAGE_DESC_SIZE;
        if (stopped > offset && stopped < offset + buf.length && torn !== 0) {
          await output.write(Buffer.alloc(torn), stopped - torn).catch(() => { /* the first failure is the one to report */ });
        }
        throw err;
      }
    });
    try {
      const flagsCompressed = CODEC_FLAG[o.codec];
      const dataStart = geo.offsetPageDesc + dumpable * PAGE_DESC_SIZE;
      let dataOffset = dataStart;
      let descOffset = geo.offsetPageDesc;
      const zeroDescOffset = dataStart;
      if (zeroPageShared) {
        write(Buffer.alloc(B), dataOffset);     // the one zero page all zero pages' descs point at
        dataOffset += B;
      }
      // Two desc buffers: one fills while the other is written. Reused: fresh buffers per write
      // would be garbage that V8 collects late, and RSS is what a small crashkernel= lacks.
      const descBufs = [0, 1].map(() => {
        const buf = Buffer.alloc(DESC_FLUSH_BYTES);
        return { buf, u32: new Uint32Array(buf.buffer, buf.byteOffset, buf.length / 4), written: Promise.resolve() };
      });
      let cur = 0;
      let descLen = 0;
      const flushDescs = async () => {
        if (descLen === 0) return;
        const d = descBufs[cur]!;
        writeDescs(d.buf.subarray(0, descLen), descOffset);
        d.written = writing;
        descOffset += descLen;
        descLen = 0;
        cur ^= 1;
        await descBufs[cur]!.written;
      };
      let done = 0;
      let dataSinceDescs = 0;
      const limit = 2 * Math.max(1, o.workers);
      // `limit` compressing or queued, one being filled, one being written. Each page of a batch
      // has its page_desc index: consecutive in pfn order, except around the pages written first.
      const batches = Array.from({ length: limit + 2 }, () => new PageBatch(B, BATCH_PAGES));
      const slotsOf = new Map(batches.map((b) => [b, new Float64Array(BATCH_PAGES)]));
      const queue: { batch: PageBatch; compressed: Promise<void> }[] = [];
      const consume = async () => {
        const { batch: r, compressed } = queue.shift()!;
        await compressed;
        if (descLen + r.count * PAGE_DESC_SIZE > DESC_FLUSH_BYTES) await flushDescs();
        let descs = descBufs[cur]!.u32;
        let at = 0;
        const firstData = dataOffset;
        const sizes = r.sizes;
        const slots = slotsOf.get(r)!;
        // The batch's bytes go first: a desc written in the loop never points at data not yet written.
        write(r.dst.subarray(0, r.used), firstData);
        for (let i = 0; i < r.count; i++) {
          const slotOffset = geo.offsetPageDesc + slots[i]! * PAGE_DESC_SIZE;
          if (slotOffset !== descOffset + descLen) {
            // Not next to the descs gathered so far: write those, and gather from here.
            await flushDescs();
            descOffset = slotOffset;
            descs = descBufs[cur]!.u32;
          }
          const size = sizes[i]!;
          if (size === 0) {
            zeroPages++;
            putPageDesc(descs, descLen >> 2, zeroDescOffset, B, 0);
          } else if (size >= UNREADABLE_PAGE) {
            putPageDesc(descs, descLen >> 2, 0, 0, 0);      // offset 0, size 0: not saved
            if (unreadable) unreadable.pages++;
            else {
              const firstOffset = r.fileOffsetOf(i);
              unreadable = { pages: 1, firstOffset, firstPfn: pfnAtOffset(vmcore, firstOffset), reason: unreadableReason(size) };
            }
          } else {
            putPageDesc(descs, descLen >> 2, dataOffset, size, size < B ? flagsCompressed : 0);
            dataOffset += size;
            at += size;
          }
          descLen += PAGE_DESC_SIZE;
        }
        if (at !== r.used) throw new LastwordError('ECOMPRESS', `compressed batch sizes add up to ${at}, not ${r.used}`);
        // The batch is free again once its bytes are in the file.
        afterWrites(() => { batches.push(r); });
        // The descs follow every ~1 MiB of data, so a dump cut short (a full target, a crash of the
        // capture) still has the pages written so far.
        dataSinceDescs += r.used;
        if (dataSinceDescs >= DESC_AFTER_DATA_BYTES) { dataSinceDescs = 0; await flushDescs(); }
        done += r.count;
        o.progress?.(done, dumpable);
      };
      const nextBatch = async (): Promise<PageBatch> => {
        if (batches.length === 0) await writing;
        const next = batches.pop();
        if (!next) throw new LastwordError('EDUMP_WRITE', 'no page batch came back from the writes');
        next.reset();
        return next;
      };
      let batch = await nextBatch();
      const addSpan = (fileOffset: number, bytes: number) => batch.addSpan(fileOffset, bytes);
      const submit = async () => {
        // At most `limit` batches submitted: wait for the oldest before starting another.
        if (queue.length >= limit) await consume();
        const compressed = compressor.run(batch, fd);
        compressed.catch(() => { /* awaited in order by consume */ });
        queue.push({ batch, compressed });
        batch = await nextBatch();
      };
      /** Adds `run` pages from `pfn` (page_desc indexes from `slot`) to the batch; submits it when full. */
      const addRun = async (pfn: number, run: number, slot: number) => {
        const slots = slotsOf.get(batch)!;
        for (let k = 0; k < run; k++) slots[batch.count + k] = slot + k;
        if (fd >= 0) vmcore.pageSpans!(pfn, run, addSpan);
        else vmcore.readPages(pfn, run, batch.src.subarray(batch.count * B, (batch.count + run) * B));
        batch.count += run;
        if (batch.count === BATCH_PAGES) await submit();
      };
      const cycleBitmap = (c: number): Buffer => {
        if (kept) return kept[c]!;
        const start = c * cycle;
        fillBitmaps(start, Math.min(start + cycle, maxMapnr));
        return bm2;
      };
      const isSet = (bm: Buffer, i: number) => ((bm[i >> 3]! >> (i & 7)) & 1) === 1;
      // The pages asked for first: where each one's desc goes in the table (the count of dumpable
      // pages before it; -1: not dumped), found in one pass over the cycles (their bitmaps are made
      // again when not kept, so once), then written tier by tier, each run of consecutive dumpable
      // pages read at once.
      const tiers = o.order?.tiers() ?? [];
      const first = mergeSorted(tiers);
      const firstSlot = new Float64Array(first.length).fill(-1);
      for (let f = 0; f < first.length && first[f]! < maxMapnr;) {
        const c = Math.floor(first[f]! / cycle);
        const start = c * cycle, end = Math.min(start + cycle, maxMapnr);
        const bm = cycleBitmap(c);
        let slot = descsBefore[c]!, counted = 0;      // slot: the desc index of pfn start + counted
        for (; f < first.length && first[f]! < end; f++) {
          const i = first[f]! - start;
          if (!isSet(bm, i)) continue;
          slot += countBitsIn(bm, counted, i);
          counted = i;
          firstSlot[f] = slot;
        }
      }
      for (const tier of tiers) {
        for (let t = 0; t < tier.length;) {
          const at = lowerBound(first, tier[t]!);
          if (firstSlot[at]! < 0) { t++; continue; }
          let run = 1;
          const room = BATCH_PAGES - batch.count;
          while (run < room && t + run < tier.length && tier[t + run] === tier[t]! + run && firstSlot[at + run] === firstSlot[at]! + run) run++;
          await addRun(tier[t]!, run, firstSlot[at]!);
          t += run;
        }
      }
      // Then every other dumpable page, in pfn order.
      let nextFirst = 0;      // index in `first` of the next pfn written already
      for (let start = 0, c = 0; start < maxMapnr; start += cycle, c++) {
        const end = Math.min(start + cycle, maxMapnr);
        const bm = cycleBitmap(c);
        let slot = descsBefore[c]!;
        let pfn = start;
        while (pfn < end) {
          const i = pfn - start;
          if ((i & 7) === 0 && bm[i >> 3] === 0) { pfn += 8; continue; }
          if (!isSet(bm, i)) { pfn++; continue; }
          while (nextFirst < first.length && first[nextFirst]! < pfn) nextFirst++;
          if (first[nextFirst] === pfn) { slot++; pfn++; continue; }     // written first
          // A run of consecutive dumpable pages, read with one pread.
          const room = Math.min(end - pfn, BATCH_PAGES - batch.count, nextFirst < first.length ? first[nextFirst]! - pfn : Infinity);
          let run = 1;
          while (run < room) {
            const j = i + run;
            if ((j & 7) === 0 && run + 8 <= room && bm[j >> 3] === 0xff) { run += 8; continue; }
            if (!isSet(bm, j)) break;
            run++;
          }
          await addRun(pfn, run, slot);
          slot += run;
          pfn += run;
        }
        if (kept) kept[c] = EMPTY;      // pass 2 is done with this cycle's bits
      }
      if (batch.count > 0) await submit();
      while (queue.length > 0) await consume();
      await flushDescs();
      await writing;
      if (done !== dumpable) {
        throw new LastwordError('EDUMP_WRITE', `wrote ${done} pages but the bitmap has ${dumpable}: the page filter changed between passes`);
      }
      // Not one page read (the whole file gone bad, or every read failing with ENOMEM): no dump to speak of.
      if (unreadable && unreadable.pages === dumpable) throw noPageReadError(vmcore.file, dumpable, unreadable);
    } finally {
      // A failed run still has batches on the compression threads: close() lets them end.
      await writing.catch(() => {});
      await compressor.close();
    }
    await output.write(unreadable ? incompleteHeader() : encodeDiskDumpHeader(header), 0);
    await output.close();
    o.step?.('Copying data');
    return { maxMapnr, ramPages, dumpablePages: dumpable, zeroPages, bytes: output.bytesWritten, ...(unreadable ? { unreadable } : {}) };
  } catch (err) {
    await output.abortIncomplete(headerWritten ? incompleteHeader() : undefined);
    throw err;
  }
}

/** The index of the first element of ascending `a` that is >= `v`. */
function lowerBound(a: Uint32Array, v: number): number {
  let lo = 0, hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** One ascending array of the pfns of all tiers (each ascending, none in two). */
function mergeSorted(tiers: Uint32Array[]): Uint32Array {
  if (tiers.length === 0) return new Uint32Array(0);
  const all = new Uint32Array(tiers.reduce((n, t) => n + t.length, 0));
  let at = 0;
  for (const t of tiers) { all.set(t, at); at += t.length; }
  return all.sort();
}

/** The pfn whose data is at `offset` of the vmcore file (in the PT_LOAD pageSpans read it from), or -1. */
function pfnAtOffset(vmcore: Vmcore, offset: number): number {
  const l = vmcore.loads.find((x) => offset >= x.offset && offset < x.offset + x.fileSize);
  return l ? Math.floor((l.paddr + (offset - l.offset)) / vmcore.pageSize) : -1;
}

/**
 * encodePageDesc (kdump-layout.ts) for the hot loop, into a Uint32Array over the desc buffer at
 * element `k` (byte 4k): page_flags 0, no object, BigInt or bounds check per page (offsets are below
 * 2^53). Host byte order, as makedumpfile writes its structs: the format is the dumped machine's,
 * and lastword runs on the machine it dumps (x86_64, little-endian). Same bytes.
 */
function putPageDesc(descs: Uint32Array, k: number, offset: number, size: number, flags: number): void {
  descs[k] = offset % 0x100000000;
  descs[k + 1] = Math.floor(offset / 0x100000000);
  descs[k + 2] = size;
  descs[k + 3] = flags;
  descs[k + 4] = 0;
  descs[k + 5] = 0;
}
