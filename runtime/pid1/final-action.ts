// The last thing PID 1 does: reboot(2) after sync, or the rescue shell on the console. PID 1 must
// never exit (the capture kernel would panic), so a failing reboot(2) is logged and the caller idles.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FinalAction } from '../config/plan.ts';
import { describeError } from '../errors.ts';
import type { RebootCommand, System } from '../system/types.ts';
import { clearOutcome, readOutcome } from './outcome.ts';

export const REBOOT_COMMAND: Record<Exclude<FinalAction, 'shell'>, RebootCommand> = {
  reboot: 'restart',
  poweroff: 'power-off',
  halt: 'halt',
};

/** sync, then reboot(2). Returns only when reboot(2) failed (or a fake System recorded it). */
export function rebootWith(system: Pick<System, 'sync' | 'reboot' | 'log'>, action: Exclude<FinalAction, 'shell'>): void {
  system.log(`lastword: final action ${action}`);
  try {
    system.sync();
  } catch (err) {
    system.log(`lastword: sync failed: ${describeError(err)}`);
  }
  try {
    system.reboot(REBOOT_COMMAND[action]);
  } catch (err) {
    system.log(`lastword: ${action} failed: ${describeError(err)}; staying up`);
  }
}

const BUSYBOX = ['/bin/busybox', '/usr/bin/busybox', '/sbin/busybox', '/usr/sbin/busybox'];

/**
 * How to start an interactive shell with the console as its controlling terminal (job control,
 * Ctrl-C). busybox cttyhack opens the console's real tty (/sys/class/tty/console/active), since
 * /dev/console itself cannot be one, in a new session made by busybox setsid; a plain /bin/sh
 * (no job control) is the last resort.
 */
export function shellCommand(root = '/'): { file: string; args: string[] } | undefined {
  const bb = BUSYBOX.find((p) => fs.existsSync(path.join(root, p)));
  // cttyhack's TIOCSCTTY needs a session leader: setsid first
  if (bb) return { file: bb, args: ['setsid', bb, 'cttyhack', bb, 'sh', '-l'] };
  if (fs.existsSync(path.join(root, '/bin/sh'))) return { file: '/bin/sh', args: ['-i'] };
  return undefined;
}

/**
 * The rescue shell, offered again each time it exits. A retry from the shell (`lastword save
 * --capture`) that writes a successful outcome with another action ends the loop with that action.
 * Without any shell, or when it cannot start, the answer is `fallback`.
 */
export async function rescueShell(system: System, opts: { root?: string; fallback?: Exclude<FinalAction, 'shell'>; maxRuns?: number } = {}): Promise<Exclude<FinalAction, 'shell'>> {
  const root = opts.root ?? '/';
  const fallback = opts.fallback ?? 'reboot';
  const shell = shellCommand(root);
  if (!shell) {
    system.log(`lastword: no shell in this initramfs; ${fallback} instead`);
    return fallback;
  }
  for (let run = 1; opts.maxRuns === undefined || run <= opts.maxRuns; run++) {
    clearOutcome(root);
    system.log("lastword: rescue shell. Fix the cause and run 'lastword save --capture' to retry; 'reboot -f' or 'poweroff -f' to leave.");
    try {
      const r = await system.exec(shell.file, shell.args, { inherit: true });
      system.log(`lastword: shell exited (${r.signal ?? r.exitCode})`);
    } catch (err) {
      system.log(`lastword: cannot start ${shell.file}: ${describeError(err)}; ${fallback} instead`);
      return fallback;
    }
    const o = readOutcome(root);
    if (o && 'ok' in o && o.ok && o.action !== 'shell') {
      system.log(`lastword: the retry saved the dump (${o.reason || 'ok'})`);
      return o.action;
    }
    // a shell that dies at once must not spin the console
    await system.sleep(1000);
  }
  return fallback;
}
