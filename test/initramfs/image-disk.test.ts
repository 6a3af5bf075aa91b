// `lastword initramfs --image-on FILE`: the read-only image on a disk of this machine instead of in
// the initramfs. A real ext4 on a loop device stands in for that disk: the builder finds its UUID
// from the mount, writes the image there, and the cpio's /init mounts the disk by that UUID before
// the image. The capture kernel side runs in test/e2e/image-on-disk.ci.test.ts.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { imageDiskOf } from '../../initramfs/image-disk.ts';
import { kernelVersion, repo } from '../support/lab.ts';

const kver = kernelVersion('6.1');
const skip = !kver ? 'no Debian 6.1 kernel (bash .ci/setup)' : false;
// The layout does not depend on what the executable is: a small ELF keeps the test quick.
const small = '/usr/bin/kmod';
let tmp = '';
let disk = '';
const uuid = randomUUID();

before(() => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-image-disk-'));
  const img = path.join(tmp, 'disk.img');
  fs.writeFileSync(img, '');
  fs.truncateSync(img, 64 << 20);
  execFileSync('mkfs.ext4', ['-q', '-F', '-U', uuid, img]);
  disk = path.join(tmp, 'disk');
  fs.mkdirSync(disk);
  execFileSync('mount', ['-o', 'loop', img, disk]);
});
after(() => {
  if (!tmp) return;
  spawnSync('umount', [disk]);
  fs.rmSync(tmp, { recursive: true, force: true });
});

function initramfs(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const conf = path.join(tmp, 'kdump.conf');
  fs.writeFileSync(conf, 'ext4 LABEL=crash\n');
  return spawnSync(process.execPath, [path.join(repo, 'runtime', 'main.ts'), 'initramfs', '--kernel', kver!, '--config', conf, '--executable', small, '--compress', 'none', ...args],
    { encoding: 'utf8', env: { ...process.env, LASTWORD_IMAGE_CACHE: '' } });
}

test('--image-on writes the image onto the disk, and /init mounts that disk by UUID, read-only, then the image from it', { skip }, () => {
  fs.mkdirSync(path.join(disk, 'var', 'lib', 'lastword'), { recursive: true });
  const file = path.join(disk, 'var', 'lib', 'lastword', 'capture.squashfs');
  const out = path.join(tmp, 'capture.cpio');
  const r = initramfs(['--image-on', file, '-o', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`the capture mounts UUID=${uuid}, now /dev/loop\\d+, ext4, and reads /var/lib/lastword/capture\\.squashfs`));
  // the image is on the disk, a squashfs holding the executable, and not in the cpio
  const listing = spawnSync('unsquashfs', ['-l', file], { encoding: 'utf8' });
  assert.equal(listing.status, 0, listing.stderr);
  assert.match(listing.stdout, /squashfs-root\/lastword$/m);
  const root = fs.mkdtempSync(path.join(tmp, 'unpacked-'));
  execFileSync('sh', ['-c', `cpio -id --quiet < '${out}'`], { cwd: root });
  assert.equal(spawnSync('find', ['.', '-name', '*.squashfs'], { cwd: root, encoding: 'utf8' }).stdout, '');

  const init = fs.readFileSync(path.join(root, 'init'), 'utf8');
  assert.match(init, new RegExp(`until dev=\\$\\(\\$bb findfs UUID=${uuid} 2>/dev/null\\); do`));
  assert.match(init, /\$bb mount -t ext4 -o ro "\$dev" \/usr\/lib\/lastword\/disk \|\| fail /);
  assert.match(init, /\$bb mount -t squashfs -o ro,loop \/usr\/lib\/lastword\/disk\/var\/lib\/lastword\/capture\.squashfs \/usr\/lib\/lastword\/ro \|\| fail /);
  // Before the disk is mounted only busybox runs: loop, squashfs, ext4 and (a loop device has no
  // hardware to name its driver) the usual storage drivers, uncompressed, each removed once loaded.
  const insmods = [...init.matchAll(/^\$bb insmod (\S+)\n\$bb rm -f (\S+)$/gm)];
  for (const m of insmods) assert.equal(m[1], m[2]);
  const names = insmods.map((m) => path.basename(m[1]!));
  for (const ko of ['loop.ko', 'squashfs.ko', 'ext4.ko', 'jbd2.ko', 'virtio_pci.ko', 'virtio_blk.ko', 'ahci.ko', 'nvme.ko']) assert.ok(names.includes(ko), `${ko} loaded early: ${names.join(' ')}`);
  assert.ok(names.indexOf('jbd2.ko') < names.indexOf('ext4.ko') && names.indexOf('virtio_pci.ko') < names.indexOf('virtio_blk.ko'), names.join(' '));
  assert.ok(init.indexOf('insmod') < init.indexOf('findfs') && init.indexOf('findfs') < init.indexOf('mount -t squashfs'));
  for (const m of insmods) assert.equal(fs.readFileSync(path.join(root, m[1]!)).subarray(0, 4).toString('latin1'), '\x7fELF');
});

test('--image-on refuses what the capture could not mount: tmpfs, a relative path, the plain layout', { skip }, () => {
  const shm = fs.mkdtempSync('/dev/shm/lw-image-disk-');
  try {
    const r = initramfs(['--image-on', path.join(shm, 'capture.squashfs'), '-o', path.join(tmp, 'x.cpio')]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /EIMAGE_DISK: --image-on \S+: \/dev\/shm is tmpfs \(tmpfs\); the capture's \/init mounts only ext2, ext3, ext4, xfs, btrfs on a disk or partition/);
    assert.ok(!fs.existsSync(path.join(tmp, 'x.cpio')));
  } finally {
    fs.rmSync(shm, { recursive: true, force: true });
  }
  assert.throws(() => imageDiskOf('capture.squashfs'), /EIMAGE_DISK|absolute path/);
  const plain = initramfs(['--layout', 'plain', '--image-on', path.join(disk, 'x.squashfs'), '-o', path.join(tmp, 'y.cpio')]);
  assert.notEqual(plain.status, 0);
  assert.match(plain.stderr, /--image-on needs a read-only layout/);
});
