// The 2nd bitmap, one cycle at a time. Start from the 1st bitmap (pfns with data), then walk each
// section's mem_map like makedumpfile: classify a pfn, clear the page or the whole range it heads
// (buddy block, compound page), skip ahead inside the section. A range that runs past the end of a
// cycle is carried into the next one, so a cycle never needs more than its own bitmap.
import { LastwordError, describeError } from '../errors.ts';
import { loadDataEndPfn, type Vmcore } from '../vmcore/types.ts';
import { X86_64Memory } from '../vmcore/x86_64.ts';
import { popcount } from './bitmap.ts';
import { findMemMap } from './mem-map.ts';
import type { MemMapLayout, MemMapSection } from './mem-map.ts';
import { DL_EXCLUDE_CACHE, DL_EXCLUDE_CACHE_PRI, DL_EXCLUDE_FREE, DL_EXCLUDE_USER_DATA, DL_EXCLUDE_ZERO, classifyPage, pageRules } from './page-rules.ts';
import type { PageClass, PageRules } from './page-rules.ts';
import type { KernelPageSink, PageClassCounts, PageFilter } from './types.ts';
import { CLASS_BY_CODE, nativeWalk } from './native-walk.ts';
import type { NativeWalk } from './native-walk.ts';

/** makedumpfile's PGMM_CACHED: struct pages are read in blocks of this many, aligned. */
const PGMM_CACHED = 512;
/** Default cycle: 4 GiB of memory per cycle (128 KiB of bitmap with 4 KiB pages). */
const DEFAULT_CYCLE_PFNS = 1 << 20;

export interface PageFilterOptions {
  /** pfns per cycle; rounded up to a multiple of 8. Default: 1 Mi pfns, at least the largest range. */
  cyclePfns?: number;
  /** Throw instead of falling back to level 0 when the mem_map cannot be read. */
  strict?: boolean;
  /** Classify in the native addon when it loads (default); false = the TypeScript loop only. */
  native?: boolean;
  /**
   * With the native addon: walk each cycle in one call that reads the struct pages itself (default),
   * on this many threads (default 1: this one; see walkCycle in page-walk.cc). false = a call per
   * block of struct pages read here, as before.
   */
  cycleWalk?: boolean;
  walkThreads?: number;
}

interface Carry {
  /** Pages below this pfn were cleared by a range that started in an earlier cycle. */
  clearEnd: number;
  /** The walk of the section holding the cycle's first pfn resumes here (skip-ahead after a range). */
  skipEnd: number;
}

const NO_CARRY: Carry = { clearEnd: 0, skipEnd: 0 };

function emptyCounts(): PageClassCounts {
  return { zero: 0, cache: 0, cachePrivate: 0, user: 0, free: 0, hwpoison: 0, offline: 0, dumpable: 0 };
}

export function createPageFilter(vmcore: Vmcore, dumpLevel: number, opts: PageFilterOptions = {}): PageFilter {
  if (!Number.isInteger(dumpLevel) || dumpLevel < 0 || dumpLevel > 31) {
    throw new LastwordError('EUSAGE', `dump level ${dumpLevel} is not in 0..31`, { action: 'usage' });
  }
  let walk: MemMapWalk | undefined;
  let fallbackReason: string | undefined;
  try {
    walk = new MemMapWalk(vmcore, dumpLevel, opts.native ?? true);
  } catch (err) {
    // Any failure, even an unforeseen one, costs the filtering, never the dump.
    if (opts.strict) throw err;
    fallbackReason = describeError(err);
  }
  return new CyclicPageFilter(vmcore, dumpLevel, walk, fallbackReason, opts);
}

/** Everything the walk needs that does not change between cycles. */
class MemMapWalk {
  readonly memory: X86_64Memory;
  readonly rules: PageRules;
  readonly layout: MemMapLayout;
  readonly largestRange: number;
  readonly needed: boolean;
  readonly vmcore: Vmcore;
  readonly native: NativeWalk | undefined;
  /** pfns whose struct pages could not be read: kept unclassified (StructPageReader). */
  readonly lost = new LostStructPages();

