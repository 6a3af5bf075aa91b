// The kdump-compressed ("KDUMP   ") layout, written down once for the reader and the writer:
// struct disk_dump_header (block 0), struct kdump_sub_header (block 1) followed by the ELF notes,
// the two bitmaps, the page_desc table and the page data. x86_64, little endian, header v6.
import { LastwordError } from '../errors.ts';

// makedumpfile diskdump_mod.h
export const KDUMP_SIGNATURE = 'KDUMP   ';
export const DISKDUMP_SIGNATURE = 'DISKDUMP';
export const DISK_DUMP_HEADER_VERSION = 6;
export const DUMP_DH_COMPRESSED_ZLIB = 0x01;
export const DUMP_DH_COMPRESSED_LZO = 0x02;
export const DUMP_DH_COMPRESSED_SNAPPY = 0x04;
export const DUMP_DH_COMPRESSED_INCOMPLETE = 0x08;
export const DUMP_DH_EXCLUDED_VMEMMAP = 0x10;
export const DUMP_DH_COMPRESSED_ZSTD = 0x20;
export const COMPRESSION_MASK = DUMP_DH_COMPRESSED_ZLIB | DUMP_DH_COMPRESSED_LZO | DUMP_DH_COMPRESSED_SNAPPY | DUMP_DH_COMPRESSED_ZSTD;

/** sizeof(struct disk_dump_header) on x86_64 (utsname is 6 x 65 bytes, then 6 bytes of padding). */
export const DISK_DUMP_HEADER_SIZE = 464;
/** sizeof(struct kdump_sub_header) on x86_64. */
export const KDUMP_SUB_HEADER_SIZE = 104;
/** sizeof(struct page_desc). */
export const PAGE_DESC_SIZE = 24;
const UTSNAME_OFFSET = 12;
const UTSNAME_SIZE = 390;

export interface DiskDumpHeader {
  signature: string;
  headerVersion: number;
  /** struct new_utsname as in memory: 390 bytes. */
  utsname: Buffer;
  timestampSec: bigint;
  timestampUsec: bigint;
  status: number;
  blockSize: number;
  /** In blocks. */
  subHdrSize: number;
  /** Blocks of both bitmaps together. */
  bitmapBlocks: number;
  maxMapnr32: number;
  totalRamBlocks: number;
  deviceBlocks: number;
  writtenBlocks: number;
  currentCpu: number;
  nrCpus: number;
}

export interface KdumpSubHeader {
  physBase: bigint;
  dumpLevel: number;
  split: number;
  startPfn: bigint;
  endPfn: bigint;
  offsetVmcoreinfo: number;
  sizeVmcoreinfo: number;
  offsetNote: number;
  sizeNote: number;
  offsetEraseinfo: number;
  sizeEraseinfo: number;
  startPfn64: bigint;
  endPfn64: bigint;
  maxMapnr64: bigint;
}

export interface PageDesc {
  offset: number;
  size: number;
  flags: number;
  pageFlags: bigint;
}

export function encodeDiskDumpHeader(h: DiskDumpHeader, into: Buffer = Buffer.alloc(h.blockSize)): Buffer {
  into.fill(0, 0, DISK_DUMP_HEADER_SIZE);
  into.write(h.signature.padEnd(8, ' ').slice(0, 8), 0, 'latin1');
  into.writeInt32LE(h.headerVersion, 8);
  h.utsname.copy(into, UTSNAME_OFFSET, 0, Math.min(UTSNAME_SIZE, h.utsname.length));
  into.writeBigInt64LE(h.timestampSec, 408);
  into.writeBigInt64LE(h.timestampUsec, 416);
  into.writeUInt32LE(h.status >>> 0, 424);
  into.writeInt32LE(h.blockSize, 428);
  into.writeInt32LE(h.subHdrSize, 432);
  into.writeUInt32LE(h.bitmapBlocks >>> 0, 436);
  into.writeUInt32LE(h.maxMapnr32 >>> 0, 440);
  into.writeUInt32LE(h.totalRamBlocks >>> 0, 444);
  into.writeUInt32LE(h.deviceBlocks >>> 0, 448);
  into.writeUInt32LE(h.writtenBlocks >>> 0, 452);
  into.writeUInt32LE(h.currentCpu >>> 0, 456);
  into.writeInt32LE(h.nrCpus, 460);
  return into;
}

