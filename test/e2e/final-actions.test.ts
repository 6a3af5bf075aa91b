// E2E, final actions after a successful capture: reboot (the guest really comes back up in its
// first kernel) and shell (a prompt on the serial console answers a command). poweroff is what the
// target tests end with.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { extractExt4Tree } from '../support/qemu.ts';
import {
  bootCycle, CAPTURE_APPEND, captureConsole, classifyDumpFiles, e2eDir, ext4Conf, INIT_DIED, missingPrerequisite,
  prepareCycle,
} from './cycle.ts';

const skip = missingPrerequisite();

test('final_action reboot: after the dump the guest boots its first kernel again', { skip, timeout: 900_000 }, async (t) => {
  const base = e2eDir(t, 'reboot');
  const o = {
    name: 'reboot', baseDir: base, noReboot: false,
    kdumpConf: ext4Conf('LWREBOOT', 'reboot', 'poweroff'),
    sysconfig: `KDUMP_COMMANDLINE_APPEND="${CAPTURE_APPEND}"\n`,
    disks: [{ name: 'dump', sizeMiB: 1024, ext4Label: 'LWREBOOT' }],
  };
  const p = prepareCycle(o);
  const guest = bootCycle(o, p);
  t.after(() => guest.kill());
  const crash = await guest.waitFor(/E2E: CRASHING|E2E: LOAD FAILED.*/, 240_000);
  assert.doesNotMatch(crash[0], /LOAD FAILED/, guest.tail());
  const from = crash.index + crash[0].length;
  // The capture kernel's banner, then (after reboot(2) RESTART resets the machine) the primary's again.
  const second = await guest.waitFor(/reboot: (Restarting system|Power down|System halted)[\s\S]*?E2E: PRIMARY UP/, 600_000, from)
    .catch((err: Error) => assert.fail(`the first kernel did not come back: ${err.message}`));
  guest.kill();
  await guest.exited;
  const capture = captureConsole(guest.console);
  assert.match(second[0], /reboot: Restarting system/, 'the capture kernel did not reboot');
  assert.doesNotMatch(capture, INIT_DIED, `PID 1 died in the capture kernel:\n${guest.tail(60)}`);
  const dump = classifyDumpFiles(extractExt4Tree(p.disks.dump!, path.join(base, 'tree')));
  assert.ok(dump.vmcore, 'no finished vmcore on the disk before the reboot');
});

test('final_action shell: after the dump a rescue shell on the serial console answers a command', { skip, timeout: 900_000 }, async (t) => {
  const base = e2eDir(t, 'shell');
  const o = {
    name: 'shell', baseDir: base,
    kdumpConf: ext4Conf('LWSHELL', 'shell', 'poweroff'),
    sysconfig: `KDUMP_COMMANDLINE_APPEND="${CAPTURE_APPEND}"\n`,
    disks: [{ name: 'dump', sizeMiB: 1024, ext4Label: 'LWSHELL' }],
  };
  const p = prepareCycle(o);
  const guest = bootCycle(o, p);
  t.after(() => guest.kill());
  const crash = await guest.waitFor(/E2E: CRASHING|E2E: LOAD FAILED.*/, 240_000);
  assert.doesNotMatch(crash[0], /LOAD FAILED/, guest.tail());
  const from = crash.index + crash[0].length;
  await guest.waitFor(/Linux version/, 120_000, from);
  // The typed line only prints LW-SHELL-42 when a shell evaluates it; keep typing until one does
  // (input typed before the shell starts waits in the tty or is read by nobody).
  let answered = false;
  for (let i = 0; i < 120 && guest.running && !answered; i++) {
    guest.type('echo LW-SHELL-$((6*7))\n');
    answered = await guest.waitFor(/LW-SHELL-42/, 5_000, from).then(() => true, () => false);
  }
  const capture = captureConsole(guest.console);
  guest.kill();
  await guest.exited;
  assert.ok(answered, `no shell answered on the console:\n${guest.tail(60)}`);
  assert.doesNotMatch(capture, INIT_DIED, `PID 1 died in the capture kernel:\n${guest.tail(60)}`);
  assert.doesNotMatch(capture, /reboot: (Restarting system|Power down|System halted)/, 'the capture kernel stopped instead of opening a shell');
  const dump = classifyDumpFiles(extractExt4Tree(p.disks.dump!, path.join(base, 'tree')));
  assert.ok(dump.vmcore, 'no finished vmcore on the disk before the shell');
});
