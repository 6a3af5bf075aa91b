// PID 1 of the capture initramfs: early mounts, the console, the capture as a supervised child,
// then the final action. The capture itself (plan, target, dump) runs in the child, `lastword save
// --capture`, so that whatever kills it (a bug, the OOM killer) leaves PID 1 alive to take the
// failure action. In a capture kernel with little memory the child's own Node runtime (~14 MB of
// anonymous memory beside PID 1's) is what the dump lacks: there the capture runs in PID 1 itself
// (captureInPid1), whose guards keep it up through an exception; the OOM killer does not take init.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FinalAction } from '../config/plan.ts';
import { describeError } from '../errors.ts';
import type { System } from '../system/types.ts';
import { VERSION } from '../version.ts';
import { mountEarly, takeConsole } from './early-mounts.ts';
import { rebootWith, rescueShell } from './final-action.ts';
import { clearOutcome, cmdlineFlag, cmdlineSwitch, configuredFailureAction, readOutcome } from './outcome.ts';

export interface InitOptions {
  /** '/' as PID 1; a temporary tree in tests */
  root?: string;
  /** the capture child: `<lastword> save --capture` */
  capture: { file: string; args: string[] };
  /** the same capture in this process (it writes the outcome file as the child does) */
  captureHere?: () => Promise<void>;
  /** fake-System tests bound the rescue shell loop */
  maxShellRuns?: number;
}

/** Shared with the signal handlers (guard.ts): what PID 1 is doing, and an admin's request. */
export interface InitPhase {
  current: 'capture' | 'final';
  /** busybox reboot/halt/poweroff during the capture: taken once the capture ends */
  requested?: Exclude<FinalAction, 'shell'>;
  /**
   * Set while the capture runs in PID 1: ends it with this error (guard.ts calls it for an exception
   * nothing caught, which would have ended a capture child), so PID 1 does not wait on it forever.
   */
  abortCapture?: (err: unknown) => void;
}

export interface InitResult {
  mounted: string[];
  action: Exclude<FinalAction, 'shell'>;
  reason: string;
}

/** `VmRSS 61234 kB, RssAnon 9012 kB, RssFile 52222 kB` from /proc/self/status. */
export function memoryLine(root = '/'): string {
  let status = '';
  try {
    status = fs.readFileSync(path.join(root, 'proc/self/status'), 'utf8');
  } catch {
    return 'memory unknown (no /proc)';
  }
  return ['VmRSS', 'RssAnon', 'RssFile', 'RssShmem']
    .map((k) => new RegExp(`^${k}:\\s*(\\d+ kB)`, 'm').exec(status))
    .map((m, i) => (m ? `${['VmRSS', 'RssAnon', 'RssFile', 'RssShmem'][i]} ${m[1]}` : ''))
    .filter(Boolean).join(', ');
}

/** Below this MemTotal (the capture kernel's: 77 MB at crashkernel=128M on the footprint guest) the capture runs in PID 1. */
export const CAPTURE_IN_PID1_BELOW_KIB = 112 * 1024;

/**
 * Whether the capture runs in PID 1 instead of a child, and why: `lastword.capture_in_pid1=1|0` on
 * the command line, else MemTotal below CAPTURE_IN_PID1_BELOW_KIB. Pure but for the meminfo read.
 */
export function captureInPid1(cmdline: string, root = '/'): { here: boolean; why: string } {
  const sw = cmdlineSwitch(cmdline, 'capture_in_pid1');
  if (sw) return { here: sw.on, why: `lastword.capture_in_pid1=${sw.value ?? '1'}` };
  let total: number | undefined;
  try {
    total = Number(/^MemTotal:\s*(\d+) kB/m.exec(fs.readFileSync(path.join(root, 'proc/meminfo'), 'utf8'))?.[1]);
  } catch { /* no /proc: a child, as always */ }
  if (total === undefined || !Number.isFinite(total)) return { here: false, why: 'MemTotal unknown' };
  const mb = Math.round(total / 1024);
  return total < CAPTURE_IN_PID1_BELOW_KIB
    ? { here: true, why: `MemTotal ${mb} MB < ${CAPTURE_IN_PID1_BELOW_KIB / 1024} MB, no room for a second Node process; lastword.capture_in_pid1=0 keeps it in a child` }
    : { here: false, why: `MemTotal ${mb} MB` };
}