  constructor(vmcore: Vmcore, dumpLevel: number, native: boolean) {
    this.vmcore = vmcore;
    this.memory = new X86_64Memory(vmcore);
    this.rules = pageRules(vmcore.vmcoreinfo, vmcore.file);
    const r = this.rules;
    // create_2nd_bitmap() only walks mem_map when a rule can apply.
    this.needed = (dumpLevel & (DL_EXCLUDE_CACHE | DL_EXCLUDE_CACHE_PRI | DL_EXCLUDE_USER_DATA)) !== 0
      || r.pgHwpoison !== -1
      || ((dumpLevel & DL_EXCLUDE_FREE) !== 0 && r.buddy !== undefined);
    if ((dumpLevel & DL_EXCLUDE_FREE) && r.buddy === undefined) {
      throw new LastwordError('EFILTER_UNSUPPORTED', `${vmcore.file}: free pages cannot be found (no PAGE_BUDDY_MAPCOUNT_VALUE / PG_buddy with page.private); the free-list walk of old kernels is not implemented`, { where: { file: vmcore.file } });
    }
    // makedumpfile's get_mem_map runs at every level and trims max_mapnr to the end of the last
    // section with a mem_map (a DIMM unplugged after kexec -p keeps its PT_LOAD, not its pages).
    // Without a walk to do, a mem_section that cannot be read only leaves max_mapnr untrimmed.
    const untrimmed: MemMapLayout = { sections: [], pagesPerSection: 1, maxMapnr: vmcore.maxMapnr };
    if (this.needed) this.layout = findMemMap(vmcore, this.memory);
    else {
      try {
        this.layout = findMemMap(vmcore, this.memory);
      } catch {
        this.layout = untrimmed;
      }
    }
    // 1 GiB compound pages (order 18) and MAX_ORDER buddy blocks: cycles are a multiple of both.
    this.largestRange = Math.max(2 ** 18, 2 ** Math.max(0, (r.freeAreaLength ?? 11) - 1));
    this.native = native && this.needed ? nativeWalk(r, dumpLevel) : undefined;
  }
}

class CyclicPageFilter implements PageFilter {
  readonly dumpLevel: number;
  readonly maxMapnr: number;
  readonly cyclePfns: number;
  fallbackReason: string | undefined;
  private readonly vmcore: Vmcore;
  private walk: MemMapWalk | undefined;
  private readonly carries = new Map<number, Carry>();
  private readonly cycleCounts = new Map<number, PageClassCounts>();
  /** Cycles from this pfn on are not filtered (the walk failed there). */
  private failedFrom = Infinity;
  private readonly strict: boolean;
  private lastSeg = 0;
  private readonly cycleWalk: boolean;
  readonly walks = { cycle: 0, block: 0, typescript: 0 };
  private readonly walkThreads: number;

  /** PageFilter.unclassified: the pfns the walk kept because their struct pages could not be read. */
  get unclassified(): { pfns: number; firstPfn: number; reason: string } | undefined {
    return this.walk?.lost.summary();
  }

  constructor(vmcore: Vmcore, dumpLevel: number, walk: MemMapWalk | undefined, fallbackReason: string | undefined, opts: PageFilterOptions) {
    this.vmcore = vmcore;
    // Fallen back before the first cycle: only the writer's zero-page check (bit 1) still applies,
    // so the header should say so. A fallback during the walk keeps the level of the cycles before.
    this.dumpLevel = walk ? dumpLevel : dumpLevel & DL_EXCLUDE_ZERO;
    this.walk = walk;
    this.fallbackReason = fallbackReason;
    this.strict = opts.strict ?? false;
    this.cycleWalk = opts.cycleWalk ?? true;
    this.walkThreads = Math.max(1, Math.floor(opts.walkThreads ?? 1));
    this.maxMapnr = walk?.layout.maxMapnr ?? vmcore.maxMapnr;
    const unit = walk?.largestRange ?? 8;
    const want = opts.cyclePfns ?? Math.max(DEFAULT_CYCLE_PFNS, unit);
    this.cyclePfns = Math.max(8, Math.ceil(want / 8) * 8);
  }

  get counts(): PageClassCounts {
    const sum = emptyCounts();
    for (const c of this.cycleCounts.values()) {
      for (const k of Object.keys(sum) as (keyof PageClassCounts)[]) sum[k] += c[k];
    }
    return sum;
  }

