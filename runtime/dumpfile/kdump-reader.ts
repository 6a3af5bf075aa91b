// Reads kdump-compressed files (ours and makedumpfile's): header, sub-header, VMCOREINFO, notes,
// both bitmaps and any page with every codec. Bitmaps are read one block at a time; only one
// popcount per bitmap block is kept, so memory stays small whatever the RAM size of the dump.
import * as fs from 'node:fs';
import { LastwordError } from '../errors.ts';
import { codecsAddon, decompressPage } from '../codecs/codec.ts';
import type { CodecsAddon } from '../codecs/codec.ts';
import { parseVmcoreinfo } from '../vmcore/vmcoreinfo.ts';
import type { Vmcoreinfo } from '../vmcore/types.ts';
import {
  DISK_DUMP_HEADER_SIZE, DUMP_DH_COMPRESSED_INCOMPLETE, KDUMP_SUB_HEADER_SIZE, PAGE_DESC_SIZE, POPCOUNT8,
  compressionName, decodeDiskDumpHeader, decodePageDesc, decodeSubHeader, geometryOf,
} from './kdump-layout.ts';
import type { DiskDumpHeader, KdumpGeometry, KdumpSubHeader, PageDesc } from './kdump-layout.ts';

export class KdumpReader {
  readonly file: string;
  readonly header: DiskDumpHeader;
  readonly subHeader: KdumpSubHeader;
  readonly geometry: KdumpGeometry;
  readonly maxMapnr: number;
  readonly pageSize: number;
  readonly notes: Buffer;
  readonly vmcoreinfoText: string;
  readonly incomplete: boolean;
  readonly codec: string;
  /** bytes of the file (Infinity for a device or pipe, which does not say) */
  readonly fileSize: number;
  /** Set bits of the 2nd bitmap before each bitmap block: the page_desc index of its first pfn. */
  private readonly blockPrefix: Float64Array;
  private readonly fd: number;
  private cached: { which: 1 | 2; block: number; bytes: Buffer } | undefined;
  private addon: CodecsAddon | undefined;

  constructor(file: string) {
    this.file = file;
    this.fd = fs.openSync(file, 'r');
    try {
      // Short reads allowed here: a small file that is not a dump is named as such, not as truncated.
      const block0 = Buffer.alloc(DISK_DUMP_HEADER_SIZE);
      this.header = decodeDiskDumpHeader(block0.subarray(0, fs.readSync(this.fd, block0, 0, block0.length, 0)), file);
      const h = this.header;
      if (h.blockSize <= 0 || h.blockSize > 65536 || h.blockSize & (h.blockSize - 1)) {
        throw new LastwordError('EDUMP_HEADER', `${file}: block_size ${h.blockSize} is not a power of two up to 64 KiB`, { where: { file, offset: 428 } });
      }
      this.pageSize = h.blockSize;
      this.subHeader = decodeSubHeader(this.pread(KDUMP_SUB_HEADER_SIZE, h.blockSize), h.headerVersion);
      this.geometry = geometryOf(h);
      this.maxMapnr = this.subHeader.maxMapnr64 > 0n ? Number(this.subHeader.maxMapnr64) : h.maxMapnr32;
      if (Math.ceil(this.maxMapnr / 8) > this.geometry.bitmapBytes) {
        throw new LastwordError('EDUMP_HEADER', `${file}: bitmap_blocks ${h.bitmapBlocks} too small for max_mapnr ${this.maxMapnr}`, { where: { file, offset: 436 } });
      }
      const s = this.subHeader;
      const st = fs.fstatSync(this.fd);
      this.fileSize = st.isFile() ? st.size : Infinity;
      // kdump_sub_header's offset/size pairs (offsets 32..63 of it): inside the file, or the header is damaged.
      const span = (what: string, at: number, offset: number, size: number) => {
        if (size > 0 && !(Number.isSafeInteger(offset) && Number.isSafeInteger(size) && offset >= 0 && size <= 1 << 30 && offset + size <= this.fileSize)) {
          throw new LastwordError('EDUMP_HEADER', `${file}: sub-header ${what} (offset ${offset}, size ${size}) at offset 0x${(h.blockSize + at).toString(16)} lies outside the file of ${this.fileSize} bytes`, { where: { file, offset: h.blockSize + at } });
        }
      };
      span('vmcoreinfo', 32, s.offsetVmcoreinfo, s.sizeVmcoreinfo);
      span('note', 48, s.offsetNote, s.sizeNote);
      this.notes = s.sizeNote > 0 ? this.pread(s.sizeNote, s.offsetNote) : Buffer.alloc(0);
      this.vmcoreinfoText = s.sizeVmcoreinfo > 0 ? this.pread(s.sizeVmcoreinfo, s.offsetVmcoreinfo).toString('latin1').replace(/\0+$/, '') : '';
      this.incomplete = (h.status & DUMP_DH_COMPRESSED_INCOMPLETE) !== 0;
      this.codec = compressionName(h.status);
      this.blockPrefix = this.countBitmapBlocks();
    } catch (err) {
      fs.closeSync(this.fd);
      throw err;
    }
  }

  get vmcoreinfo(): Vmcoreinfo {
    return parseVmcoreinfo(this.vmcoreinfoText, `${this.file} (VMCOREINFO)`);
  }

  /** Pages with a page_desc (set bits of the 2nd bitmap). */
  get dumpablePages(): number {
    return this.blockPrefix[this.blockPrefix.length - 1]!;
  }