function readCmdline(root: string): string {
  try {
    return fs.readFileSync(path.join(root, 'proc/cmdline'), 'utf8');
  } catch {
    return '';
  }
}

/**
 * Runs the capture and returns the final action taken. With the real System a successful reboot
 * never returns; when it does (reboot(2) failed, or a fake System), the caller idles forever.
 */
export async function runInit(system: System, opts: InitOptions, phase: InitPhase = { current: 'capture' }): Promise<InitResult> {
  const root = opts.root ?? '/';
  // The kernel starts init without PATH; the programs the capture runs (ip, udhcpc, mount.nfs,
  // modprobe) sit in /usr/sbin and /usr/bin of the image, and the squashfs /init sets the same.
  process.env.PATH ||= '/usr/sbin:/usr/bin:/sbin:/bin';
  const mounted = mountEarly(system, root);
  takeConsole(system, root);
  const cmdline = readCmdline(root);
  system.log(`lastword ${VERSION}: PID ${system.getpid()}, mounted ${mounted.join(' ')}; ${memoryLine(root)}`);

  if (cmdlineFlag(cmdline, 'selftest')) {
    // the PID-1 proof of test/e2e/pid1.ci.test.ts: up, measured, and down again through reboot(2)
    system.log(`lastword selftest: ok; ${memoryLine(root)}`);
    phase.current = 'final';
    rebootWith(system, 'poweroff');
    return { mounted, action: 'poweroff', reason: 'selftest' };
  }

  const failureAction = configuredFailureAction(root, cmdline, (l) => system.log(l));
  let action: FinalAction;
  let reason: string;
  clearOutcome(root);
  try {
    const where = opts.captureHere ? captureInPid1(cmdline, root) : { here: false, why: '' };
    let ended: string;
    if (where.here) {
      system.log(`lastword: capture in PID 1 (${where.why})`);
      try {
        await new Promise<void>((resolve, reject) => {
          phase.abortCapture = reject;
          opts.captureHere!().then(resolve, reject);
        });
        ended = 'in PID 1';
      } catch (err) {
        ended = `in PID 1, which caught ${describeError(err)}`;
      } finally {
        phase.abortCapture = undefined;
      }
    } else {
      system.log(`lastword: capture: ${[opts.capture.file, ...opts.capture.args].join(' ')}`);
      const r = await system.exec(opts.capture.file, opts.capture.args, { inherit: true });
      ended = r.signal ? `killed by ${r.signal}` : `exit status ${r.exitCode}`;
    }
    const o = readOutcome(root);
    if (o && 'ok' in o) {
      action = o.action;
      reason = o.reason || (o.ok ? 'dump saved' : 'capture failed');
      system.log(`lastword: capture ${o.ok ? 'succeeded' : 'failed'} (${ended}): ${reason}`);
    } else {
      action = failureAction;
      reason = o ? `capture ended (${ended}) with an unreadable ${'/run/lastword/outcome.json'}: ${o.invalid}` : `capture ended (${ended}) without an outcome`;
      system.log(`lastword: ${reason}; failure action ${action}`);
    }
  } catch (err) {
    action = failureAction;
    reason = `capture did not start: ${describeError(err)}`;
    system.log(`lastword: ${reason}; failure action ${action}`);
  }

  phase.current = 'final';
  if (phase.requested) {
    system.log(`lastword: ${phase.requested} was requested during the capture; taking it instead of ${action}`);
    action = phase.requested;
  }
  if (action === 'shell') {
    const after = await rescueShell(system, { root, fallback: failureAction === 'shell' ? 'reboot' : failureAction, maxRuns: opts.maxShellRuns });
    rebootWith(system, after);
    return { mounted, action: after, reason };
  }
  rebootWith(system, action);
  return { mounted, action, reason };
}
