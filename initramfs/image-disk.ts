// The read-only image on a disk of this machine instead of inside the initramfs (`lastword initramfs
// --image-on FILE`), as Debian's kdump-tools runs makedumpfile from the root filesystem: the cpio
// then holds busybox, the modules and the configs (a few MB), and rootfs no longer pins the ~28 MB
// image, nor holds it twice while the kernel unpacks the initramfs. /init finds the filesystem
// holding FILE by the UUID it had at build time, mounts it read-only and loop-mounts the image from
// it. The price: the capture depends on that disk and its driver, which the default layout does not.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LastwordError } from '../runtime/errors.ts';
import { listBlockDevices, type BlockDevice } from '../runtime/modules/blockdev.ts';
import { mountOf, parseMountInfo } from '../runtime/system/mountinfo.ts';
import { blockDeviceModaliases } from './host-devices.ts';

/** Filesystems /init can mount the image's disk as (the types superblock.ts identifies). */
export const IMAGE_DISK_FSTYPES = ['ext2', 'ext3', 'ext4', 'xfs', 'btrfs'] as const;

export interface ImageDisk {
  /** where the image is written on this machine */
  file: string;
  /** how /init finds the filesystem: `UUID=...` (busybox findfs) */
  device: string;
  /** /dev node on this machine, for messages */
  hostDevice: string;
  fstype: (typeof IMAGE_DISK_FSTYPES)[number];
  /** mount -o for /init (btrfs: the top-level subvolume, which every path below is relative to) */
  options: string;
  /** the image's path inside that filesystem, as /init sees it once mounted with `options` */
  pathInFs: string;
  /** the modaliases above the disk (host-devices.ts): its drivers; empty for a loop device */
  modaliases: string[];
}

export interface ImageDiskSources {
  mountinfo?: string;
  devices?: BlockDevice[];
  /** /sys, for /sys/dev/block/<major:minor> */
  sysfs?: string;
}

/**
 * Where `file` will be and how the capture's /init finds it. Refused, with the reason: a
 * filesystem that is not on a plain disk or partition the capture's busybox can mount (tmpfs, NFS,
 * overlay, device-mapper or md: LVM and LUKS need their tools), or one without a UUID.
 */
export function imageDiskOf(file: string, src: ImageDiskSources = {}): ImageDisk {
  const what = `--image-on ${file}`;
  if (!path.isAbsolute(file)) throw new LastwordError('EIMAGE_DISK', `${what}: give an absolute path`);
  let dir: string;
  try {
    dir = fs.realpathSync(path.dirname(file));
  } catch (err) {
    throw new LastwordError('EIMAGE_DISK', `${what}: ${path.dirname(file)} does not exist (${(err as Error).message})`);
  }
  const mount = mountOf(parseMountInfo(src.mountinfo ?? fs.readFileSync('/proc/self/mountinfo', 'utf8')), dir);
  if (!mount) throw new LastwordError('EIMAGE_DISK', `${what}: no mount shows ${dir}`);
  const fstype = IMAGE_DISK_FSTYPES.find((t) => t === mount.fstype);
  if (!fstype) {
    throw new LastwordError('EIMAGE_DISK', `${what}: ${mount.mountPoint} is ${mount.fstype} (${mount.source}); the capture's /init mounts only ${IMAGE_DISK_FSTYPES.join(', ')} on a disk or partition`);
  }
  // The device by its major:minor (a btrfs mount has an anonymous one: then its source).
  let name: string | undefined;
  try {
    name = path.basename(fs.realpathSync(path.join(src.sysfs ?? '/sys', 'dev', 'block', mount.majorMinor)));
  } catch {
    name = mount.source.startsWith('/dev/') ? path.basename(fs.realpathSync(mount.source)) : undefined;
  }
  if (name && /^(dm-|md)/.test(name)) {
    throw new LastwordError('EIMAGE_DISK', `${what}: ${mount.mountPoint} is on ${mount.source} (${name}), a device-mapper or md device; the capture's /init mounts only plain disks and partitions`);
  }
  const device = name ? (src.devices ?? listBlockDevices()).find((d) => d.name === name) : undefined;
  if (!device?.fs?.uuid) {
    throw new LastwordError('EIMAGE_DISK', `${what}: cannot read the UUID of ${mount.source} (${mount.mountPoint}, ${mount.fstype})`);
  }
  const inFs = path.posix.join(mount.root, path.relative(mount.mountPoint, dir), path.basename(file));
  return {
    file: path.join(dir, path.basename(file)),
    device: `UUID=${device.fs.uuid}`,
    hostDevice: device.dev,
    fstype,
    options: fstype === 'btrfs' ? 'ro,subvolid=5' : 'ro',
    pathInFs: inFs,
    modaliases: blockDeviceModaliases(name!, src.sysfs),
  };
}

/**
 * Puts the built image at the disk's file: a temporary name in the same directory, fsync'ed, then
 * renamed over the old image, so a capture never finds half an image; the directory is fsync'ed too.
 */
export function placeImage(image: string, disk: ImageDisk): void {
  const tmp = `${disk.file}.${process.pid}.tmp`;
  try {
    fs.copyFileSync(image, tmp);
    fs.chmodSync(tmp, 0o644);
    const fd = fs.openSync(tmp, 'r');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
    fs.renameSync(tmp, disk.file);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  const d = fs.openSync(path.dirname(disk.file), 'r');
  try { fs.fsyncSync(d); } finally { fs.closeSync(d); }
}
