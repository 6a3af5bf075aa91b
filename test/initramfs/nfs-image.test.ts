// The capture image of an NFS target, built by `lastword initramfs` and unpacked with cpio: it
// carries Debian's mount.nfs with every library ldd names, libtirpc's /etc/netconfig, the NFS
// client modules (minus the blacklisted ones), and mount.nfs really runs in a chroot of the tree.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { kernelVersion, repo } from '../support/lab.ts';
import { mountImage } from './read-only-image.ts';

const kver = kernelVersion('6.1');
const mountNfs = '/usr/sbin/mount.nfs';
const skip = !kver ? 'no Debian 6.1 kernel (bash .ci/setup)' : !fs.existsSync(mountNfs) ? 'mount.nfs is missing (nfs-common; bash .ci/setup)' : false;
// What is shipped as lastword does not matter here: a small ELF keeps the build fast.
const small = '/usr/bin/kmod';
let tmp = '';

before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-nfs-image-')); });
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

function lastword(args: string[]) {
  return spawnSync(process.execPath, [path.join(repo, 'runtime', 'main.ts'), ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
}

function buildAndUnpack(name: string, conf: string, extra: string[] = []): { root: string; stderr: string } {
  const confFile = path.join(tmp, `${name}.conf`);
  fs.writeFileSync(confFile, conf);
  const image = path.join(tmp, `${name}.img`);
  const r = lastword(['initramfs', '--kernel', kver!, '--config', confFile, '--executable', small, '--compress', 'none', ...extra, '-o', image]);
  assert.equal(r.status, 0, r.stderr);
  const root = path.join(tmp, name);
  fs.mkdirSync(root);
  const u = spawnSync('sh', ['-c', `cpio -idm --quiet < '${image}'`], { cwd: root, encoding: 'utf8' });
  assert.equal(u.status, 0, u.stderr);
  mountImage(root);
  return { root, stderr: r.stderr };
}

const kos = (root: string) => spawnSync('find', ['.', '-name', '*.ko*'], { cwd: root, encoding: 'utf8' }).stdout;

test('an NFS target ships mount.nfs with its libraries, netconfig and the NFS client modules; mount.nfs runs in the tree', { skip }, () => {
  const { root } = buildAndUnpack('nfs', 'nfs 10.0.2.1:/srv/crash\npath /var/crash\n');
  const at = path.join(root, 'usr', 'sbin', 'mount.nfs');
  assert.ok(fs.statSync(at).isFile());      // in the read-only image, a symlink to it at its path
  assert.equal(fs.readlinkSync(path.join(root, 'usr', 'sbin', 'mount.nfs4')), 'mount.nfs');
  // ldd (an independent reference for the DT_NEEDED resolver): every library it names is there
  const ldd = spawnSync('ldd', [mountNfs], { encoding: 'utf8' }).stdout;
  const libs = [...ldd.matchAll(/(\/\S+\.so[.\d]*)/g)].map((m) => m[1]!);
  assert.ok(libs.some((l) => l.includes('libtirpc.so')), ldd);
  for (const lib of libs) assert.ok(fs.existsSync(path.join(root, lib)), `${lib} in the image`);
  assert.equal(fs.readFileSync(path.join(root, 'etc', 'netconfig'), 'utf8'), fs.readFileSync('/etc/netconfig', 'utf8'));
  assert.equal(fs.readlinkSync(path.join(root, 'etc', 'mtab')), '../proc/self/mounts');
  // the image's own loader and libraries run it: nothing is taken from the host
  const v = spawnSync('chroot', [root, '/usr/sbin/mount.nfs', '-V'], { encoding: 'utf8' });
  assert.equal(v.status, 0, v.stderr);
  assert.match(v.stdout + v.stderr, /mount\.nfs: \(linux nfs-utils [\d.]+\)/);
  const names = kos(root);
  for (const m of ['nfs', 'nfsv3', 'nfsv4', 'sunrpc', 'lockd', 'grace', 'dns_resolver', 'virtio_net']) assert.match(names, new RegExp(`/${m}\\.ko`), `${m}.ko in the image`);
  // and modprobe resolves the NFSv4 client in the unpacked tree
  const dep = spawnSync('modprobe', ['-d', root, '-S', kver!, '--show-depends', 'nfsv4'], { encoding: 'utf8' });
  assert.equal(dep.status, 0, dep.stderr);
  assert.match(dep.stdout, /insmod \S+\/sunrpc\.ko/);
});

test('a blacklisted NFS module is left out, with what needs it; the rest of the NFS client ships', { skip }, () => {
  const { root, stderr } = buildAndUnpack('nfs-black', 'nfs 10.0.2.1:/srv/crash\nblacklist nfsv3\n');
  assert.match(stderr, /left out module nfsv3: blacklisted/);
  const names = kos(root);
  assert.doesNotMatch(names, /\/nfsv3\.ko/);
  assert.match(names, /\/nfsv4\.ko/);
  assert.match(fs.readFileSync(path.join(root, 'etc', 'modprobe.d', 'lastword-blacklist.conf'), 'utf8'), /^blacklist nfsv3$/m);
});

test('without mount.nfs the build of an NFS image stops and says what to install', { skip }, () => {
  const confFile = path.join(tmp, 'nomount.conf');
  fs.writeFileSync(confFile, 'nfs 10.0.2.1:/srv/crash\n');
  const r = lastword(['initramfs', '--kernel', kver!, '--config', confFile, '--executable', small, '--mount-nfs', path.join(tmp, 'no-such-mount.nfs'), '-o', path.join(tmp, 'nomount.img')]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /EIMAGE_MOUNT_NFS: \S+no-such-mount\.nfs does not exist: .*install nfs-common/);
  assert.ok(!fs.existsSync(path.join(tmp, 'nomount.img')));
});

test('other targets do not carry mount.nfs', { skip }, () => {
  const { root } = buildAndUnpack('ext4', 'ext4 LABEL=crash\n');
  assert.ok(!fs.existsSync(path.join(root, 'usr', 'sbin', 'mount.nfs')));
});
