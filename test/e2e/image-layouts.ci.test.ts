// lastword's own capture image in each read-only layout, booted in QEMU: before the mount only
// the static busybox runs (it insmods loop and the filesystem module, erofs with its crc32c
// dependencies, in the order the builder worked out); every program and library then comes from
// the mounted image. Here the image's "lastword" is ls, a dynamically linked program whose
// libraries the builder moved into the image with the rest: its listing of the mounted image on
// the console (kernel arguments after -- reach it) shows the modules loaded, the image mounted and
// the dynamic loader and libraries found through the symlinks rootfs keeps. Real 6.1 kernel.
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

before(() => { if (!skip) tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-image-layouts-')); });
after(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

describe("lastword's own image mounts and runs from each read-only layout", { skip }, () => {
  for (const layout of ['squashfs', 'erofs']) {
    it(`${layout}: busybox insmod, the mount, and a dynamically linked program from the image`, { timeout: 300_000 }, async () => {
      const conf = path.join(tmp, 'kdump.conf');
      fs.writeFileSync(conf, 'ext4 LABEL=crash\n');
      const initrd = path.join(tmp, `${layout}.cpio`);
      const r = spawnSync(process.execPath, [path.join(repo, 'runtime', 'main.ts'), 'initramfs', '--kernel', kver!, '--config', conf,
        '--layout', layout, '--executable', '/usr/bin/ls', '--compress', 'none', '-o', initrd], { encoding: 'utf8', env: { ...process.env, LASTWORD_IMAGE_CACHE: '' } });
      assert.equal(r.status, 0, r.stderr);
      const g = new Guest({
        kernel: `/boot/vmlinuz-${kver}`, initrd, memMiB: 256, smp: 1,
        append: 'console=ttyS0 panic=-1 rootfstype=ramfs -- -1 /usr/lib/lastword/ro/usr/bin /usr/lib/lastword/ro/usr/lib/x86_64-linux-gnu',
        logFile: path.join(tmp, `${layout}.log`),
      });
      try {
        await g.waitExit(240_000);      // ls ends, PID 1 with it: the kernel panics and QEMU stops
        const con = g.console;
        // crc32c has two implementations; the SSE4.2 one finds no such CPU under TCG (ENODEV), as modprobe's would.
        assert.doesNotMatch(con, /insmod: can't insert '\S*\/(loop|squashfs|erofs|libcrc32c|crc32c_generic)\.ko'|cannot mount|lastword cannot run/, g.tail());
        // ls's own listing of the image: kmod, and libc, which ls itself runs on.
        assert.match(con, /^kmod\r?$/m, g.tail());
        assert.match(con, /^libc\.so\.6\r?$/m, g.tail());
        assert.match(con, /Attempted to kill init/, g.tail());
      } finally {
        g.kill();
      }
    });
  }
});
