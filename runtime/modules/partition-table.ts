// PARTUUID and PARTLABEL from the partition table itself: the kernel knows them but does not put
// PARTUUID in sysfs, and without udev there is no /dev/disk/by-partuuid. GPT (UEFI spec 5.3):
// header at LBA 1, entries with a unique GUID and a UTF-16 name; MBR: the disk signature, as
// the kernel's root=PARTUUID=SSSSSSSS-PP form (block/partitions/msdos.c).

export interface PartitionId {
  /** 1-based partition number, as in /sys/class/block/<dev>/partition. */
  number: number;
  partuuid: string;
  partlabel?: string;
}

/** Bytes to read from the start of a disk for GPT with the usual 128 entries of 128 bytes. */
export function partitionTableBytes(logicalBlockSize: number): number {
  return logicalBlockSize * 2 + 128 * 128;
}

/** A GUID stored mixed-endian (first three fields little-endian), as text. */
function guidAt(buf: Buffer, off: number): string {
  const le = (o: number, n: number) => Buffer.from(buf.subarray(off + o, off + o + n)).reverse().toString('hex');
  const be = (o: number, n: number) => buf.subarray(off + o, off + o + n).toString('hex');
  return `${le(0, 4)}-${le(4, 2)}-${le(6, 2)}-${be(8, 2)}-${be(10, 6)}`;
}

/**
 * Partition ids of a disk whose first bytes are in `buf` (at least partitionTableBytes()). Only
 * entries inside `buf` are read: GPT entries normally follow the header at LBA 2.
 */
export function readPartitionIds(buf: Buffer, logicalBlockSize = 512): PartitionId[] {
  const hdr = logicalBlockSize;
  if (buf.length >= hdr + 92 && buf.toString('latin1', hdr, hdr + 8) === 'EFI PART') {
    const entryLba = Number(buf.readBigUInt64LE(hdr + 72));
    const count = buf.readUInt32LE(hdr + 80);
    const size = buf.readUInt32LE(hdr + 84);
    const out: PartitionId[] = [];
    for (let i = 0; i < count; i++) {
      const off = entryLba * logicalBlockSize + i * size;
      if (off + 128 > buf.length || size < 128) break;
      if (buf.subarray(off, off + 16).every((b) => b === 0)) continue; // unused entry
      const name = buf.subarray(off + 56, off + 128).toString('utf16le').replace(/\0.*$/s, '');
      out.push({ number: i + 1, partuuid: guidAt(buf, off + 16), partlabel: name || undefined });
    }
    return out;
  }
  if (buf.length >= 512 && buf.readUInt16LE(510) === 0xaa55) {
    const sig = buf.readUInt32LE(440).toString(16).padStart(8, '0');
    const out: PartitionId[] = [];
    for (let i = 0; i < 4; i++) {
      const e = 446 + i * 16;
      if (buf[e + 4] === 0) continue; // empty slot
      out.push({ number: i + 1, partuuid: `${sig}-${(i + 1).toString(16).padStart(2, '0')}` });
    }
    return out;
  }
  return [];
}
