// The real mkinitramfs (Debian's initramfs-tools-core) run the way kdump-tools runs it, with a
// private confdir (`mkinitramfs -d <confdir>`) holding hooks/initramfs-tools, and the image opened
// with the real unmkinitramfs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { kernelVersion } from '../support/lab.ts';
import { lastwordCommand, lastwordConfdir, listTree, shippedExecutable, standInExecutable } from './support.ts';

const kver = kernelVersion('6.1');
const haveTools = spawnSync('sh', ['-c', 'command -v mkinitramfs unmkinitramfs']).status === 0;
const skip = !kver ? 'no Debian 6.1 kernel (bash .ci/setup)' : !haveTools ? 'initramfs-tools-core is not installed (bash .ci/setup)' : false;
let tmp = '';
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-mkinitramfs-test-')); });
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

/** lastword's confdir as an admin installs it, under this test's directory. */
const confdir = (name: string, lastwordConf?: string): string => lastwordConfdir(path.join(tmp, name), lastwordConf);

function mkinitramfs(conf: string, out: string) {
  return spawnSync('mkinitramfs', ['-d', conf, '-o', out, kver!], { encoding: 'utf8', env: { ...process.env, TMPDIR: tmp } });
}

function unpack(image: string, name: string): string {
  const dir = path.join(tmp, name);
  const r = spawnSync('unmkinitramfs', [image, dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return dir;
}

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

test('mkinitramfs -d <lastword confdir> builds an image whose /init is lastword, with the Debian config and the modules the target needs', { skip }, () => {
  const exe = standInExecutable(tmp);
  const kdumpTools = path.join(tmp, 'kdump-tools');
  fs.writeFileSync(kdumpTools, 'USE_KDUMP=1\nKDUMP_COREDIR="/var/crash"\nMAKEDUMP_ARGS="-c -d 31"\nKDUMP_NUM_DUMPS=3\n');
  const conf = confdir('confdir', `LASTWORD=${lastwordCommand(tmp)}\nLASTWORD_INITRAMFS_ARGS="--config ${kdumpTools} --executable ${exe}"\n`);
  const out = path.join(tmp, 'initrd.img');
  const r = mkinitramfs(conf, out);
  assert.equal(r.status, 0, r.stderr);
  const root = unpack(out, 'unpacked');
  // squashfs, the default layout: /init mounts the image, which holds the executable
  assert.match(fs.readFileSync(path.join(root, 'init'), 'utf8'), /^#!\/usr\/bin\/busybox sh\n[\s\S]*mount -t squashfs -o ro,loop \/usr\/lib\/lastword\/lastword\.squashfs /);
  assert.equal(sha(shippedExecutable(root, tmp)), sha(exe));
  assert.equal(fs.readFileSync(path.join(root, 'etc', 'default', 'kdump-tools'), 'utf8'), fs.readFileSync(kdumpTools, 'utf8'));
  const files = listTree(root);
  assert.ok(files.some((f) => f.endsWith('/virtio_blk.ko')), 'storage driver for the root target');
  assert.ok(files.some((f) => f.endsWith('/ext4.ko')), 'root filesystem module');
  assert.ok(files.includes('usr/bin/busybox'));
  const dep = spawnSync('modprobe', ['-d', root, '-S', kver!, '--show-depends', 'ext4'], { encoding: 'utf8' });
  assert.equal(dep.status, 0, dep.stderr);
});

test('a module another hook or the confdir modules list adds is removed when the config blacklists it', { skip }, () => {
  const exe = standInExecutable(tmp);
  const kdumpConf = path.join(tmp, 'kdump.conf');
  fs.writeFileSync(kdumpConf, 'ext4 LABEL=crash\nblacklist virtio_scsi\n');
  const conf = confdir('confdir-bl', `LASTWORD=${lastwordCommand(tmp)}\nLASTWORD_INITRAMFS_ARGS="--config ${kdumpConf} --executable ${exe}"\n`);
  fs.writeFileSync(path.join(conf, 'modules'), 'virtio_scsi\n');
  const out = path.join(tmp, 'initrd-bl.img');
  const r = mkinitramfs(conf, out);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /removed blacklisted \S*virtio_scsi\.ko/);
  const files = listTree(unpack(out, 'unpacked-bl'));
  assert.ok(!files.some((f) => f.endsWith('/virtio_scsi.ko')), 'virtio_scsi absent');
});

test('the hook does nothing for a confdir that is not lastword\'s (no lastword.conf): the normal image keeps its own /init', { skip }, () => {
  const conf = confdir('other');
  const out = path.join(tmp, 'normal.img');
  const r = mkinitramfs(conf, out);
  assert.equal(r.status, 0, r.stderr);
  const root = unpack(out, 'unpacked-normal');
  assert.equal(sha(path.join(root, 'init')), sha('/usr/share/initramfs-tools/init'));
  assert.ok(!fs.existsSync(path.join(root, 'usr', 'bin', 'lastword')));
});
