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

  constructor(vmcore: Vmcore, dumpLevel: number, walk: MemMapWalk | undefined, fallbackReason: string | undefined, opts: PageFilterOptions) {
    this.vmcore = vmcore;
    // Fallen back before the first cycle: only the writer's zero-page check (bit 1) still applies,
    // so the header should say so. A fallback during the walk keeps the level of the cycles before.
    this.dumpLevel = walk ? dumpLevel : dumpLevel & DL_EXCLUDE_ZERO;
    this.walk = walk;
    this.fallbackReason = fallbackReason;
    this.strict = opts.strict ?? false;
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
    if (Math.min(carry.clearEnd, end) > start) clearBits(bitmap, 0, Math.min(carry.clearEnd, end) - start);
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
    if (walk.native) CLASS_BY_CODE.forEach((cls, k) => { counts[cls] += walk.native!.counts[k]!; });
    // A range from an earlier cycle can reach past this one too.
    if (carry.clearEnd > end) out.clearEnd = Math.max(out.clearEnd, carry.clearEnd);
    return out;
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
    setBits(bitmap, a - start, b - start);
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
      try {
        this.walk.memory.readVirt(vaddr, (to - pfn) * size, this.buffer.subarray((pfn - block) * size, (to - block) * size));
      } catch (err) {
        const why = err instanceof LastwordError ? err.oneLine() : String(err);
        throw new LastwordError('EFILTER_MEMMAP', `${this.walk.vmcore.file}: cannot read struct page of pfn 0x${pfn.toString(16)} at 0x${vaddr.toString(16)}: ${why}`, { where: { file: this.walk.vmcore.file, pfn }, cause: err });
      }
      this.blockStart = block;
      this.readFrom = pfn;
    }
    return (pfn - block) * size;
  }
}
