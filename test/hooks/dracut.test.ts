// The real dracut (Debian's dracut-core) with hooks/dracut/99lastword, called as kdumpctl calls it
// (IN_KDUMP=1, --aggressive-strip as mkdumprd passes it: a stripped lastword executable would
// segfault, so the module turns stripping off), and the image it writes opened with the real lsinitrd.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { kernelVersion } from '../support/lab.ts';
import { dracutBasedir, lastwordCommand, listTree, shippedExecutable, standInExecutable } from './support.ts';

const kver = kernelVersion('6.1');
const haveDracut = fs.existsSync('/usr/lib/dracut/modules.d') && spawnSync('sh', ['-c', 'command -v dracut lsinitrd']).status === 0;
const skip = !kver ? 'no Debian 6.1 kernel (bash .ci/setup)' : !haveDracut ? 'dracut-core is not installed (bash .ci/setup)' : false;
let tmp = '';
let basedir = '';

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-dracut-test-'));
  // dracut's own tree with our module added, so nothing is installed on the machine.
  basedir = path.join(tmp, 'dracut');
  if (skip) return;
  dracutBasedir(basedir);
});
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

function dracut(env: Record<string, string>, out: string) {
  return spawnSync('dracut', ['--force', '--no-hostonly', '--aggressive-strip', '-m', 'lastword', '--no-early-microcode', '--kver', kver!, out], {
    encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin', dracutbasedir: basedir, TMPDIR: tmp, ...env },
  });
}

test('dracut, as kdumpctl runs it (IN_KDUMP=1), builds a capture image whose /init is lastword, with the target modules minus the blacklist', { skip }, () => {
  const exe = standInExecutable(tmp);
  const conf = path.join(tmp, 'kdump.conf');
  fs.writeFileSync(conf, 'xfs LABEL=crash\nblacklist virtio_scsi\nfailure_action shell\n');
  const out = path.join(tmp, 'initramfs-kdump.img');
  const r = dracut({ IN_KDUMP: '1', LASTWORD: lastwordCommand(tmp), LASTWORD_INITRAMFS_ARGS: `--config ${conf} --executable ${exe}` }, out);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr + r.stdout, /left out module virtio_scsi: blacklisted/);
  const listing = spawnSync('lsinitrd', [out], { encoding: 'utf8' }).stdout;
  assert.match(listing, / etc\/kdump\.conf\n/);
  const dir = path.join(tmp, 'unpacked');
  fs.mkdirSync(dir);
  const u = spawnSync('lsinitrd', ['--unpack', out], { cwd: dir, encoding: 'utf8' });
  assert.equal(u.status, 0, u.stderr);
  const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
  // squashfs, the default layout: /init mounts the image, which holds the executable
  assert.match(fs.readFileSync(path.join(dir, 'init'), 'utf8'), /^#!\/usr\/bin\/busybox sh\n[\s\S]*mount -t squashfs -o ro,loop \/usr\/lib\/lastword\/lastword\.squashfs /);
  assert.equal(sha(shippedExecutable(dir, tmp)), sha(exe));
  assert.equal(fs.readFileSync(path.join(dir, 'etc', 'kdump.conf'), 'utf8'), fs.readFileSync(conf, 'utf8'));
  const files = listTree(dir);
  assert.ok(files.some((f) => f.endsWith('/xfs.ko')), 'xfs.ko for the target');
  assert.ok(files.some((f) => f.endsWith('/virtio_blk.ko')), 'a storage driver');
  assert.ok(!files.some((f) => f.endsWith('/virtio_scsi.ko')), 'blacklisted virtio_scsi absent');
  assert.ok(files.includes('usr/bin/busybox'));
  // dracut's depmod ran over the tree: modprobe resolves xfs inside it
  const dep = spawnSync('modprobe', ['-d', dir, '-S', kver!, '--show-depends', 'xfs'], { encoding: 'utf8' });
  assert.equal(dep.status, 0, dep.stderr);
});

test('without IN_KDUMP the lastword module refuses, so it never enters a normal boot image', { skip }, () => {
  const out = path.join(tmp, 'normal.img');
  const r = dracut({ LASTWORD: lastwordCommand(tmp) }, out);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr + r.stdout, /module 'lastword' cannot be found or installed/);
  assert.ok(!fs.existsSync(out));
});
