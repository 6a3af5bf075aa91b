// The squashfs layout's busybox /init when the image does not mount (here: its superblock magic
// damaged in the archive) or mounts without lastword in it: nothing in the initramfs can save the
// dump, so /init takes the failure action — the config's (failure_action poweroff), or
// lastword.failure_action= from the command line — instead of waiting in a shell nobody may watch.
// With the action shell, PID 1 must survive the shell's end. Real 6.1 kernel in QEMU; the kernel's
// own "reboot: Power down" / "reboot: Restarting system" tells which action ran, and "Attempted to
// kill init" would tell that PID 1 exited.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { kernelVersion, repo } from '../support/lab.ts';
import { Guest } from '../support/qemu.ts';

const kver = kernelVersion('6.1');
const skip = kver ? false : 'no Debian 6.1 kernel installed (.ci/setup installs it)';
let tmp = '';
let initrd = '';
let noExecutable = '';

before(() => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-image-mount-'));
  const conf = path.join(tmp, 'kdump.conf');
  fs.writeFileSync(conf, 'ext4 LABEL=crash\nfailure_action poweroff\n');
  initrd = path.join(tmp, 'initrd.cpio');
  // The executable in the image does not matter (it is never reached): a small ELF keeps the build short.
  const r = spawnSync(process.execPath, [path.join(repo, 'runtime', 'main.ts'), 'initramfs', '--kernel', kver!, '--config', conf,
    '--layout', 'squashfs', '--executable', '/usr/bin/kmod', '--compress', 'none', '-o', initrd], { encoding: 'utf8', env: { ...process.env, LASTWORD_IMAGE_CACHE: '' } });
  assert.equal(r.status, 0, r.stderr);
  // Damage the squashfs superblock's magic ("hsqs") inside the uncompressed archive.
  const cpio = fs.readFileSync(initrd);
  const name = cpio.indexOf('usr/lib/lastword/lastword.squashfs\0');
  assert.ok(name > 0, 'the image is in the archive');
  const magic = cpio.indexOf('hsqs', name);
  assert.ok(magic > name && magic - name < 64, 'the squashfs superblock follows its cpio header');
  cpio.write('XXXX', magic, 'latin1');
  fs.writeFileSync(initrd, cpio);

  // A tree as the hooks get it (--into), whose image mounts but holds no lastword: the exec fails.
  const tree = path.join(tmp, 'tree');
  fs.mkdirSync(tree);
  const t = spawnSync(process.execPath, [path.join(repo, 'runtime', 'main.ts'), 'initramfs', '--kernel', kver!, '--config', conf,
    '--layout', 'squashfs', '--executable', '/usr/bin/kmod', '--into', tree], { encoding: 'utf8', env: { ...process.env, LASTWORD_IMAGE_CACHE: '' } });
  assert.equal(t.status, 0, t.stderr);
  const empty = path.join(tmp, 'empty');
  fs.mkdirSync(empty);
  fs.writeFileSync(path.join(empty, 'README'), 'not lastword\n');
  const image = path.join(tree, 'usr/lib/lastword/lastword.squashfs');
  assert.ok(fs.existsSync(image), 'the tree has the image');
  fs.rmSync(image);
  const sq = spawnSync('mksquashfs', [empty, image, '-comp', 'zstd', '-quiet', '-no-progress'], { encoding: 'utf8' });
  assert.equal(sq.status, 0, sq.stderr);
  noExecutable = path.join(tmp, 'no-executable.cpio');
  const pack = spawnSync('sh', ['-c', `cd "$0" && find . | cpio -o -H newc --quiet > "$1"`, tree, noExecutable], { encoding: 'utf8' });
  assert.equal(pack.status, 0, pack.stderr);
});
after(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

function guest(name: string, extra: string, image = initrd): Guest {
  return new Guest({
    kernel: `/boot/vmlinuz-${kver}`, initrd: image, memMiB: 256, smp: 1,
    append: `console=ttyS0 panic=-1 rootfstype=ramfs ${extra}`.trim(),
    logFile: path.join(tmp, `${name}.log`),
  });
}

async function boot(name: string, extra: string, image = initrd): Promise<{ code: number | null; con: string; tail: string }> {
  const g = guest(name, extra, image);
  try {
    const code = await g.waitExit(240_000);
    return { code, con: g.console, tail: g.tail() };
  } finally {
    g.kill();
  }
}

describe('squashfs /init when the image cannot be mounted', { skip }, () => {
  it("takes the config's failure action (poweroff) instead of a shell", { timeout: 300_000 }, async () => {
    const g = await boot('config', '');
    assert.match(g.con, /lastword: cannot mount \/usr\/lib\/lastword\/lastword\.squashfs \(squashfs\): lastword cannot run, no dump is saved; failure action poweroff/, g.tail);
    assert.match(g.con, /reboot: Power down/, g.tail);
    assert.doesNotMatch(g.con, /Kernel panic|Attempted to kill init/, g.tail);
    assert.equal(g.code, 0, 'QEMU ended by itself');
  });

  it('lastword.failure_action= on the command line overrides it (reboot)', { timeout: 300_000 }, async () => {
    const g = await boot('cmdline', 'lastword.failure_action=reboot');
    assert.match(g.con, /failure action reboot/, g.tail);
    assert.match(g.con, /reboot: Restarting system/, g.tail);
    assert.doesNotMatch(g.con, /Kernel panic|Attempted to kill init|reboot: Power down/, g.tail);
  });

  it('with the action shell, PID 1 starts the shell again when it ends', { timeout: 300_000 }, async () => {
    const g = guest('shell', 'lastword.failure_action=shell');
    try {
      await g.waitFor(/failure action shell/, 240_000);
      await g.waitFor(/built-in shell \(ash\)/, 60_000);
      const from = g.console.length;
      await new Promise((res) => setTimeout(res, 2000)); // the prompt is up
      g.type('exit\n');
      await g.waitFor(/lastword: the shell ended; PID 1 starts another/, 60_000, from);
      await g.waitFor(/built-in shell \(ash\)/, 60_000, from);
      await new Promise((res) => setTimeout(res, 2000));
      g.type('/usr/bin/busybox poweroff -f\n');
      const code = await g.waitExit(120_000);
      assert.match(g.console, /reboot: Power down/, g.tail());
      assert.doesNotMatch(g.console, /Kernel panic|Attempted to kill init/, g.tail());
      assert.equal(code, 0, 'QEMU ended by itself');
    } finally {
      g.kill();
    }
  });

  it('an image without lastword in it: the failed exec takes the failure action, PID 1 does not exit', { timeout: 300_000 }, async () => {
    const g = await boot('no-executable', '', noExecutable);
    assert.match(g.con, /lastword: cannot execute \/usr\/lib\/lastword\/ro\/lastword: lastword cannot run, no dump is saved; failure action poweroff/, g.tail);
    assert.match(g.con, /reboot: Power down/, g.tail);
    assert.doesNotMatch(g.con, /Kernel panic|Attempted to kill init/, g.tail);
    assert.equal(g.code, 0, 'QEMU ended by itself');
  });
});
