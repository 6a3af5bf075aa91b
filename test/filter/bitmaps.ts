// The page filter's whole 2nd bitmap and where two bitmaps differ: shared by the filter tests that
// compare with makedumpfile or with another walk; and the crash-first tiers the writer would get.
import { CrashFirstOrder } from '../../runtime/filter/crash-first.ts';
import { createPageFilter, type PageFilter } from '../../runtime/filter/index.ts';
import { openVmcore } from '../../runtime/vmcore/index.ts';

/** The whole 2nd bitmap, asked cycle by cycle in the given order. */
export function fullBitmap(filter: PageFilter, order: 'forward' | 'reverse' = 'forward'): Buffer {
  const n = filter.maxMapnr;
  const out = Buffer.alloc(Math.ceil(n / 8));
  const starts: number[] = [];
  for (let s = 0; s < n; s += filter.cyclePfns) starts.push(s);
  if (order === 'reverse') starts.reverse();
  for (const s of starts) {
    const e = Math.min(s + filter.cyclePfns, n);
    const b = Buffer.alloc(Math.ceil((e - s) / 8));
    filter.fillCycle(s, e, b);
    b.copy(out, s / 8);
  }
  return out;
}

/** The first (up to 10) pfns whose bits differ, in hex. */
export function differingPfns(a: Buffer, b: Buffer, n: number): string[] {
  const out: string[] = [];
  for (let p = 0; p < n && out.length < 10; p++) {
    if (((a[p >> 3]! >> (p & 7)) & 1) !== ((b[p >> 3]! >> (p & 7)) & 1)) out.push('0x' + p.toString(16));
  }
  return out;
}

/**
 * The crash-first tiers of a vmcore as the kdump-compressed writer gets them: every cycle of a
 * level-31 filter observed first, the filter's walk reporting to the order's sink. `native: false`:
 * the filter walks and the order scans in TypeScript. Also how many cycles there were, and how many of them the walk reported.
 */
export function crashFirstTiers(vmcoreFile: string, opts: { native?: boolean; cyclePfns?: number } = {}): Uint32Array[] & { cycles: number; walkedCycles: number } {
  const vmcore = openVmcore(vmcoreFile);
  try {
    const filter = createPageFilter(vmcore, 31, { strict: true, native: opts.native, cyclePfns: opts.cyclePfns });
    const order = new CrashFirstOrder(vmcore, { native: opts.native });
    const bitmap = Buffer.alloc(filter.cyclePfns / 8);
    let cycles = 0, walkedCycles = 0;
    for (let start = 0; start < filter.maxMapnr; start += filter.cyclePfns) {
      const end = Math.min(start + filter.cyclePfns, filter.maxMapnr);
      bitmap.fill(0);
      cycles++;
      filter.fillCycle(start, end, bitmap, order.sink);
      if (order.sink?.walked === start) walkedCycles++;
      order.observe(start, end, bitmap);
    }
    return Object.assign(order.tiers(), { cycles, walkedCycles });
  } finally {
    vmcore.close();
  }
}