  fillCycle(start: number, end: number, bitmap: Buffer, sink?: KernelPageSink): void {
    if (start % 8 !== 0 || end <= start) throw new RangeError(`fillCycle: bad cycle [${start}, ${end})`);
    const counts = emptyCounts();
    fillFirstBitmap(this.vmcore, start, end, bitmap);
    const walk = this.walk;
    if (sink) sink.walked = -1;
    if (walk?.needed && start < this.failedFrom) {
      try {
        const carry = this.carryInto(start);
        const out = this.walkCycle(walk, start, end, carry, bitmap, counts, sink);
        this.carries.set(end, out);
        if (sink && walk.native) sink.walked = start;
      } catch (err) {
        if (this.strict) throw err;
        // Keep every page of this cycle and the rest: a dump is never lost because of the filter.
        this.failedFrom = start;
        this.fallbackReason ??= describeError(err);
        fillFirstBitmap(this.vmcore, start, end, bitmap);
        for (const k of Object.keys(counts) as (keyof PageClassCounts)[]) counts[k] = 0;
      }
    }
    counts.dumpable = popcount(bitmap, end - start);
    this.cycleCounts.set(start, counts);
  }

  /** The carry at `start`: known from the cycle before, else computed by walking the cycles up to it. */
  private carryInto(start: number): Carry {
    if (start === 0) return NO_CARRY;
    const known = this.carries.get(start);
    if (known) return known;
    // Writers go in order; a random start re-walks from the last known point with a scratch bitmap.
    let from = 0;
    for (const k of this.carries.keys()) if (k < start && k > from) from = k;
    let carry = from === 0 ? NO_CARRY : this.carries.get(from)!;
    const scratch = Buffer.alloc(Math.ceil(this.cyclePfns / 8));
    for (let s = from; s < start; s += this.cyclePfns) {
      const e = Math.min(s + this.cyclePfns, start);
      carry = this.walkCycle(this.walk!, s, e, carry, scratch.fill(0), emptyCounts());
      this.carries.set(e, carry);
    }
    return carry;
  }