export function decodeDiskDumpHeader(buf: Buffer, file: string): DiskDumpHeader {
  const signature = buf.toString('latin1', 0, 8);
  if (signature !== KDUMP_SIGNATURE && signature !== DISKDUMP_SIGNATURE) {
    const flat = buf.toString('latin1', 0, 12) === 'makedumpfile';
    throw new LastwordError('EDUMP_HEADER', flat
      ? `${file}: is a flattened dump (makedumpfile -F): reassemble it first with lastword filter -R`
      : `${file}: not a kdump-compressed file (signature ${JSON.stringify(signature)})`, { where: { file, offset: 0 } });
  }
  if (buf.length < DISK_DUMP_HEADER_SIZE) {
    throw new LastwordError('EDUMP_TRUNCATED', `${file}: ends inside the kdump-compressed header (${buf.length} of ${DISK_DUMP_HEADER_SIZE} bytes)`, { where: { file, offset: buf.length } });
  }
  return {
    signature,
    headerVersion: buf.readInt32LE(8),
    utsname: Buffer.from(buf.subarray(UTSNAME_OFFSET, UTSNAME_OFFSET + UTSNAME_SIZE)),
    timestampSec: buf.readBigInt64LE(408),
    timestampUsec: buf.readBigInt64LE(416),
    status: buf.readUInt32LE(424),
    blockSize: buf.readInt32LE(428),
    subHdrSize: buf.readInt32LE(432),
    bitmapBlocks: buf.readUInt32LE(436),
    maxMapnr32: buf.readUInt32LE(440),
    totalRamBlocks: buf.readUInt32LE(444),
    deviceBlocks: buf.readUInt32LE(448),
    writtenBlocks: buf.readUInt32LE(452),
    currentCpu: buf.readUInt32LE(456),
    nrCpus: buf.readInt32LE(460),
  };
}

export function encodeSubHeader(s: KdumpSubHeader, into: Buffer = Buffer.alloc(KDUMP_SUB_HEADER_SIZE)): Buffer {
  into.fill(0, 0, KDUMP_SUB_HEADER_SIZE);
  into.writeBigUInt64LE(s.physBase, 0);
  into.writeInt32LE(s.dumpLevel, 8);
  into.writeInt32LE(s.split, 12);
  into.writeBigUInt64LE(s.startPfn, 16);
  into.writeBigUInt64LE(s.endPfn, 24);
  into.writeBigInt64LE(BigInt(s.offsetVmcoreinfo), 32);
  into.writeBigUInt64LE(BigInt(s.sizeVmcoreinfo), 40);
  into.writeBigInt64LE(BigInt(s.offsetNote), 48);
  into.writeBigUInt64LE(BigInt(s.sizeNote), 56);
  into.writeBigInt64LE(BigInt(s.offsetEraseinfo), 64);
  into.writeBigUInt64LE(BigInt(s.sizeEraseinfo), 72);
  into.writeBigUInt64LE(s.startPfn64, 80);
  into.writeBigUInt64LE(s.endPfn64, 88);
  into.writeBigUInt64LE(s.maxMapnr64, 96);
  return into;
}

/** Fields newer than the header's version read as 0, as makedumpfile and crash treat them. */
export function decodeSubHeader(buf: Buffer, headerVersion: number): KdumpSubHeader {
  const v = (since: number, read: () => bigint) => (headerVersion >= since ? read() : 0n);
  return {
    physBase: buf.readBigUInt64LE(0),
    dumpLevel: headerVersion >= 1 ? buf.readInt32LE(8) : 0,
    split: headerVersion >= 2 ? buf.readInt32LE(12) : 0,
    startPfn: v(2, () => buf.readBigUInt64LE(16)),
    endPfn: v(2, () => buf.readBigUInt64LE(24)),
    offsetVmcoreinfo: Number(v(3, () => buf.readBigInt64LE(32))),
    sizeVmcoreinfo: Number(v(3, () => buf.readBigUInt64LE(40))),
    offsetNote: Number(v(4, () => buf.readBigInt64LE(48))),
    sizeNote: Number(v(4, () => buf.readBigUInt64LE(56))),
    offsetEraseinfo: Number(v(5, () => buf.readBigInt64LE(64))),
    sizeEraseinfo: Number(v(5, () => buf.readBigUInt64LE(72))),
    startPfn64: v(6, () => buf.readBigUInt64LE(80)),
    endPfn64: v(6, () => buf.readBigUInt64LE(88)),
    maxMapnr64: v(6, () => buf.readBigUInt64LE(96)),
  };
}

export function encodePageDesc(d: PageDesc, into: Buffer, at: number): void {
  into.writeBigInt64LE(BigInt(d.offset), at);
  into.writeUInt32LE(d.size, at + 8);
  into.writeUInt32LE(d.flags, at + 12);
  into.writeBigUInt64LE(d.pageFlags, at + 16);
}

