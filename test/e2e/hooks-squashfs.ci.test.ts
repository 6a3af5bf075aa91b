// E2E, the generators' hooks with the squashfs layout: the capture initramfs is built by the real
// dracut (Debian's dracut-core, hooks/dracut/99lastword, IN_KDUMP=1 and --aggressive-strip as
// kdumpctl runs it) or the real mkinitramfs (initramfs-tools-core with lastword's confdir, as
// kdump-tools runs it), so the tree they pack holds lastword's squashfs image and the busybox /init
// that mounts it. The guest really panics, that image's lastword saves the dump to an ext4 disk,
// crash opens it. With `--image-on` in LASTWORD_INITRAMFS_ARGS the image goes onto that ext4 disk
// instead, and the generator's tree holds only /init, which loads the disk's modules with the tree's
// own modprobe (an own image uses busybox insmod), mounts the disk by UUID and the image from it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { crashBinary, debugVmlinux } from '../support/lab.ts';
import { extractExt4Tree, makeDisk } from '../support/qemu.ts';
import { dracutBasedir, lastwordConfdir, listTree } from '../hooks/support.ts';
import {
  CAPTURE_APPEND, classifyDumpFiles, crashReport, e2eDir, finalAction, IMAGE_ON_DISK_PATH, INIT_DIED, kver61,
  lastwordExe, missingPrerequisite, runCycle,
} from './cycle.ts';

const haveDracut = fs.existsSync('/usr/lib/dracut/modules.d') && spawnSync('sh', ['-c', 'command -v dracut lsinitrd']).status === 0;
const skip = missingPrerequisite() ?? (haveDracut ? false : 'dracut-core is not installed (bash .ci/setup)');
const haveMkinitramfs = spawnSync('sh', ['-c', 'command -v mkinitramfs unmkinitramfs']).status === 0;
const skipMk = missingPrerequisite() ?? (haveMkinitramfs ? false : 'initramfs-tools-core is not installed (bash .ci/setup)');
const kdumpConf = (label: string) => `ext4 LABEL=${label}\npath /var/crash\ncore_collector makedumpfile -l --message-level 7 -d 31\nfinal_action poweroff\nfailure_action reboot\n`;
const sysconfig = `KDUMP_COMMANDLINE_APPEND="${CAPTURE_APPEND}"\n`;

