// Filesystem identity from the first bytes of a block device: type, UUID and label, read from
// the superblock like blkid does. The capture kernel has no udev, hence no /dev/disk/by-uuid or
// by-label, so UUID= and LABEL= targets are found by reading superblocks ourselves.

export interface FsIdentity {
  fstype: 'ext2' | 'ext3' | 'ext4' | 'xfs' | 'btrfs';
  uuid: string;
  label: string;
}

/** Bytes a caller must read from the start of the device to probe every type here. */
export const PROBE_BYTES = 0x10000 + 0x1000; // btrfs' primary superblock sits at 64 KiB

function uuidAt(buf: Buffer, off: number): string {
  const h = buf.subarray(off, off + 16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function cString(buf: Buffer, off: number, len: number): string {
  const b = buf.subarray(off, off + len);
  const nul = b.indexOf(0);
  return b.subarray(0, nul < 0 ? b.length : nul).toString('utf8');
}

// ext2/3/4: struct ext4_super_block at byte 1024 (linux fs/ext4/ext4.h).
const EXT_SB = 1024;
const EXT_MAGIC = 0xef53; // s_magic at +0x38
const EXT_FEATURE_COMPAT_HAS_JOURNAL = 0x4; // s_feature_compat +0x5c
const EXT_INCOMPAT_EXT3_OK = 0x2 | 0x4 | 0x10; // filetype, recover, meta_bg: ext3 knows these

function probeExt(buf: Buffer): FsIdentity | undefined {
  if (buf.length < EXT_SB + 0x100 || buf.readUInt16LE(EXT_SB + 0x38) !== EXT_MAGIC) return undefined;
  const compat = buf.readUInt32LE(EXT_SB + 0x5c);
  const incompat = buf.readUInt32LE(EXT_SB + 0x60);
  const roCompat = buf.readUInt32LE(EXT_SB + 0x64);
  // blkid's rule: anything beyond ext3's feature set is ext4; a journal without that is ext3.
  const fstype = (incompat & ~EXT_INCOMPAT_EXT3_OK) !== 0 || (roCompat & ~0x7) !== 0
    ? 'ext4'
    : compat & EXT_FEATURE_COMPAT_HAS_JOURNAL ? 'ext3' : 'ext2';
  return { fstype, uuid: uuidAt(buf, EXT_SB + 0x68), label: cString(buf, EXT_SB + 0x78, 16) };
}

// XFS: struct xfs_dsb at byte 0, big-endian (fs/xfs/libxfs/xfs_format.h): sb_uuid +32, sb_fname +108.
function probeXfs(buf: Buffer): FsIdentity | undefined {
  if (buf.length < 120 || buf.toString('latin1', 0, 4) !== 'XFSB') return undefined;
  return { fstype: 'xfs', uuid: uuidAt(buf, 32), label: cString(buf, 108, 12) };
}

// btrfs: struct btrfs_super_block at 64 KiB (fs/btrfs/ctree.h): fsid +0x20, magic +0x40, label +0x12b.
const BTRFS_SB = 0x10000;
function probeBtrfs(buf: Buffer): FsIdentity | undefined {
  if (buf.length < BTRFS_SB + 0x22b || buf.toString('latin1', BTRFS_SB + 0x40, BTRFS_SB + 0x48) !== '_BHRfS_M') return undefined;
  return { fstype: 'btrfs', uuid: uuidAt(buf, BTRFS_SB + 0x20), label: cString(buf, BTRFS_SB + 0x12b, 256) };
}

/** Identifies the filesystem whose first PROBE_BYTES (or fewer) are in `buf`. */
export function probeSuperblock(buf: Buffer): FsIdentity | undefined {
  return probeXfs(buf) ?? probeExt(buf) ?? probeBtrfs(buf);
}
