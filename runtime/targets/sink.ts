// Where a dump file's bytes go. A target hands the dump writer one of these. Files (local disk,
// NFS) and SFTP take writes at offsets; a raw device, an ssh `dd` pipe or stdout take a byte
// stream, which the writer fills with makedumpfile's flattened format (dumpfile/flattened.ts).
import { LastwordError } from '../errors.ts';

export interface PositionalSink {
  readonly kind: 'positional';
  /** Writes `buf` at absolute offset `offset` of the dump file. Rejects with a LastwordError (ETARGET_FULL, ETARGET_IO...). */
  pwrite(buf: Buffer, offset: number): Promise<void>;
  /** Flushes to stable storage and closes. */
  close(): Promise<void>;
  /** Closes without the guarantees of close(), after a failure. */
  abort(): Promise<void>;
}

export interface StreamSink {
  readonly kind: 'stream';
  /** Appends bytes; resolves when the sink accepted them (back-pressure). */
  write(buf: Buffer): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
}

export type DumpSink = PositionalSink | StreamSink;

/** After a stall, how long abort() and close() of the target may take before they are left behind. */
export const STALLED_CLEANUP_MS = 10_000;

/**
 * `inner` with a time limit on every write and on close(): a target that stops accepting bytes (a
 * server that went silent, an NFS hard mount whose server is gone) fails the dump with
 * ETARGET_STALLED after `stallMs` instead of holding the machine forever, so the dump is kept as
 * incomplete and the failure action runs. A write the kernel still holds cannot be cancelled; the
 * capture just stops waiting for it. `stallMs` 0 = no limit.
 */
export function stallGuard(inner: DumpSink, stallMs: number, what: string, timers: Timers = globalThis): DumpSink {
  if (stallMs <= 0) return inner;
  let stalled: LastwordError | undefined;
  // After a stall nothing more goes to the target; what it still holds settles unobserved.
  const limited = <T>(start: () => Promise<T>, ms: number, onStall: () => LastwordError): Promise<T> => {
    if (stalled) return Promise.reject(stalled);
    const p = start();
    return new Promise<T>((resolve, reject) => {
      const timer = timers.setTimeout(() => { stalled ??= onStall(); reject(stalled); }, ms);
      p.then((v) => { timers.clearTimeout(timer); resolve(v); }, (err: unknown) => { timers.clearTimeout(timer); reject(err); });
    });
  };
  const stall = () => new LastwordError('ETARGET_STALLED', `${what} accepted nothing for ${Math.round(stallMs / 1000)} s; giving up on it (lastword.stall_timeout=)`);
  const abort = async () => {
    // After a stall the target may not answer an abort either: wait a little, then leave it.
    const ms = stalled ? STALLED_CLEANUP_MS : stallMs;
    await new Promise<void>((resolve) => {
      const timer = timers.setTimeout(resolve, ms);
      inner.abort().catch(() => undefined).finally(() => { timers.clearTimeout(timer); resolve(); });
    });
  };
  const close = () => limited(() => inner.close(), stallMs, stall);
  return inner.kind === 'positional'
    ? { kind: 'positional', pwrite: (b, o) => limited(() => inner.pwrite(b, o), stallMs, stall), close, abort }
    : { kind: 'stream', write: (b) => limited(() => inner.write(b), stallMs, stall), close, abort };
}

/** The timer functions stallGuard uses (a test passes its own clock). */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(t: unknown): void;
}
