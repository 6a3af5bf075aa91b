// Writes a kdump-compressed dump (makedumpfile's default format) from a vmcore and a page filter
// into a DumpSink. Two passes over the filter's cycles: the first writes both bitmaps and counts
// the dumpable pages (which fixes where page data starts), the second writes page_descs and page
// data in ~1 MiB writes. Data is always written before the descs that point at it, so if the
// target fails the file is a valid prefix; the header is then rewritten as INCOMPLETE.
import { LastwordError } from '../errors.ts';
import { CODEC_FLAG } from '../codecs/codec.ts';
import type { CodecName } from '../codecs/codec.ts';
import { PageCompressor, type CompressorOptions } from '../codecs/pool.ts';
import type { CompressedBatch } from '../codecs/codec.ts';
import type { PageFilter } from '../filter/types.ts';
import type { Vmcore } from '../vmcore/types.ts';
import {
  DISK_DUMP_HEADER_VERSION, DUMP_DH_COMPRESSED_INCOMPLETE, KDUMP_SIGNATURE, KDUMP_SUB_HEADER_SIZE, PAGE_DESC_SIZE,
  encodeDiskDumpHeader, encodePageDesc, encodeSubHeader, geometry, subHeaderBlocks,
} from './kdump-layout.ts';
import type { DiskDumpHeader } from './kdump-layout.ts';
import { DumpOutput } from './output.ts';
import { fillRamBitmap } from './ram-filter.ts';

/** Pages per compression batch: 1 MiB of 4 KiB pages. */
export const BATCH_PAGES = 256;
const FLUSH_BYTES = 1 << 20;

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
}

export interface DumpSummary {
  maxMapnr: number;
  ramPages: number;
  dumpablePages: number;
  zeroPages: number;
  bytes: number;
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

