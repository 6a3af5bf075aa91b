// Sets of pfns for the crash-first order (crash-first.ts): lists bounded in size, runs, ranges.
// pfns are 4 bytes each; a pfn from 2^32 on (16 TiB with 4 KiB pages) is in none of them.

/** pfns gathered in a growing Uint32Array, up to `max`. */
export class PfnList {
  private a = new Uint32Array(1024);
  length = 0;
  readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  push(pfn: number): void {
    if (this.length >= this.max || pfn > 0xffffffff) return;      // pfns past 16 TiB stay in pfn order
    if (this.length === this.a.length) {
      const b = new Uint32Array(Math.min(this.max, 2 * this.a.length));
      b.set(this.a);
      this.a = b;
    }
    this.a[this.length++] = pfn;
  }
  /** Forgets the pfns from index `n` on. */
  truncate(n: number): void {
    this.length = Math.min(this.length, n);
  }
  /** Ascending, each pfn once. */
  sorted(): Uint32Array {
    const a = this.a.subarray(0, this.length).sort();
    let n = 0;
    for (let i = 0; i < a.length; i++) if (i === 0 || a[i] !== a[n - 1]) a[n++] = a[i]!;
    return a.subarray(0, n);
  }
}

/**
 * pfns pushed in ascending order, kept only in runs of at most `runMax` consecutive pfns, `max` in
 * all: a longer run is dropped when it ends, so it never uses up the bound (crash-first.ts: the
 * swiotlb buffer, boot-time hash tables or a large machine's mem_map before the per-CPU areas).
 */
export class ShortRuns {
  private readonly list: PfnList;
  private readonly runMax: number;
  private runStart = 0;      // index in list of the open run's first pfn
  private runLength = 0;
  private last = -2;
  constructor(max: number, runMax: number) {
    this.list = new PfnList(max);
    this.runMax = runMax;
  }
  push(pfn: number): void {
    if (pfn !== this.last + 1) this.close();
    this.last = pfn;
    if (++this.runLength <= this.runMax) this.list.push(pfn);
  }
  private close(): void {
    if (this.runLength > this.runMax) this.list.truncate(this.runStart);
    this.runStart = this.list.length;
    this.runLength = 0;
  }
  /** Ascending: the runs of at most runMax pfns. */
  sorted(): Uint32Array {
    this.close();
    return this.list.sorted();
  }
}

/** Sorted, merged pfn ranges [start, end), for membership tests. */
export class PfnRanges {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  constructor(ranges: [number, number][]) {
    ranges.sort((a, b) => a[0] - b[0]);
    for (const [s, e] of ranges) {
      const last = this.ends.length - 1;
      if (last >= 0 && s <= this.ends[last]!) this.ends[last] = Math.max(this.ends[last]!, e);
      else { this.starts.push(s); this.ends.push(e); }
    }
  }
  has(pfn: number): boolean {
    const k = this.firstEndingAfter(pfn);
    return k < this.starts.length && this.starts[k]! <= pfn;
  }
  /** The first pfn from `pfn` on that is in no range (`pfn` itself when it is in none). */
  skip(pfn: number): number {
    const k = this.firstEndingAfter(pfn);
    return k < this.starts.length && this.starts[k]! <= pfn ? this.ends[k]! : pfn;
  }
  /** The start of the first range after `pfn`, which is in none; Infinity if there is none. */
  nextStart(pfn: number): number {
    const k = this.firstEndingAfter(pfn);
    return k < this.starts.length ? this.starts[k]! : Infinity;
  }
  /** The index of the first range whose end is above `pfn`. */
  private firstEndingAfter(pfn: number): number {
    let lo = 0, hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.ends[mid]! <= pfn) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** Calls `fn(first, count)` for each run of consecutive pfns of ascending `pfns`; `topDown`: the last run first. */
export function forEachRun(pfns: Uint32Array, fn: (first: number, count: number) => void, topDown = false): void {
  const runs: [number, number][] = [];
  for (let i = 0; i < pfns.length;) {
    let j = i + 1;
    while (j < pfns.length && pfns[j] === pfns[j - 1]! + 1) j++;
    runs.push([pfns[i]!, j - i]);
    i = j;
  }
  if (topDown) runs.reverse();
  for (const [first, n] of runs) fn(first, n);
}

/** The pfns of ascending `a` that are not in ascending `b`. */
export function without(a: Uint32Array, b: Uint32Array): Uint32Array {
  let n = 0, j = 0;
  for (let i = 0; i < a.length; i++) {
    while (j < b.length && b[j]! < a[i]!) j++;
    if (b[j] !== a[i]) a[n++] = a[i]!;
  }
  return a.subarray(0, n);
}
