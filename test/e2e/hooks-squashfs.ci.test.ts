// E2E, the generators' hooks with the squashfs layout: the capture initramfs is built by the real
// dracut (Debian's dracut-core, hooks/dracut/99lastword, IN_KDUMP=1 and --aggressive-strip as
// kdumpctl runs it) or the real mkinitramfs (initramfs-tools-core with lastword's confdir, as
// kdump-tools runs it), so the tree they pack holds lastword's squashfs image and the busybox /init
// that mounts it. The guest really panics, that image's lastword saves the dump to an ext4 disk,
// crash opens it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { crashBinary, debugVmlinux } from '../support/lab.ts';
import { extractExt4Tree } from '../support/qemu.ts';
import { dracutBasedir, lastwordConfdir } from '../hooks/support.ts';
import {
  CAPTURE_APPEND, classifyDumpFiles, crashReport, e2eDir, finalAction, INIT_DIED, kver61, lastwordExe,
  missingPrerequisite, runCycle,
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

/** Boots the cycle with `image` as the capture initramfs and checks the dump with crash. */
async function captureWith(base: string, name: string, conf: string, label: string, image: string): Promise<void> {
  const run = await runCycle({ name, baseDir: base, kdumpConf: conf, sysconfig, captureInitrd: image, disks: [{ name: 'dump', sizeMiB: 1024, ext4Label: label }] });
  const tail = run.guest.tail(60);
  assert.ok(run.capture, `the capture kernel never booted:\n${tail}`);
  assert.doesNotMatch(run.capture, INIT_DIED, `PID 1 died in the capture kernel:\n${tail}`);
  assert.doesNotMatch(run.capture, /cannot mount \/usr\/lib\/lastword\/lastword\.squashfs/, tail);
  assert.equal(finalAction(run.capture), 'poweroff', `final_action poweroff was not taken:\n${tail}`);
  const files = extractExt4Tree(run.prepared.disks.dump!, path.join(base, 'tree')).filter((f) => !f.includes('lost+found'));
  const dump = classifyDumpFiles(files);
  assert.ok(dump.vmcore, `no finished vmcore on the disk:\n${tail}`);
  const report = crashReport(crashBinary(), debugVmlinux(run.prepared.kver), dump.vmcore);
  assert.ok(report.ok, `crash could not open the dump:\n${report.output.slice(-3000)}`);
  assert.match(report.output, /LASTWORD-E2E-MARKER primary workload/, 'crash `log` lacks the primary kernel\'s marker');
}

test('a dracut-built capture image with lastword in a squashfs saves a dump crash opens', { skip, timeout: 900_000 }, async (t) => {
  const base = e2eDir(t, 'dracut');
  const kver = kver61();
  const conf = kdumpConf('LWDRACUT');
  const root = guestRoot(base, conf);
  // dracut's tree with our module added, so nothing is installed on the machine
  const basedir = dracutBasedir(path.join(base, 'dracut'));
  const image = path.join(base, `initramfs-${kver}kdump.img`);
  const d = spawnSync('dracut', ['--force', '--no-hostonly', '--aggressive-strip', '-m', 'lastword', '--no-early-microcode', '--kver', kver, image], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin', dracutbasedir: basedir, TMPDIR: base, IN_KDUMP: '1', LASTWORD: lastwordExe, LASTWORD_INITRAMFS_ARGS: `--root ${root}` },
  });
  assert.equal(d.status, 0, d.stderr);
  const listing = spawnSync('lsinitrd', [image], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout;
  assert.match(listing, /usr\/lib\/lastword\/lastword\.squashfs\n/, 'the squashfs image is in the dracut image');
  assert.doesNotMatch(listing, / usr\/lib\/lastword\/ro\/lastword\n/, 'the executable is not in rootfs');

  await captureWith(base, 'dracut', conf, 'LWDRACUT', image);
});

test('an mkinitramfs-built capture image (lastword confdir, as kdump-tools runs it) with lastword in a squashfs saves a dump crash opens', { skip: skipMk, timeout: 900_000 }, async (t) => {
  const base = e2eDir(t, 'mkinitramfs');
  const kver = kver61();
  const conf = kdumpConf('LWMKINITRD');
  const root = guestRoot(base, conf);
  // lastword's confdir as an admin installs it: conf/ plus the hook in hooks/
  const confdir = lastwordConfdir(path.join(base, 'confdir'), `LASTWORD=${lastwordExe}\nLASTWORD_INITRAMFS_ARGS="--root ${root}"\n`);
  const image = path.join(base, `initrd.img-${kver}`);
  const m = spawnSync('mkinitramfs', ['-d', confdir, '-o', image, kver], { encoding: 'utf8', env: { ...process.env, TMPDIR: base } });
  assert.equal(m.status, 0, m.stderr);
  const tree = path.join(base, 'unpacked');
  const u = spawnSync('unmkinitramfs', [image, tree], { encoding: 'utf8' });
  assert.equal(u.status, 0, u.stderr);
  assert.ok(fs.existsSync(path.join(tree, 'usr', 'lib', 'lastword', 'lastword.squashfs')), 'the squashfs image is in the mkinitramfs image');
  assert.match(fs.readFileSync(path.join(tree, 'init'), 'utf8'), /^#!\/usr\/bin\/busybox sh\n/);
  fs.rmSync(tree, { recursive: true, force: true });
  await captureWith(base, 'mkinitramfs', conf, 'LWMKINITRD', image);
});
