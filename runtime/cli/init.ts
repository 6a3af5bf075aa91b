// `lastword init`: PID 1 of the capture initramfs (main.ts runs it automatically when lastword is
// PID 1 or invoked as init). Never returns: after the final action it idles, because an init that
// exits panics the kernel.
import * as sea from 'node:sea';
import * as fs from 'node:fs';
import { describeError, LastwordError } from '../errors.ts';
import { rebootWith } from '../pid1/final-action.ts';
import { installPid1Guards } from '../pid1/guard.ts';
import { cmdlineFailureAction } from '../pid1/outcome.ts';
import { runInit, type InitPhase } from '../pid1/init.ts';
import { realSystem } from '../system/real.ts';

/** The capture child: the executable itself, or node with this checkout's main.ts. */
function captureCommand(): { file: string; args: string[] } {
  if (sea.isSea()) return { file: process.execPath, args: ['save', '--capture'] };
  return { file: process.execPath, args: [process.argv[1]!, 'save', '--capture'] };
}

function lastResort(): 'reboot' | 'poweroff' | 'halt' {
  let action = 'reboot' as ReturnType<typeof cmdlineFailureAction>;
  try {
    action = cmdlineFailureAction(fs.readFileSync('/proc/cmdline', 'utf8'));
  } catch { /* no /proc: reboot */ }
  return action === 'shell' ? 'reboot' : action;
}

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write('usage: lastword init\n  PID 1 of the capture initramfs: mounts, console, capture as a child, final action.\n'
      + '  Kernel command line: lastword.failure_action=reboot|poweroff|halt|shell, lastword.selftest=1,\n'
      + '  lastword.capture_in_pid1=1|0 (default: in PID 1 when MemTotal is below 112 MB)\n');
    return 0;
  }
  const system = realSystem();
  if (system.getpid() !== 1) {
    throw new LastwordError('EINIT_NOT_PID1', `lastword init runs only as PID 1 of the capture initramfs (this is PID ${system.getpid()})`, { action: 'usage' });
  }
  const phase: InitPhase = { current: 'capture' };
  installPid1Guards(system, {
    onRequest: (action, signal) => {
      if (phase.current === 'capture') {
        system.log(`lastword: ${signal} asks for ${action}; the capture is still running, that comes after it`);
        phase.requested = action;
        return;
      }
      rebootWith(system, action);
    },
    onStray: (err) => phase.abortCapture?.(err),
  });
  try {
    const captureHere = async (): Promise<void> => {
      const { parseSaveArgs, runSave } = await import('./save.ts');
      await runSave(system, parseSaveArgs(['--capture']) as Exclude<ReturnType<typeof parseSaveArgs>, 'help'>);
    };
    const result = await runInit(system, { capture: captureCommand(), captureHere }, phase);
    system.log(`lastword: still up after the final action (${result.action}); idling`);
  } catch (err) {
    // a bug in PID 1 itself: the kernel command line's failure action, never an exit
    const action = lastResort();
    system.log(`lastword: PID 1 failed: ${describeError(err)}; ${action}`);
    phase.current = 'final';
    rebootWith(system, action);
  }
  return new Promise<number>(() => { /* PID 1 never returns */ });
}