  get offsetPageData(): number {
    return this.geometry.offsetPageDesc + this.dumpablePages * PAGE_DESC_SIZE;
  }

  /** Is there RAM at this pfn (1st bitmap)? */
  hasRam(pfn: number): boolean {
    return this.bit(1, pfn);
  }

  /** Was this page saved (2nd bitmap)? */
  isDumpable(pfn: number): boolean {
    return this.bit(2, pfn);
  }

  /** Copies bitmap `which` for pfns [start, start + 8*into.length) into `into`; start is a multiple of 8. */
  readBitmap(which: 1 | 2, start: number, into: Buffer): void {
    const base = which === 1 ? this.geometry.offsetBitmap1 : this.geometry.offsetBitmap2;
    const from = start / 8;
    const len = Math.max(0, Math.min(into.length, this.geometry.bitmapBytes - from));
    into.fill(0);
    if (len > 0) this.preadInto(into.subarray(0, len), base + from);
  }

  /** The page_desc of a dumpable pfn, or undefined when the page was not saved. */
  pageDesc(pfn: number): PageDesc | undefined {
    if (!this.isDumpable(pfn)) return undefined;
    return decodePageDesc(this.pread(PAGE_DESC_SIZE, this.geometry.offsetPageDesc + this.descIndex(pfn) * PAGE_DESC_SIZE), 0);
  }

  /** Reads descs [index, index+count) (sequential scans: info, comparisons). */
  pageDescs(index: number, count: number): Buffer {
    return this.pread(count * PAGE_DESC_SIZE, this.geometry.offsetPageDesc + index * PAGE_DESC_SIZE);
  }

  /**
   * The page's contents; undefined when the page was excluded, or when the dump is incomplete and
   * the page was never written (its page_desc is still zero).
   */
  readPage(pfn: number, into: Buffer = Buffer.alloc(this.pageSize)): Buffer | undefined {
    const desc = this.pageDesc(pfn);
    if (!desc) return undefined;
    if (desc.offset === 0 && desc.size === 0) {
      if (this.incomplete) return undefined;
      throw new LastwordError('EDUMP_PAGE', `${this.file}: page_desc of pfn 0x${pfn.toString(16)} is empty in a complete dump`, { where: { file: this.file, pfn } });
    }
    if (desc.size > this.pageSize * 2 || desc.size === 0) {
      throw new LastwordError('EDUMP_PAGE', `${this.file}: page_desc of pfn 0x${pfn.toString(16)} has size ${desc.size}`, { where: { file: this.file, pfn } });
    }
    const stored = this.pread(desc.size, desc.offset);
    this.addon ??= codecsAddon();
    decompressPage(this.addon, desc.flags, stored, into, { file: this.file, pfn });
    return into;
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  private descIndex(pfn: number): number {
    const blockBits = this.pageSize * 8;
    const block = Math.floor(pfn / blockBits);
    const bytes = this.bitmapBlock(2, block);
    let n = this.blockPrefix[block]!;
    const inBlock = pfn - block * blockBits;
    for (let i = 0; i < inBlock >> 3; i++) n += POPCOUNT8[bytes[i]!]!;
    const last = bytes[inBlock >> 3]! & ((1 << (inBlock & 7)) - 1);
    return n + POPCOUNT8[last]!;
  }

  private bit(which: 1 | 2, pfn: number): boolean {
    if (pfn < 0 || pfn >= this.maxMapnr) return false;
    const blockBits = this.pageSize * 8;
    const block = Math.floor(pfn / blockBits);
    const off = pfn - block * blockBits;
    return ((this.bitmapBlock(which, block)[off >> 3]! >> (off & 7)) & 1) === 1;
  }

  private bitmapBlock(which: 1 | 2, block: number): Buffer {
    const c = this.cached;
    if (c && c.which === which && c.block === block) return c.bytes;
    const base = which === 1 ? this.geometry.offsetBitmap1 : this.geometry.offsetBitmap2;
    const bytes = this.pread(this.pageSize, base + block * this.pageSize);
    this.cached = { which, block, bytes };
    return bytes;
  }

  private countBitmapBlocks(): Float64Array {
    const blocks = this.geometry.bitmapBytes / this.pageSize;
    const prefix = new Float64Array(blocks + 1);
    const chunkBlocks = 256;
    for (let b = 0; b < blocks; b += chunkBlocks) {
      const n = Math.min(chunkBlocks, blocks - b);
      const chunk = this.pread(n * this.pageSize, this.geometry.offsetBitmap2 + b * this.pageSize);
      for (let i = 0; i < n; i++) {
        let c = 0;
        for (let j = i * this.pageSize; j < (i + 1) * this.pageSize; j++) c += POPCOUNT8[chunk[j]!]!;
        prefix[b + i + 1] = prefix[b + i]! + c;
      }
    }
    return prefix;
  }

  private pread(length: number, offset: number): Buffer {
    const buf = Buffer.alloc(length);
    this.preadInto(buf, offset);
    return buf;
  }

  private preadInto(buf: Buffer, offset: number): void {
    let done = 0;
    while (done < buf.length) {
      const n = fs.readSync(this.fd, buf, done, buf.length - done, offset + done);
      if (n === 0) {
        throw new LastwordError('EDUMP_TRUNCATED', `${this.file}: ends before offset 0x${(offset + buf.length).toString(16)} (reading ${buf.length} bytes at offset 0x${offset.toString(16)})`, { where: { file: this.file, offset: offset + done } });
      }
      done += n;
    }
  }
}

export function openKdumpFile(file: string): KdumpReader {
  return new KdumpReader(file);
}
