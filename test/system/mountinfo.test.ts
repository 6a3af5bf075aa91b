// /proc/self/mountinfo parsing: which mount shows a directory (the image's disk for `lastword
// initramfs --image-on`), and a device's existing read-only mount (the target the capture's /init
// mounted first). Lines as the kernel writes them (proc(5)), plus this process' real file.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { test } from 'node:test';
import { majorMinor, mountOf, parseMountInfo } from '../../runtime/system/mountinfo.ts';

const TEXT = [
  '22 27 0:21 / /proc rw,relatime - proc proc rw',
  '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard',
  '45 27 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw',
  '50 27 7:3 / /mnt/my\\040disk ro,relatime master:2 - xfs /dev/loop3 ro,attr2',
  '51 50 0:45 /@home /mnt/my\\040disk/home rw,relatime - btrfs /dev/sdb2 rw,subvolid=257,subvol=/@home',
  '52 50 7:4 / /mnt/my\\040disk ro,relatime - ext4 /dev/loop4 ro',
  '',
].join('\n');

test('parses mountinfo lines: optional fields skipped, \\040 in paths decoded, per-mount options split', () => {
  const e = parseMountInfo(TEXT);
  assert.equal(e.length, 6);
  assert.deepEqual(e[3], { majorMinor: '7:3', root: '/', mountPoint: '/mnt/my disk', options: ['ro', 'relatime'], fstype: 'xfs', source: '/dev/loop3' });
  assert.equal(e[4]!.root, '/@home');
  assert.equal(e[4]!.fstype, 'btrfs');
});

test('the mount that shows a directory is the longest mount point above it, the last one mounted there', () => {
  const e = parseMountInfo(TEXT);
  assert.equal(mountOf(e, '/var/lib/lastword')?.source, '/dev/vda');
  assert.equal(mountOf(e, '/run/netns')?.root, '/run/netns');
  assert.equal(mountOf(e, '/run/netnsx')?.mountPoint, '/');
  assert.equal(mountOf(e, '/mnt/my disk/lastword')?.source, '/dev/loop4', 'loop4 was mounted over loop3');
  assert.equal(mountOf(e, '/mnt/my disk/home/x')?.root, '/@home');
  assert.equal(mountOf([], '/x'), undefined);
});

test('major:minor of a device number as mountinfo writes it, small and large minors', () => {
  // glibc's makedev
  const makedev = (major: number, minor: number) => (major & 0xfff) * 256 + (minor & 0xff) + (minor & ~0xff) * 4096 + Math.floor(major / 4096) * 4096 * 2 ** 32;
  assert.equal(majorMinor(makedev(7, 0)), '7:0');
  assert.equal(majorMinor(makedev(254, 0)), '254:0');
  assert.equal(majorMinor(makedev(259, 300)), '259:300');
  assert.equal(majorMinor(makedev(8, 1048575)), '8:1048575');
  assert.equal(majorMinor(makedev(4100, 3)), '4100:3');
  // and this process' own root, as the kernel reports it
  const root = parseMountInfo(fs.readFileSync('/proc/self/mountinfo', 'utf8')).find((m) => m.mountPoint === '/');
  const dev = fs.statSync('/').dev;
  if (root && !root.majorMinor.startsWith('0:')) assert.equal(majorMinor(dev), root.majorMinor);
});