  private walkCycle(walk: MemMapWalk, start: number, end: number, carry: Carry, bitmap: Buffer, counts: PageClassCounts, sink?: KernelPageSink): Carry {
    const out: Carry = { clearEnd: 0, skipEnd: 0 };
    const clear = (from: number, to: number, cls: PageClass) => {
      const a = Math.max(from, start);
      const b = Math.min(to, end);
      if (b > a) {
        clearBits(bitmap, a - start, b - start);
        counts[cls] += b - a;
      }
    };
    // Pages a range from the previous cycle covers (class unknown here: counted where it started).
    const clearCarried = () => { if (Math.min(carry.clearEnd, end) > start) clearBits(bitmap, 0, Math.min(carry.clearEnd, end) - start); };
    const addNativeCounts = () => { CLASS_BY_CODE.forEach((cls, k) => { counts[cls] += walk.native!.counts[k]!; }); };
    // A range from an earlier cycle can reach past this one too.
    const carryOn = () => { if (carry.clearEnd > end) out.clearEnd = Math.max(out.clearEnd, carry.clearEnd); };
    const cycle = walk.native?.cycle;
    const plan = cycle && this.cycleWalk ? this.cyclePlan(walk, start, end, carry) : undefined;
    if (cycle && plan) {
      walk.native!.counts.fill(0);
      const before = sink ? Float64Array.from(sink.state) : undefined;
      const err = cycle(plan, this.vmcore.fd!, this.vmcore.mappedReads ?? false, bitmap, start, end, sink ? 1 : this.walkThreads, sink);
      if (err === 0) {
        clearCarried();
        addNativeCounts();
        const o = walk.native!.out;
        if (o[0]! > end) out.clearEnd = o[0]!;
        if (o[1]! > end) out.skipEnd = o[1]!;
        carryOn();
        this.walks.cycle++;
        return out;
      }
      // A read failed: walk the cycle again a block at a time, reading here (where a failure is named).
      fillFirstBitmap(this.vmcore, start, end, bitmap);
      if (sink && before) sink.state.set(before);
    }
    clearCarried();
    walk.native?.counts.fill(0);
    const sections = walk.layout.sections;
    const pps = walk.layout.pagesPerSection;
    for (let nr = Math.floor(start / pps); nr < sections.length && nr * pps < end; nr++) {
      const sec = sections[nr];
      if (sec.memMap === undefined) continue;
      let pfn = Math.max(sec.pfnStart, start);
      if (sec.pfnStart < start && carry.skipEnd > pfn) pfn = carry.skipEnd;
      const stop = Math.min(sec.pfnEnd, end);
      const reader = new StructPageReader(walk, sec);
      const native = walk.native;
      while (pfn < stop) {
        if (!this.inSegs(pfn)) {
          pfn = Math.min(stop, this.nextInSegs(pfn));
          continue;
        }
        const at = reader.at(pfn);
        if (native) {
          // The rest of this block of struct pages inside this PT_LOAD, classified in one call.
          const blockStart = pfn - (pfn % PGMM_CACHED);
          const load = this.vmcore.loads[this.lastSeg]!;
          const limit = Math.min(stop, blockStart + PGMM_CACHED, Math.ceil((load.paddr + load.memSize) / this.vmcore.pageSize));
          native.walk(reader.buffer, blockStart, pfn, limit, sec.pfnEnd, bitmap, start, end, sink);
          const o = native.out;
          if (o[1]! > end) {
            out.clearEnd = Math.max(out.clearEnd, o[1]!);
            if (sec.pfnEnd > end) out.skipEnd = o[1]!;
          }
          pfn = o[0]!;
          continue;
        }
        const next = pfn % PGMM_CACHED !== PGMM_CACHED - 1 && pfn + 1 < sec.pfnEnd ? at + walk.rules.sizePage : -1;
        const d = classifyPage(walk.rules, this.dumpLevel, reader.buffer, at, next, pfn);
        if (d === undefined || d === 'tail') {
          pfn++;
          continue;
        }
        const rangeEnd = pfn + d.nrPages;
        clear(pfn, rangeEnd, d.cls);
        if (rangeEnd > end) {
          out.clearEnd = Math.max(out.clearEnd, rangeEnd);
          if (sec.pfnEnd > end) out.skipEnd = rangeEnd;
        }
        pfn = rangeEnd;
      }
    }
    if (walk.native) addNativeCounts();
    carryOn();
    if (walk.native) this.walks.block++;
    else this.walks.typescript++;
    return out;
  }

  /**
   * The cycle's walk as page-walk.cc walkCycle takes it: per section with a mem_map, where its walk
   * starts (after a range carried from the cycle before), its pfns inside PT_LOADs, and where in the
   * vmcore file the struct pages it reads are. Undefined when the addon cannot read them itself
   * (PT_LOADs that overlap, struct pages not mapped or not in the file): then they are read here, a
   * block at a time, and a failure is named as it always was.
   */
  private cyclePlan(walk: MemMapWalk, start: number, end: number, carry: Carry): Float64Array | undefined {
    const v = this.vmcore;
    if (!v.fileSpans || v.fd === undefined || v.fd < 0) return undefined;
    const ps = v.pageSize;
    const size = walk.rules.sizePage;
    // inSegs() as pfn ranges: the pfns whose first byte lies in each PT_LOAD (sorted by paddr).
    const segs: number[] = [];
    for (const l of v.loads) {
      const lo = Math.ceil(l.paddr / ps), hi = Math.ceil((l.paddr + l.memSize) / ps);
      if (hi <= lo) continue;
      if (segs.length > 0 && lo < segs[segs.length - 1]!) return undefined;
      segs.push(lo, hi);
    }
    const plan: number[] = [0];
    const pps = walk.layout.pagesPerSection;
    const sections = walk.layout.sections;
    try {
      for (let nr = Math.floor(start / pps); nr < sections.length && nr * pps < end; nr++) {
        const sec = sections[nr]!;
        if (sec.memMap === undefined) continue;
        const from = Math.max(sec.pfnStart, start);
        const stop = Math.min(sec.pfnEnd, end);
        const first = sec.pfnStart < start && carry.skipEnd > from ? carry.skipEnd : from;
        const own: number[] = [];
        for (let k = 0; k < segs.length; k += 2) {
          const a = Math.max(segs[k]!, from), b = Math.min(segs[k + 1]!, stop);
          if (b > a) own.push(a, b);
        }
        if (own.length === 0) continue;
        // What the walk reads: from a pfn to its block's end (or the section's), so up to the end of
        // each piece's last block.
        const extents: number[] = [];
        let readTo = -1;
        for (let k = 0; k < own.length; k += 2) {
          const a = Math.max(own[k]!, readTo);
          const b = Math.min(Math.ceil(own[k + 1]! / PGMM_CACHED) * PGMM_CACHED, sec.pfnEnd);
          if (b <= a) continue;
          readTo = b;
          const byteFrom = (a - sec.pfnStart) * size;
          walk.memory.physRanges(sec.memMap + BigInt(byteFrom), (b - a) * size, (pa, n, done) => {
            let at = byteFrom + done;
            v.fileSpans!(pa, n, (fileOffset, bytes) => {
              if (fileOffset < 0) throw new RangeError('struct pages outside the file');
              const last = extents.length - 3;
              // One extent for what lies in one piece of the file.
              if (last >= 0 && extents[last + 1] === at && extents[last + 2]! + (at - extents[last]!) === fileOffset) extents[last + 1] = at + bytes;
              else extents.push(at, at + bytes, fileOffset);
              at += bytes;
            });
          });
        }
        plan.push(sec.pfnStart, sec.pfnEnd, first, own.length / 2, extents.length / 3, ...own, ...extents);
        plan[0]!++;
      }
    } catch {
      return undefined;
    }
    return Float64Array.from(plan);
  }

