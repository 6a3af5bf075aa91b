// Time limits on everything the capture asks of a dump target. A target that stops answering (a
// server gone silent without closing the connection, an NFS server gone under a hard mount) fails
// with ETARGET_STALLED after `lastword.stall_timeout` instead of holding the machine forever: what
// was written stays under its incomplete name, nothing more is sent there, and the capture goes on
// to the failure action (or Debian's next target). A request the kernel or the server still holds
// cannot be cancelled; the capture just stops waiting for it.
import { LastwordError } from '../errors.ts';
import type { DumpSink } from './sink.ts';
import type { DumpTarget } from './target.ts';

/** After a stall, how long abort() and close() may take before they are left behind. */
export const STALLED_CLEANUP_MS = 10_000;

/** The timer functions the guards use (a test passes its own clock). */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(t: unknown): void;
}

/** One target's time limit, shared by the target and the sinks it opens: once stalled, always stalled. */
class Limiter {
  private stalled: LastwordError | undefined;
  private readonly ms: number;
  private readonly what: string;
  private readonly timers: Timers;

  constructor(ms: number, what: string, timers: Timers) {
    this.ms = ms;
    this.what = what;
    this.timers = timers;
  }

  /** `start()` with the time limit; after a stall nothing is started and the stall is the answer. */
  run<T>(start: () => Promise<T>): Promise<T> {
    if (this.stalled) return Promise.reject(this.stalled);
    const p = start();
    return new Promise<T>((resolve, reject) => {
      const timer = this.timers.setTimeout(() => {
        this.stalled ??= new LastwordError('ETARGET_STALLED', `${this.what} accepted nothing for ${Math.round(this.ms / 1000)} s; giving up on it (lastword.stall_timeout=)`);
        reject(this.stalled);
      }, this.ms);
      p.then((v) => { this.timers.clearTimeout(timer); resolve(v); }, (err: unknown) => { this.timers.clearTimeout(timer); reject(err); });
    });
  }

  /** Cleanup (abort, close) that must not throw: waited for up to the limit, after a stall only briefly. */
  async settle(start: () => Promise<unknown>): Promise<void> {
    const ms = this.stalled ? STALLED_CLEANUP_MS : this.ms;
    await new Promise<void>((resolve) => {
      const timer = this.timers.setTimeout(resolve, ms);
      start().catch(() => undefined).finally(() => { this.timers.clearTimeout(timer); resolve(); });
    });
  }
}

function guardSink(inner: DumpSink, l: Limiter): DumpSink {
  const close = () => l.run(() => inner.close());
  const abort = () => l.settle(() => inner.abort());
  return inner.kind === 'positional'
    ? { kind: 'positional', pwrite: (b, o) => l.run(() => inner.pwrite(b, o)), close, abort }
    : { kind: 'stream', write: (b) => l.run(() => inner.write(b)), close, abort };
}

/** `inner` with a time limit on every write and on close(); `stallMs` 0 = no limit. */
export function stallGuard(inner: DumpSink, stallMs: number, what: string, timers: Timers = globalThis): DumpSink {
  return stallMs <= 0 ? inner : guardSink(inner, new Limiter(stallMs, what, timers));
}

/** `t` with a time limit on every request, and on the sinks it opens; `stallMs` 0 = no limit. */
export function stallGuardTarget(t: DumpTarget, stallMs: number, timers: Timers = globalThis): DumpTarget {
  if (stallMs <= 0) return t;
  const l = new Limiter(stallMs, t.description, timers);
  return {
    description: t.description, hasFiles: t.hasFiles, streamOnly: t.streamOnly, network: t.network, localAddress: t.localAddress,
    mkdirs: (dir) => l.run(() => t.mkdirs(dir)),
    openDump: async (dir, name, kind) => guardSink(await l.run(() => t.openDump(dir, name, kind)), l),
    writeFile: (dir, name, data) => l.run(() => t.writeFile(dir, name, data)),
    rename: (dir, from, to) => l.run(() => t.rename(dir, from, to)),
    list: (dir) => l.run(() => t.list(dir)),
    removeDump: (dir, name) => l.run(() => t.removeDump(dir, name)),
    close: () => l.settle(() => t.close()),
  };
}