/** The guest's configs, as the build reads them (--root). */
function guestRoot(base: string, conf: string): string {
  const root = path.join(base, 'root');
  fs.mkdirSync(path.join(root, 'etc', 'sysconfig'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc', 'kdump.conf'), conf);
  fs.writeFileSync(path.join(root, 'etc', 'sysconfig', 'kdump'), sysconfig);
  return root;
}

/** A case's name (the generator, and whether --image-on), work directory, kernel, kdump.conf for the disk labelled `label`, and guest root. */
function setUp(t: { after(fn: () => void): void }, generator: string, label: string, imageOn: boolean) {
  const name = imageOn ? `${generator}-image-on` : generator;
  const base = e2eDir(t, name);
  const conf = kdumpConf(label);
  return { name, base, kver: kver61(), conf, root: guestRoot(base, conf) };
}

/**
 * The dump disk, and with `imageOn` the builder's view of it: the disk loop-mounted while `build`
 * runs (the builder reads its UUID from the mount, as on a machine whose root disk it is) and the
 * --image-on argument for LASTWORD_INITRAMFS_ARGS. The guest gets a copy of the disk, UUID and image
 * included.
 */
function withDumpDisk(base: string, label: string, imageOn: boolean, build: (imageOnArgs: string) => void): string {
  const disk = makeDisk(path.join(base, 'dump-disk.img'), 1024, { ext4Label: label });
  if (!imageOn) { build(''); return disk; }
  const mnt = path.join(base, 'dump-disk');
  fs.mkdirSync(mnt);
  const m = spawnSync('mount', ['-o', 'loop', disk, mnt], { encoding: 'utf8' });
  assert.equal(m.status, 0, m.stderr);
  try {
    fs.mkdirSync(path.join(mnt, path.dirname(IMAGE_ON_DISK_PATH)), { recursive: true });
    build(` --image-on ${path.join(mnt, IMAGE_ON_DISK_PATH)}`);
  } finally {
    spawnSync('umount', [mnt]);
    fs.rmdirSync(mnt);
  }
  return disk;
}

/** What the generator's tree must hold (or not) in each case, given its file list and its /init. */
function checkTree(files: string, init: string, imageOn: boolean): void {
  assert.match(init, /^#!\/usr\/bin\/busybox sh\n/, 'lastword\'s /init is not the tree\'s /init');
  assert.doesNotMatch(files, /(^|\s|\/)usr\/lib\/lastword\/ro\/lastword\n/, 'the executable is in rootfs');
  if (!imageOn) {
    assert.match(files, /usr\/lib\/lastword\/lastword\.squashfs\n/, 'the squashfs image is not in the tree');
    return;
  }
  assert.doesNotMatch(files, /lastword\.squashfs|capture\.squashfs/, 'the image is in the tree as well as on the disk');
  // the tree's own kmod loads the disk's filesystem and drivers (no early busybox insmod in a tree)
  assert.match(init, /\/usr\/sbin\/modprobe -qa loop squashfs ext4 /, init);
  assert.match(init, /findfs UUID=[0-9a-f-]+ /, init);
  assert.match(init, new RegExp(`mount -t squashfs -o ro,loop /usr/lib/lastword/disk${IMAGE_ON_DISK_PATH.replace(/\./g, '\\.')} `), init);
  assert.match(files, /ext4\.ko/, 'ext4 is not in the tree');
}

/** Boots the cycle with `image` as the capture initramfs and `disk` as its dump disk, and checks the dump with crash. */
async function captureWith(base: string, name: string, conf: string, image: string, disk: string, imageOn: boolean): Promise<void> {
  const run = await runCycle({ name, baseDir: base, kdumpConf: conf, sysconfig, captureInitrd: image, disks: [{ name: 'dump', sizeMiB: 1024, image: disk }] });
  const tail = run.guest.tail(60);
  assert.ok(run.capture, `the capture kernel never booted:\n${tail}`);
  assert.doesNotMatch(run.capture, INIT_DIED, `PID 1 died in the capture kernel:\n${tail}`);
  assert.doesNotMatch(run.capture, /lastword cannot run/, tail);
  if (imageOn) assert.match(run.capture, /is mounted read-only on \/usr\/lib\/lastword\/disk \(the image lastword runs from\); remounting it read-write for the dump/, tail);
  assert.equal(finalAction(run.capture), 'poweroff', `final_action poweroff was not taken:\n${tail}`);
  const files = extractExt4Tree(run.prepared.disks.dump!, path.join(base, 'tree')).filter((f) => !f.includes('lost+found'));
  const dump = classifyDumpFiles(files);
  assert.ok(dump.vmcore, `no finished vmcore on the disk:\n${tail}`);
  assert.equal(dump.incomplete, undefined, 'a vmcore-incomplete was left next to the finished dump');
  const report = crashReport(crashBinary(), debugVmlinux(run.prepared.kver), dump.vmcore);
  assert.ok(report.ok, `crash could not open the dump:\n${report.output.slice(-3000)}`);
  assert.match(report.output, /LASTWORD-E2E-MARKER primary workload/, 'crash `log` lacks the primary kernel\'s marker');
}

for (const imageOn of [false, true]) {
  const where = imageOn ? 'with its image on the dump disk (--image-on)' : 'with lastword in a squashfs';
  test(`a dracut-built capture image ${where} saves a dump crash opens`, { skip, timeout: 900_000 }, async (t) => {
    const label = imageOn ? 'LWDRACUTON' : 'LWDRACUT';
    const { name, base, kver, conf, root } = setUp(t, 'dracut', label, imageOn);
    // dracut's tree with our module added, so nothing is installed on the machine
    const basedir = dracutBasedir(path.join(base, 'dracut'));
    const image = path.join(base, `initramfs-${kver}kdump.img`);
    const disk = withDumpDisk(base, label, imageOn, (imageOnArgs) => {
      const d = spawnSync('dracut', ['--force', '--no-hostonly', '--aggressive-strip', '-m', 'lastword', '--no-early-microcode', '--kver', kver, image], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin', dracutbasedir: basedir, TMPDIR: base, IN_KDUMP: '1', LASTWORD: lastwordExe, LASTWORD_INITRAMFS_ARGS: `--root ${root}${imageOnArgs}` },
      });
      assert.equal(d.status, 0, d.stderr);
    });
    const listing = spawnSync('lsinitrd', [image], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout;
    const init = spawnSync('lsinitrd', ['-f', 'init', image], { encoding: 'utf8', maxBuffer: 16 << 20 }).stdout;
    checkTree(listing, init, imageOn);
    await captureWith(base, name, conf, image, disk, imageOn);
  });

  test(`an mkinitramfs-built capture image (lastword confdir, as kdump-tools runs it) ${where} saves a dump crash opens`, { skip: skipMk, timeout: 900_000 }, async (t) => {
    const label = imageOn ? 'LWMKINITON' : 'LWMKINITRD';
    const { name, base, kver, conf, root } = setUp(t, 'mkinitramfs', label, imageOn);
    const image = path.join(base, `initrd.img-${kver}`);
    const disk = withDumpDisk(base, label, imageOn, (imageOnArgs) => {
      // lastword's confdir as an admin installs it: conf/ plus the hook in hooks/
      const confdir = lastwordConfdir(path.join(base, 'confdir'), `LASTWORD=${lastwordExe}\nLASTWORD_INITRAMFS_ARGS="--root ${root}${imageOnArgs}"\n`);
      const m = spawnSync('mkinitramfs', ['-d', confdir, '-o', image, kver], { encoding: 'utf8', env: { ...process.env, TMPDIR: base } });
      assert.equal(m.status, 0, m.stderr);
    });
    const tree = path.join(base, 'unpacked');
    const u = spawnSync('unmkinitramfs', [image, tree], { encoding: 'utf8' });
    assert.equal(u.status, 0, u.stderr);
    const listing = listTree(tree).join('\n') + '\n';
    checkTree(listing, fs.readFileSync(path.join(tree, 'init'), 'utf8'), imageOn);
    fs.rmSync(tree, { recursive: true, force: true });
    await captureWith(base, name, conf, image, disk, imageOn);
  });
}
