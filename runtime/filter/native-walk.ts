// The mem_map walk's inner loop in the native addon (runtime/filter/native/page-walk.cc): the same
// rules as classifyPage() in page-rules.ts, handed over as numbers. The TypeScript loop stays the
// reference and the fallback when the addon cannot be loaded; test/filter/native-walk.test.ts
// checks that both give the same bitmaps on real vmcores of both kernel generations.
import { loadNative } from '../system/native-loader.ts';
import type { PageClass, PageRules } from './page-rules.ts';
import type { KernelPageSink } from './types.ts';

interface FilterAddon {
  walkStructPages(rules: Float64Array, ptrs: BigUint64Array, pages: Buffer, blockStart: number, pfn: number, stop: number, lastNext: number,
    bitmap: Buffer, cycleStart: number, cycleEnd: number, counts: Float64Array, out: Float64Array,
    kinds?: Float64Array, slab?: Uint32Array, reserved?: Uint32Array): void;
  walkCycle?(rules: Float64Array, ptrs: BigUint64Array, plan: Float64Array, fd: number, mapped: boolean, bitmap: Buffer, cycleStart: number, cycleEnd: number,
    counts: Float64Array, out: Float64Array, threads: number, kinds?: Float64Array, slab?: Uint32Array, reserved?: Uint32Array): number;
  scanPointers?(pages: Buffer, base: bigint, pageSize: number, maxPfn: number, selfFirst: number, selfEnd: number, out: Uint32Array): number;
}

/** page-walk.cc's class codes. */
export const CLASS_BY_CODE: readonly PageClass[] = ['free', 'cache', 'cachePrivate', 'user', 'hwpoison', 'offline'];

export interface NativeWalk {
  /**
   * Classifies pfn..stop-1 of a block of struct pages, clears the excluded ranges in the cycle's
   * bitmap and adds them to `counts` (indexed like CLASS_BY_CODE); see page-walk.cc.
   */
  walk(pages: Buffer, blockStart: number, pfn: number, stop: number, lastNext: number, bitmap: Buffer, cycleStart: number, cycleEnd: number, sink?: KernelPageSink): void;
  /**
   * The whole cycle in one call, from a plan (see cyclePlan in page-filter.ts): the struct pages
   * are read from the vmcore file `fd` by the addon, on `threads` threads (this one included; one
   * when there is a sink). Returns 0, or the errno of a read that failed (-1: the file ends early);
   * the bitmap is then half walked. out[0] = the end of a range past cycleEnd, else 0; out[1] = the
   * same for the section that goes on past cycleEnd. Undefined when the addon predates it.
   */
  cycle?(plan: Float64Array, fd: number, mapped: boolean, bitmap: Buffer, cycleStart: number, cycleEnd: number, threads: number, sink?: KernelPageSink): number;
  /** out[0] = next pfn; out[1] = the end of a range that runs past the cycle, else 0. */
  readonly out: Float64Array;
  readonly counts: Float64Array;
}

const NONE = -1;

/** The rules as page-walk.cc's Rule indices. */
export function rulesArray(r: PageRules, dumpLevel: number): { rules: Float64Array; ptrs: BigUint64Array } {
  const opt = (v: number | undefined) => (v === undefined ? NONE : v);
  const rules = Float64Array.from([
    r.sizePage, r.offFlags, r.offMapping, opt(r.offMapcount), opt(r.offPrivate), opt(r.offCompoundHead), r.orderOffset, r.dtorOffset,
    r.kernelVersion, r.pgLru, r.pgPrivate, r.pgSwapcache, r.pgSwapbacked, r.pgSlab, r.pgHwpoison, r.pgHugetlb,
    r.headMaskLo >>> 0, r.headMaskHi >>> 0, r.buddy === 'mapcount' ? 1 : r.buddy === 'flag' ? 2 : 0, r.pgBuddy, r.buddyValue >>> 0,
    opt(r.offlineValue), opt(r.slabValue), opt(r.hugetlbValue), opt(r.unacceptedValue), opt(r.freeAreaLength), dumpLevel,
  ]);
  // A negative HUGETLB_PAGE_DTOR never equals a dtor read from memory (unsigned): as absent.
  const dtor = r.hugetlbDtor !== undefined && r.hugetlbDtor >= 0n ? r.hugetlbDtor : undefined;
  const ptrs = BigUint64Array.from([dtor === undefined ? 0n : 1n, dtor ?? 0n, r.freeHugePage === undefined ? 0n : 1n, BigInt.asUintN(64, r.freeHugePage ?? 0n)]);
  return { rules, ptrs };
}

/** The native walk for these rules, or undefined when the addon is not there (then the TypeScript loop runs). */
export function nativeWalk(r: PageRules, dumpLevel: number): NativeWalk | undefined {
  let addon: FilterAddon;
  try {
    addon = loadNative<FilterAddon>('filter');
  } catch {
    return undefined;
  }
  const { rules, ptrs } = rulesArray(r, dumpLevel);
  const out = new Float64Array(2);
  const counts = new Float64Array(CLASS_BY_CODE.length);
  return {
    out,
    counts,
    walk: (pages, blockStart, pfn, stop, lastNext, bitmap, cycleStart, cycleEnd, sink) => sink
      ? addon.walkStructPages(rules, ptrs, pages, blockStart, pfn, stop, lastNext, bitmap, cycleStart, cycleEnd, counts, out, sink.state, sink.slab, sink.reserved)
      : addon.walkStructPages(rules, ptrs, pages, blockStart, pfn, stop, lastNext, bitmap, cycleStart, cycleEnd, counts, out),
    ...(typeof addon.walkCycle === 'function' ? {
      cycle: (plan: Float64Array, fd: number, mapped: boolean, bitmap: Buffer, cycleStart: number, cycleEnd: number, threads: number, sink?: KernelPageSink) => sink
        ? addon.walkCycle!(rules, ptrs, plan, fd, mapped, bitmap, cycleStart, cycleEnd, counts, out, threads, sink.state, sink.slab, sink.reserved)
        : addon.walkCycle!(rules, ptrs, plan, fd, mapped, bitmap, cycleStart, cycleEnd, counts, out, threads),
    } : {}),
  };
}

/** page-walk.cc's KindState: the indexes of a KernelPageSink's state, and its length. */
export const KIND_STATE = { pgReserved: 0, slabCount: 1, reservedCount: 2, length: 5 } as const;

/**
 * The addon's scan of pages for direct-map pointers (page-walk.cc scanPointers: the pfns pointed
 * to, into `out`, returns how many), or undefined when the addon does not load or predates it; a
 * filter addon that has it also reports kinds to a KernelPageSink.
 */
export function nativeScanPointers(): ((pages: Buffer, base: bigint, pageSize: number, maxPfn: number, selfFirst: number, selfEnd: number, out: Uint32Array) => number) | undefined {
  try {
    const addon = loadNative<FilterAddon>('filter');
    return typeof addon.scanPointers === 'function' ? addon.scanPointers.bind(addon) : undefined;
  } catch {
    return undefined;
  }
}
