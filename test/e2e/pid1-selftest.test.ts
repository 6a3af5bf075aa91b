// lastword.selftest=1 as PID 1 of the 6.1 kernel: up, measured, and down again through reboot(2),
// with nothing else in the image. Not in CI (test/e2e/pid1.ci.test.ts covers PID 1 there); used for
// the README's figures: `npm run test:e2e -- pid1-selftest`, LASTWORD_QEMU_MEM=<MiB> to bisect
// the smallest guest memory.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { buildExecutable } from '../../initramfs/executable/build.ts';
import { VERSION } from '../../runtime/version.ts';
import { kernelVersion } from '../support/lab.ts';
import { Guest } from '../support/qemu.ts';
import { buildPid1Image } from './pid1-image.ts';

const kver = kernelVersion('6.1');
const skip = kver ? false : 'no Debian 6.1 kernel installed (.ci/setup installs it)';
const memMiB = Number(process.env.LASTWORD_QEMU_MEM ?? 512);
let tmp = '';
let executable = '';

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-pid1-selftest-'));
  executable = await buildExecutable({ out: path.join(tmp, 'lastword') });
});
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

describe('lastword as PID 1, selftest', { skip }, () => {
  it('boots the 6.1 kernel as PID 1, mounts proc/sys/devtmpfs, reports version and memory, and powers off via reboot(2)', { timeout: 300_000 }, async () => {
    const initrd = await buildPid1Image(executable, path.join(tmp, 'pid1.cpio.zst'), 'zstd', 3);
    const guest = new Guest({
      kernel: `/boot/vmlinuz-${kver}`, initrd, memMiB, smp: 1,
      // panic=-1 with -no-reboot: a panic ends QEMU at once, recognisable by its console line
      append: 'console=ttyS0 panic=-1 oops=panic lastword.selftest=1',
      logFile: path.join(tmp, 'console.log'),
    });
    try {
      const code = await guest.waitExit(240_000);
      const con = guest.console;
      assert.doesNotMatch(con, /Kernel panic|Attempted to kill init/, `the kernel panicked:\n${guest.tail()}`);
      const up = new RegExp(`lastword ${VERSION.replace(/\./g, '\\.')}: PID 1, mounted /proc /sys /dev /run /tmp; VmRSS \\d+ kB, RssAnon \\d+ kB, RssFile \\d+ kB`);
      assert.match(con, up, guest.tail());
      assert.match(con, /lastword selftest: ok; VmRSS (\d+) kB, RssAnon (\d+) kB, RssFile (\d+) kB/);
      assert.match(con, /lastword: final action poweroff[\s\S]*reboot: Power down/, guest.tail());
      assert.equal(code, 0, 'QEMU ended by itself after the power-off');
      const m = /lastword selftest: ok; VmRSS (\d+) kB, RssAnon (\d+) kB, RssFile (\d+) kB/.exec(con)!;
      process.stdout.write(`# PID 1 memory: VmRSS ${m[1]} kB, RssAnon ${m[2]} kB, RssFile ${m[3]} kB; initramfs ${fs.statSync(initrd).size} bytes, guest ${memMiB} MiB\n`);
    } finally {
      guest.kill();
    }
  });

});