    // Pass 1: bitmaps, counts.
    const cycle = filter.cyclePfns;
    const bm1 = Buffer.alloc(cycle / 8), bm2 = Buffer.alloc(cycle / 8);
    let ramPages = 0, dumpable = 0;
    for (let start = 0; start < maxMapnr; start += cycle) {
      const end = Math.min(start + cycle, maxMapnr);
      const bytes = Math.ceil((end - start) / 8);
      fillRamBitmap(vmcore, start, end, bm1);
      filter.fillCycle(start, end, bm2);
      for (let i = 0; i < bytes; i++) {
        bm2[i] = bm2[i]! & bm1[i]!;      // never dump a page the vmcore has no data for
        ramPages += popcount(bm1[i]!);
        dumpable += popcount(bm2[i]!);
      }
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

    // Pass 2: descs and data.
    const zeroPageShared = (level & 1) !== 0;
    const compressor = new PageCompressor({ codec: o.codec, pageSize: B, detectZero: zeroPageShared, workers: o.workers } satisfies CompressorOptions);
    let zeroPages = 0;
    try {
      const flagsCompressed = CODEC_FLAG[o.codec];
      const dataStart = geo.offsetPageDesc + dumpable * PAGE_DESC_SIZE;
      let dataOffset = dataStart;
      let descOffset = geo.offsetPageDesc;
      const zeroDescOffset = dataStart;
      // Page data is staged in one reused buffer and written in ~1 MiB writes; a fresh buffer per
      // write would be garbage that V8 collects late, and RSS is what a small crashkernel= lacks.
      const staging = Buffer.alloc(FLUSH_BYTES + BATCH_PAGES * B);
      const descBuf = Buffer.alloc(Math.floor(FLUSH_BYTES / PAGE_DESC_SIZE) * PAGE_DESC_SIZE);
      let descLen = 0;
      let dataLen = 0, dataAt = dataOffset;
      if (zeroPageShared) {
        dataLen = B; dataOffset += B;     // staging is zero-filled: the shared zero page
      }
      const flush = async () => {
        // Data first: a desc must never point at bytes that are not in the file.
        if (dataLen) await output.write(staging.subarray(0, dataLen), dataAt);
        dataAt += dataLen; dataLen = 0;
        if (descLen) await output.write(descBuf.subarray(0, descLen), descOffset);
        descOffset += descLen; descLen = 0;
      };
      const inFlight: Promise<void>[] = [];
      const maxInFlight = Math.max(2, 2 * o.workers);
      let done = 0;
      // Batches are compressed concurrently but consumed strictly in order.
      let chain = Promise.resolve();
      const consume = (batch: ReturnType<PageCompressor['compress']>) => {
        batch.catch(() => { /* awaited in order below; a failure after an earlier one is moot */ });
        chain = chain.then(async () => {
          const r = await batch;
          // Flush points only between batches: then every desc written has its data written.
          if (descLen + r.count * PAGE_DESC_SIZE > descBuf.length || dataLen + r.used > staging.length) await flush();
          let at = 0;
          for (let i = 0; i < r.count; i++) {
            const size = r.sizes[i]!;
            if (size === 0) {
              zeroPages++;
              encodePageDesc({ offset: zeroDescOffset, size: B, flags: 0, pageFlags: 0n }, descBuf, descLen);
            } else {
              encodePageDesc({ offset: dataOffset, size, flags: size < B ? flagsCompressed : 0, pageFlags: 0n }, descBuf, descLen);
              dataOffset += size;
              at += size;
            }
            descLen += PAGE_DESC_SIZE;
          }
          if (at !== r.used) throw new LastwordError('ECOMPRESS', `compressed batch sizes add up to ${at}, not ${r.used}`);
          r.data.copy(staging, dataLen, 0, r.used);
          dataLen += r.used;
          compressor.recycle(r);
          if (dataLen >= FLUSH_BYTES) await flush();
          done += r.count;
          o.progress?.(done, dumpable);
        });
        return chain;
      };
      let pages = Buffer.from(compressor.buffer(BATCH_PAGES * B)), n = 0;
      const submit = async () => {
        const p = consume(compressor.compress(pages, n));
        p.catch(() => { /* surfaced through `chain` below */ });
        inFlight.push(p);
        pages = Buffer.from(compressor.buffer(BATCH_PAGES * B)); n = 0;
        if (inFlight.length >= maxInFlight) await inFlight.shift();
      };
      for (let start = 0; start < maxMapnr; start += cycle) {
        const end = Math.min(start + cycle, maxMapnr);
        fillRamBitmap(vmcore, start, end, bm1);
        filter.fillCycle(start, end, bm2);
        let pfn = start;
        while (pfn < end) {
          const i = pfn - start;
          if (!((bm2[i >> 3]! & bm1[i >> 3]!) >> (i & 7) & 1)) { pfn++; continue; }
          // Read a run of consecutive dumpable pages in one call.
          let run = 1;
          while (pfn + run < end && n + run < BATCH_PAGES) {
            const j = pfn + run - start;
            if (!((bm2[j >> 3]! & bm1[j >> 3]!) >> (j & 7) & 1)) break;
            run++;
          }
          vmcore.readPages(pfn, run, pages.subarray(n * B, (n + run) * B));
          n += run; pfn += run;
          if (n === BATCH_PAGES) await submit();
        }
      }
      if (n > 0) await submit();
      await Promise.all(inFlight);
      await chain;
      await flush();
      if (done !== dumpable) {
        throw new LastwordError('EDUMP_WRITE', `wrote ${done} pages but the bitmap has ${dumpable}: the page filter changed between passes`);
      }
    } finally {
      await compressor.close();
    }
    await output.write(encodeDiskDumpHeader(header), 0);
    await output.close();
    return { maxMapnr, ramPages, dumpablePages: dumpable, zeroPages, bytes: output.bytesWritten };
  } catch (err) {
    await markIncomplete(output, header, headerWritten);
    throw err;
  }
}

/** After a failure: flag the header INCOMPLETE where the sink allows it, then abort the sink. */
async function markIncomplete(output: DumpOutput, header: DiskDumpHeader, headerWritten: boolean): Promise<void> {
  try {
    if (headerWritten && output.sink.kind === 'positional') {
      await output.sink.pwrite(encodeDiskDumpHeader({ ...header, status: header.status | DUMP_DH_COMPRESSED_INCOMPLETE }), 0);
    }
  } catch { /* the original error is what the caller must see */ }
  try {
    await output.abort();
  } catch { /* same */ }
}

function popcount(v: number): number {
  v = v - ((v >> 1) & 0x55);
  v = (v & 0x33) + ((v >> 2) & 0x33);
  return (v + (v >> 4)) & 0x0f;
}
