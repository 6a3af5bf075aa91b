// The squashfs layout's busybox /init when the image does not mount (here: its superblock magic
// damaged in the archive): nothing in the initramfs can save the dump, so /init takes the failure
// action — the config's (failure_action poweroff), or lastword.failure_action= from the command
// line — instead of waiting in a shell nobody may watch. Real 6.1 kernel in QEMU; the kernel's own
// "reboot: Power down" / "reboot: Restarting system" tells which action ran.
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
});
after(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

async function boot(name: string, extra: string): Promise<{ code: number | null; con: string; tail: string }> {
  const guest = new Guest({
    kernel: `/boot/vmlinuz-${kver}`, initrd, memMiB: 256, smp: 1,
    append: `console=ttyS0 panic=-1 rootfstype=ramfs ${extra}`.trim(),
    logFile: path.join(tmp, `${name}.log`),
  });
  try {
    const code = await guest.waitExit(240_000);
    return { code, con: guest.console, tail: guest.tail() };
  } finally {
    guest.kill();
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
});
