// The PID-1 proof: Debian's 6.1 kernel in QEMU boots an initramfs whose /init is lastword (built
// for this test from the tree); as PID 1 it mounts proc/sys/devtmpfs, prints its version and
// memory on the serial console, supervises the capture child, runs the rescue shell, and powers
// the guest off through reboot(2). A panic (an init that exits or aborts) would show "Kernel
// panic" and never "reboot: Power down". The selftest boot is test/e2e/pid1-selftest.test.ts.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { buildExecutable } from '../../initramfs/executable/build.ts';
import { VERSION } from '../../runtime/version.ts';
import { kernelVersion } from '../support/lab.ts';
import { Guest } from '../support/qemu.ts';
import { writeCpioFile } from '../../initramfs/cpio.ts';
import { pid1Entries } from './pid1-image.ts';

const kver = kernelVersion('6.1');
const skip = kver ? false : 'no Debian 6.1 kernel installed (.ci/setup installs it)';
let tmp = '';
let executable = '';
let again = '';

const sha256 = (file: string): string => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-pid1-e2e-'));
  executable = await buildExecutable({ out: path.join(tmp, 'lastword') });
  // built right away, so that other work on the tree cannot slip in between the two
  again = await buildExecutable({ out: path.join(tmp, 'lastword-again') });
});
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

describe('lastword as PID 1', { skip }, () => {
  it('supervises the capture child, gives the rescue shell the console as controlling tty, offers it again, and powers off on busybox poweroff', { timeout: 300_000 }, async () => {
    // no /proc/vmcore here (a first kernel): the capture fails, and lastword.failure_action=shell applies
    const entries = pid1Entries(executable);
    entries.push({ type: 'dir', path: 'bin' }, { type: 'file', path: 'bin/busybox', source: '/bin/busybox', mode: 0o755 });
    const initrd = path.join(tmp, 'shell.cpio.zst');
    await writeCpioFile(entries, initrd, { compression: 'zstd', level: 3 });
    const guest = new Guest({
      kernel: `/boot/vmlinuz-${kver}`, initrd, memMiB: 512, smp: 1,
      append: 'console=ttyS0 panic=-1 oops=panic lastword.failure_action=shell',
      logFile: path.join(tmp, 'shell-console.log'),
    });
    try {
      const up = new RegExp(`lastword ${VERSION.replace(/\./g, '\\.')}: PID 1, mounted /proc /sys /dev /run /tmp; VmRSS (\\d+) kB, RssAnon (\\d+) kB, RssFile (\\d+) kB`);
      const m = await guest.waitFor(up, 240_000);
      process.stdout.write(`# PID 1 memory at start: VmRSS ${m[1]} kB, RssAnon ${m[2]} kB, RssFile ${m[3]} kB\n`);
      await guest.waitFor(/lastword: capture: \/init save --capture/, 30_000);
      await guest.waitFor(/lastword: capture (failed|ended)[^\n]*\n[\s\S]*lastword: rescue shell[\s\S]*\/ # /, 60_000);
      // tty_nr (field 7 of /proc/<pid>/stat) is the shell's controlling terminal: ttyS0 = 4:64 = 1088
      guest.type('echo LW-$((6*7)) TTYNR=$(busybox cut -d" " -f7 /proc/$$/stat)\n');
      await guest.waitFor(/LW-42 TTYNR=1088/, 30_000);
      let from = guest.console.length;
      guest.type('exit\n');
      await guest.waitFor(/lastword: shell exited \(0\)[\s\S]*lastword: rescue shell[\s\S]*\/ # /, 30_000, from);
      from = guest.console.length;
      // without -f, busybox poweroff asks init with SIGUSR2
      guest.type('busybox poweroff\n');
      const code = await guest.waitExit(60_000);
      const tail = guest.console.slice(from);
      assert.match(tail, /lastword: final action poweroff[\s\S]*reboot: Power down/, guest.tail());
      assert.doesNotMatch(guest.console, /Kernel panic|Attempted to kill init/, guest.tail());
      assert.equal(code, 0);
    } finally {
      guest.kill();
    }
  });

  it('builds the same executable twice from the same tree, in different scratch directories (reproducible sha256)', () => {
    assert.equal(sha256(again), sha256(executable));
  });
});