  /** The first pfn after `pfn` (which is in no PT_LOAD) whose first byte lies in one; Infinity if none. */
  private nextInSegs(pfn: number): number {
    const ps = this.vmcore.pageSize;
    let next = Infinity;
    for (const l of this.vmcore.loads) {
      const first = Math.ceil(l.paddr / ps);
      if (first > pfn && first < next && l.memSize > (first * ps - l.paddr)) next = first;
    }
    return next;
  }

  /** makedumpfile's is_in_segs(): the pfn's first byte lies in a PT_LOAD. */
  private inSegs(pfn: number): boolean {
    const pa = pfn * this.vmcore.pageSize;
    const loads = this.vmcore.loads;
    // The walk goes up in pfn order: the load of the last hit usually holds the next pfn too.
    const last = loads[this.lastSeg];
    if (last && pa >= last.paddr && pa < last.paddr + last.memSize) return true;
    for (let k = 0; k < loads.length; k++) {
      const l = loads[k]!;
      if (pa >= l.paddr && pa < l.paddr + l.memSize) { this.lastSeg = k; return true; }
    }
    return false;
  }
}

/**
 * makedumpfile's 1st bitmap for [start, end): pfns of each PT_LOAD with data (Vmcore.pfnHasData),
 * set range by range rather than pfn by pfn.
 */
export function fillFirstBitmap(vmcore: Vmcore, start: number, end: number, bitmap: Buffer): void {
  bitmap.fill(0, 0, Math.ceil((end - start) / 8));
  const ps = vmcore.pageSize;
  for (const l of vmcore.loads) {
    const a = Math.max(start, Math.floor(l.paddr / ps));
    const b = Math.min(end, loadDataEndPfn(l, ps, vmcore.partialPages));
    // A load outside the cycle: a - start can pass 2^31 (a load at 8 TiB), where the bit arithmetic wraps.
    if (b > a) setBits(bitmap, a - start, b - start);
  }
}

function clearBits(bitmap: Buffer, from: number, to: number): void {
  let i = from;
  while (i < to && i & 7) { bitmap[i >> 3] &= ~(1 << (i & 7)); i++; }
  // Buffer.fill costs more than a loop for the few bytes of most ranges.
  const full = (to - i) >> 3;
  if (full > 64) { bitmap.fill(0, i >> 3, (i >> 3) + full); i += full * 8; }
  for (; i + 8 <= to; i += 8) bitmap[i >> 3] = 0;
  while (i < to) { bitmap[i >> 3] &= ~(1 << (i & 7)); i++; }
}