export function decodePageDesc(buf: Buffer, at: number): PageDesc {
  return {
    offset: Number(buf.readBigInt64LE(at)),
    size: buf.readUInt32LE(at + 8),
    flags: buf.readUInt32LE(at + 12),
    pageFlags: buf.readBigUInt64LE(at + 16),
  };
}

/** Where each part of the file starts, from the sizes; the writer and the reader agree through this. */
export interface KdumpGeometry {
  blockSize: number;
  subHdrSize: number;       // blocks
  bitmapBlocks: number;     // both bitmaps
  /** Bytes of ONE bitmap. */
  bitmapBytes: number;
  offsetBitmap1: number;
  offsetBitmap2: number;
  offsetPageDesc: number;
}

export function subHeaderBlocks(blockSize: number, noteSize: number): number {
  return Math.ceil((KDUMP_SUB_HEADER_SIZE + noteSize) / blockSize);
}

export function geometry(blockSize: number, subHdrSize: number, maxMapnr: number): KdumpGeometry {
  const bitmapBytes = Math.ceil(Math.ceil(maxMapnr / 8) / blockSize) * blockSize;
  const bitmapBlocks = (2 * bitmapBytes) / blockSize;
  const offsetBitmap1 = blockSize * (1 + subHdrSize);
  return {
    blockSize, subHdrSize, bitmapBlocks, bitmapBytes, offsetBitmap1,
    offsetBitmap2: offsetBitmap1 + bitmapBytes,
    offsetPageDesc: blockSize * (1 + subHdrSize + bitmapBlocks),
  };
}

/** Geometry of an existing file: bitmapBlocks comes from the header (older files may round differently). */
export function geometryOf(h: DiskDumpHeader): KdumpGeometry {
  const bitmapBytes = (h.bitmapBlocks / 2) * h.blockSize;
  const offsetBitmap1 = h.blockSize * (1 + h.subHdrSize);
  return {
    blockSize: h.blockSize, subHdrSize: h.subHdrSize, bitmapBlocks: h.bitmapBlocks, bitmapBytes, offsetBitmap1,
    offsetBitmap2: offsetBitmap1 + bitmapBytes,
    offsetPageDesc: h.blockSize * (1 + h.subHdrSize + h.bitmapBlocks),
  };
}

export function compressionName(flags: number): string {
  if (flags & DUMP_DH_COMPRESSED_ZLIB) return 'zlib';
  if (flags & DUMP_DH_COMPRESSED_LZO) return 'lzo';
  if (flags & DUMP_DH_COMPRESSED_SNAPPY) return 'snappy';
  if (flags & DUMP_DH_COMPRESSED_ZSTD) return 'zstd';
  return 'none';
}

/** Bits set in a byte, for popcounts over bitmaps. */
export { POPCOUNT8 } from '../filter/bitmap.ts';

/**
 * Dumpable pages whose read from the vmcore failed (a bad sector, a copy of the vmcore cut short,
 * /proc/vmcore failing to copy a page). The kdump-compressed writer leaves their page_descs empty and
 * the header says INCOMPLETE, so crash reports exactly those pages as not saved; every other page
 * is in the dump.
 */
export interface UnreadablePages {
  pages: number;
  /** The first one: where it is in the vmcore, and why its read failed. */
  firstOffset: number;
  firstPfn: number;
  reason: string;
  /** ELF output: the pages are in the file as zeros (ELF cannot mark a page missing); e_flags says incomplete. */
  zeroFilled?: boolean;
}

/** The line that says a dump lacks pages its vmcore could not give. */
export function unreadableMessage(vmcoreFile: string, u: UnreadablePages): string {
  return `${vmcoreFile}: ${u.pages} page${u.pages === 1 ? '' : 's'} could not be read, the first at offset 0x${u.firstOffset.toString(16)} `
    + `(pfn 0x${u.firstPfn.toString(16)}): ${u.reason}; the dump has every other page and is flagged incomplete `
    + (u.zeroFilled ? '(ELF has no mark for a missing page: zeros stand in their place)' : '(crash reports those pages as not saved)');
}

/** A dump of which not one dumpable page could be read: no dump to speak of, so both writers fail with this. */
export function noPageReadError(vmcoreFile: string, dumpable: number, u: UnreadablePages): LastwordError {
  return new LastwordError('EVMCORE_READ', `${vmcoreFile}: none of the ${dumpable} dumpable pages could be read, the first at offset 0x${u.firstOffset.toString(16)}: ${u.reason}`,
    { where: { file: vmcoreFile, offset: u.firstOffset } });
}
