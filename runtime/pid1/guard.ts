// What keeps PID 1 alive: if init exits, the capture kernel panics and the dump is lost. Every
// signal that would end a Node process gets a handler, stray exceptions and rejections are logged,
// process.exit is refused, and a timer keeps the event loop from ever running empty. Orphans
// (daemons of kdump_pre, children of the rescue shell) are reaped on SIGCHLD.
import type { FinalAction } from '../config/plan.ts';
import { describeError } from '../errors.ts';
import type { System } from '../system/types.ts';

export interface GuardOptions {
  /** busybox reboot / halt / poweroff without -f signal init (SIGTERM, SIGUSR1, SIGUSR2) */
  onRequest: (action: Exclude<FinalAction, 'shell'>, signal: string) => void;
  /** children that must not be reaped here (libuv waits for those itself) */
  keep?: () => Iterable<number>;
  reapEveryMs?: number;
  /** an exception or rejection nothing caught (after it is logged): a capture in PID 1 ends on it, as a child would */
  onStray?: (err: unknown) => void;
}

// busybox init's signal meanings, which busybox's reboot/halt/poweroff applets send to PID 1
const REQUESTS: Record<string, Exclude<FinalAction, 'shell'>> = { SIGTERM: 'reboot', SIGUSR1: 'halt', SIGUSR2: 'poweroff' };
// Ctrl-Alt-Del (SIGINT to init), a console hangup, and SIGQUIT/SIGPIPE would end Node by default
const IGNORED = ['SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGPIPE', 'SIGALRM', 'SIGVTALRM', 'SIGPROF', 'SIGXCPU', 'SIGXFSZ', 'SIGPWR', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU'] as const;

export function installPid1Guards(system: Pick<System, 'reapOrphans' | 'log'>, opts: GuardOptions): () => void {
  const reap = (): void => {
    try {
      system.reapOrphans(new Set(opts.keep?.() ?? []));
    } catch (err) {
      system.log(`lastword: reaping orphans failed: ${describeError(err)}`);
    }
  };
  const handlers: Array<[string, (...a: any[]) => void]> = [
    ['uncaughtException', (err: unknown) => { system.log(`lastword: PID 1 caught an exception and stays up: ${describeError(err)}`); opts.onStray?.(err); }],
    ['unhandledRejection', (err: unknown) => { system.log(`lastword: PID 1 caught a rejection and stays up: ${describeError(err)}`); opts.onStray?.(err); }],
    ['SIGCHLD', reap],
  ];
  for (const [sig, action] of Object.entries(REQUESTS)) handlers.push([sig, () => opts.onRequest(action, sig)]);
  for (const sig of IGNORED) handlers.push([sig, () => system.log(`lastword: PID 1 ignores ${sig}`)]);
  for (const [ev, fn] of handlers) process.on(ev as NodeJS.Signals, fn);

  const realExit = process.exit;
  process.exit = ((code?: number | string | null) => {
    system.log(`lastword: PID 1 refuses process.exit(${code ?? ''}): init must not end`);
  }) as typeof process.exit;
  const timer = setInterval(reap, opts.reapEveryMs ?? 5000);

  return () => {
    for (const [ev, fn] of handlers) process.off(ev as NodeJS.Signals, fn);
    process.exit = realExit;
    clearInterval(timer);
  };
}