function setBits(bitmap: Buffer, from: number, to: number): void {
  let i = from;
  while (i < to && i & 7) { bitmap[i >> 3] |= 1 << (i & 7); i++; }
  const full = (to - i) >> 3;
  if (full > 0) { bitmap.fill(0xff, i >> 3, (i >> 3) + full); i += full * 8; }
  while (i < to) { bitmap[i >> 3] |= 1 << (i & 7); i++; }
}

/** Struct pages of one section, read a 512-page block at a time like makedumpfile's page cache. */
class StructPageReader {
  readonly buffer: Buffer;
  private blockStart = -1;
  private readFrom = -1;
  private readonly walk: MemMapWalk;
  private readonly sec: MemMapSection;

  constructor(walk: MemMapWalk, sec: MemMapSection) {
    this.walk = walk;
    this.sec = sec;
    this.buffer = Buffer.alloc(PGMM_CACHED * walk.rules.sizePage);
  }

  /** Offset of pfn's struct page in `buffer`, reading its block (from pfn to the block end) if needed. */
  at(pfn: number): number {
    const block = pfn - (pfn % PGMM_CACHED);
    const size = this.walk.rules.sizePage;
    if (block !== this.blockStart || pfn < this.readFrom) {
      const to = Math.min(block + PGMM_CACHED, this.sec.pfnEnd);
      const vaddr = this.sec.memMap! + BigInt((pfn - this.sec.pfnStart) * size);
      const into = this.buffer.subarray((pfn - block) * size, (to - block) * size);
      let lost;
      try {
        // The data of some page of mem_map may be lost (EIO, a memory error, the file cut short): its
        // struct pages alone are not classified, the walk goes on.
        lost = this.walk.memory.readVirtSalvaging(vaddr, (to - pfn) * size, into);
      } catch (err) {
        throw this.unreadable(pfn, vaddr, err);
      }
      // The struct pages in a page that could not be read, and any that straddle its edge, are
      // zeros: a struct page of zeros is one no rule excludes (no flags, no mapping, no page type, no
      // compound head), so those pfns are kept, as without a filter.
      for (const l of lost) {
        const first = Math.floor(l.at / size), end = Math.ceil((l.at + l.bytes) / size);
        into.fill(0, first * size, Math.min(into.length, end * size));
        this.walk.lost.add(pfn + first, pfn + end, l.reason);
      }
      this.blockStart = block;
      this.readFrom = pfn;
    }
    return (pfn - block) * size;
  }

  private unreadable(pfn: number, vaddr: bigint, err: unknown): LastwordError {
    const why = err instanceof LastwordError ? err.oneLine() : String(err);
    return new LastwordError('EFILTER_MEMMAP', `${this.walk.vmcore.file}: cannot read struct page of pfn 0x${pfn.toString(16)} at 0x${vaddr.toString(16)}: ${why}`, { where: { file: this.walk.vmcore.file, pfn }, cause: err });
  }
}

/**
 * The pfns whose struct pages could not be read (their page of mem_map failed with a data error),
 * as ascending, merged [from, to) ranges: the same block may be read again (a cycle's walk done over,
 * the carry into a cycle worked out), so a range is noted once however often it is met.
 */
export class LostStructPages {
  private readonly ranges: Array<[number, number]> = [];
  reason = '';

  add(from: number, to: number, reason: string): void {
    if (this.ranges.length === 0) this.reason = reason;
    let i = this.ranges.findIndex((r) => r[1] >= from);
    if (i < 0) i = this.ranges.length;
    if (i < this.ranges.length && this.ranges[i]![0] <= to) {
      const r = this.ranges[i]!;
      r[0] = Math.min(r[0], from);
      r[1] = Math.max(r[1], to);
      while (i + 1 < this.ranges.length && this.ranges[i + 1]![0] <= r[1]) r[1] = Math.max(r[1], this.ranges.splice(i + 1, 1)[0]![1]);
    } else {
      this.ranges.splice(i, 0, [from, to]);
    }
  }

  /** pfns noted, the first of them and the first failure's reason; undefined when none. */
  summary(): { pfns: number; firstPfn: number; reason: string } | undefined {
    if (this.ranges.length === 0) return undefined;
    return { pfns: this.ranges.reduce((n, [a, b]) => n + b - a, 0), firstPfn: this.ranges[0]![0], reason: this.reason };
  }
}
