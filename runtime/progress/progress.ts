// Progress on the console while the dump is saved, and the run log saved next to the dump. A
// serial console at 115200 baud is slow and is often logged: at most one progress line every few
// seconds, each one complete (no carriage-return animation), so the log reads well afterwards.

export interface ProgressOptions {
  /** Where lines go (the console). */
  emit: (line: string) => void;
  now: () => number;
  /** Minimum time between two progress lines. */
  intervalMs?: number;
}

const MB = 1e6;

/** `1:05`, `1:02:03`: ETA and durations the way people read them on a console. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** One progress line. Pure. `rate` is bytes of vmcore per second. */
export function formatProgress(done: number, total: number, bytesPerPage: number, elapsedMs: number): string {
  const pct = total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : 0;
  const rate = elapsedMs > 0 ? (done * bytesPerPage) / (elapsedMs / 1000) : 0;
  const eta = done > 0 && done < total ? formatDuration((elapsedMs / done) * (total - done)) : done >= total ? '0:00' : '?';
  return `lastword: saving ${String(pct).padStart(3)}% (${done} of ${total} pages), ${(rate / MB).toFixed(1)} MB/s, ETA ${eta}`;
}

/** The run log: every line is shown on the console and kept, to be written next to the dump. */
export class RunLog {
  readonly lines: string[] = [];
  private readonly emit: (line: string) => void;
  private readonly now: () => number;
  private readonly intervalMs: number;
  private readonly started: number;
  private phaseStart = 0;
  private lastProgress = -Infinity;
  private lastDone = -1;

  constructor(opts: ProgressOptions) {
    this.emit = opts.emit;
    this.now = opts.now;
    this.intervalMs = opts.intervalMs ?? 5000;
    this.started = opts.now();
  }

  line(text: string): void {
    const stamped = `[${formatDuration(this.now() - this.started).padStart(5)}] ${text}`;
    this.lines.push(stamped);
    this.emit(stamped);
  }

  /** Starts timing the page-writing phase. */
  startPages(): void {
    this.phaseStart = this.now();
    this.lastProgress = this.phaseStart;
  }

  /** The writer's callback: pages done of total. Prints at most every intervalMs, and the last one. */
  pages(done: number, total: number, bytesPerPage: number): void {
    const t = this.now();
    const last = done >= total && this.lastDone < total;
    if (!last && t - this.lastProgress < this.intervalMs) return;
    this.lastProgress = t;
    this.lastDone = done;
    this.line(formatProgress(done, total, bytesPerPage, t - this.phaseStart));
  }

  elapsedMs(): number {
    return this.now() - this.started;
  }

  text(): string {
    return this.lines.join('\n') + '\n';
  }
}

export interface CaptureSummary {
  ok: boolean;
  target: string;
  /** Where the dump is, as the admin finds it on the target. */
  file?: string;
  incomplete: boolean;
  bytes: number;
  format: string;
  codec: string;
  dumpLevel: number;
  ramPages?: number;
  dumpablePages?: number;
  zeroPages?: number;
  /** Dumpable pages whose read from the vmcore failed (not in the dump). */
  unreadablePages?: number;
  /** Pages left out per class, from the page filter. */
  excluded?: { cache: number; cachePrivate: number; user: number; free: number; hwpoison: number; offline: number };
  dmesgFile?: string;
  /** The vmcore was read through mappings of it (/proc/vmcore), not read(). */
  vmcoreMapped?: boolean;
  elapsedMs: number;
  reason?: string;
  action: string;
}

/** The one-screen summary at the end. Pure. */
export function formatSummary(s: CaptureSummary): string[] {
  const lines = [
    `lastword: ${s.ok ? 'dump saved' : s.incomplete ? 'dump INCOMPLETE' : 'dump FAILED'}`,
    `  target:      ${s.target}`,
    `  file:        ${s.file ?? '(none)'}${s.incomplete && s.file ? '  (incomplete: missing pages read as unavailable)' : ''}`,
    `  written:     ${s.bytes} bytes (${(s.bytes / MB).toFixed(1)} MB)`,
    `  format:      ${s.format}, codec ${s.codec}, dump level ${s.dumpLevel}`,
  ];
  if (s.ramPages !== undefined) {
    const lost = s.unreadablePages ? `, ${s.unreadablePages} unreadable (not saved)` : '';
    lines.push(`  pages:       ${(s.dumpablePages ?? 0) - (s.unreadablePages ?? 0)} saved of ${s.ramPages}${s.zeroPages ? `, ${s.zeroPages} zero` : ''}${lost}`);
  }
  if (s.excluded) {
    const e = s.excluded;
    lines.push(`  excluded:    cache ${e.cache}, private cache ${e.cachePrivate}, user ${e.user}, free ${e.free}, hwpoison ${e.hwpoison}, offline ${e.offline}`);
  }
  if (s.dmesgFile) lines.push(`  dmesg:       ${s.dmesgFile}`);
  lines.push(`  time:        ${formatDuration(s.elapsedMs)}${s.vmcoreMapped ? ' (vmcore read through mmap)' : ''}`);
  if (s.reason) lines.push(`  reason:      ${s.reason}`);
  lines.push(`  next:        ${s.action}`);
  return lines;
}
