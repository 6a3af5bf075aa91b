// The crash-first order for ELF output: an ELF dump cut short (a full target, a capture killed)
// opens in crash when the pages crash reads at startup come first in the file, as in a
// kdump-compressed dump written crash-first (filter/crash-first.ts gives the tiers). A PT_LOAD is
// one run of file data, so the segments are cut where the tiers' pages begin and end, and the
// pieces are laid out tier by tier; the program headers keep their order (by address), each
// pointing at its piece. The same pages, the same bytes per address; only p_offset and the number
// of PT_LOADs change.
import type { ElfSegment } from './elf-writer.ts';

/** Pages between two pages of the tiers that are written with them, so PT_LOADs stay few. */
const TIER_GAP_PAGES = 16;
/**
 * Runs of tier pages cut out at most (each makes up to two PT_LOADs of 56 bytes): past that, on a
 * machine whose tiers are scattered, the runs of the first tiers are kept and the others' pages
 * stay in address order.
 */
const MAX_RUNS = 1 << 14;

/** A segment of the ELF output and the tier its data is written with (undefined: after every tier, in order). */
export interface RankedSegment extends ElfSegment {
  rank?: number;
}

/**
 * Cuts `segments` (the pfn-order plan) at the tiers' runs of pages; each piece takes the first
 * tier among its pages. Runs of tier pages closer than TIER_GAP_PAGES merge, with the pages between.
 */
export function cutForTiers(segments: readonly ElfSegment[], tiers: readonly Uint32Array[], pageSize: number): RankedSegment[] {
  let runs = tierRuns(tiers, TIER_GAP_PAGES);
  if (runs.length > MAX_RUNS) {
    runs = runs.map((r, i) => ({ r, i })).sort((a, b) => a.r.rank - b.r.rank || a.i - b.i).slice(0, MAX_RUNS)
      .sort((a, b) => a.i - b.i).map((x) => x.r);
  }
  return cut(segments, runs, pageSize);
}

/** The order in which the pieces' data lies in the file: tier by tier, each in header order. */
export function fileOrder(segments: readonly RankedSegment[]): number[] {
  return segments.map((_, i) => i).sort((a, b) => (segments[a]!.rank ?? Infinity) - (segments[b]!.rank ?? Infinity) || a - b);
}

/** Runs [start, end) of tier pfns, ascending, with their first tier; pfns closer than `gap` join. */
function tierRuns(tiers: readonly Uint32Array[], gap: number): { start: number; end: number; rank: number }[] {
  let total = 0;
  for (const t of tiers) total += t.length;
  // pfn * 4 + tier, sorted as one list (tiers are disjoint; 4 tiers at most fit the low bits).
  const keys = new Float64Array(total);
  let n = 0;
  tiers.forEach((t, rank) => { for (const pfn of t) keys[n++] = pfn * 4 + Math.min(rank, 3); });
  keys.sort();
  const runs: { start: number; end: number; rank: number }[] = [];
  for (const key of keys) {
    const pfn = Math.floor(key / 4), rank = key % 4;
    const last = runs[runs.length - 1];
    if (last && pfn - last.end < gap) {
      last.end = pfn + 1;
      last.rank = Math.min(last.rank, rank);
    } else {
      runs.push({ start: pfn, end: pfn + 1, rank });
    }
  }
  return runs;
}

function cut(segments: readonly ElfSegment[], runs: { start: number; end: number; rank: number }[], B: number): RankedSegment[] {
  const out: RankedSegment[] = [];
  // Address ranges an earlier segment holds, [paddr, paddr + p_memsz): the kernel-text PT_LOAD comes
  // first and repeats the image's pages of RAM, and crash reads an address from the first PT_LOAD
  // that holds it, so the RAM loads' copy of the image stays unranked, in pfn order. All of the
  // earlier segment's range, its excluded tail too: RAM pieces then never start or end inside a
  // text piece, and each text piece lies inside one RAM piece, as in pfn order (readers, ours
  // included, drop the text PT_LOAD that one RAM PT_LOAD holds). Sorted, disjoint, merged.
  const held: { start: number; end: number }[] = [];
  for (const seg of segments) {
    const end = seg.paddr + seg.size;
    const lo = firstEndingAfter(runs, seg.paddr, B);
    const pieces: RankedSegment[] = [];
    const piece = (from: number, to: number, rank?: number) => {
      if (to <= from) return;
      const last = pieces[pieces.length - 1];
      if (last && last.rank === rank && last.paddr + last.size === from) { last.size += to - from; last.memSize = last.size; return; }
      pieces.push({ paddr: from, vaddr: seg.vaddr + BigInt(from - seg.paddr), size: to - from, memSize: to - from, ...(rank === undefined ? {} : { rank }) });
    };
    let at = seg.paddr;
    for (let r = lo; r < runs.length && runs[r]!.start * B < end; r++) {
      const from = Math.max(runs[r]!.start * B, seg.paddr), to = Math.min(runs[r]!.end * B, end);
      piece(at, from);
      // Inside the run, what an earlier segment holds stays unranked here.
      let x = from;
      for (let k = firstEndingAfter(held, from); k < held.length && held[k]!.start < to; k++) {
        const { start: a, end: b } = held[k]!;
        if (a > x) piece(x, a, runs[r]!.rank);
        piece(Math.max(a, x), Math.min(b, to));
        x = Math.min(b, to);
      }
      piece(x, to, runs[r]!.rank);
      at = to;
    }
    piece(at, end);
    hold(held, seg.paddr, seg.paddr + seg.memSize);
    if (pieces.length === 0) { out.push({ ...seg }); continue; }
    // The excluded pages after the segment's data stay with its last piece (p_memsz beyond p_filesz).
    pieces[pieces.length - 1]!.memSize += seg.memSize - seg.size;
    for (const p of pieces) out.push(p);      // not push(...): a segment may have 100,000s of pieces
  }
  return out;
}

/** Adds [start, end) to `held` (sorted, disjoint), merging it with the ranges it touches. */
function hold(held: { start: number; end: number }[], start: number, end: number): void {
  if (end <= start) return;
  const last = held[held.length - 1];
  // Segments mostly come in address order, each where the last one ended.
  if (!last || last.end < start) { held.push({ start, end }); return; }
  if (last.start <= start) { last.end = Math.max(last.end, end); return; }
  const i = firstEndingAfter(held, start - 1);      // the first range that ends at or after start
  let j = i;
  while (j < held.length && held[j]!.start <= end) j++;
  if (j > i) { start = Math.min(start, held[i]!.start); end = Math.max(end, held[j - 1]!.end); }
  held.splice(i, j - i, { start, end });
}

/** Index of the first of `list` (ascending, disjoint) that ends after `at`; `scale`: their unit in bytes. */
function firstEndingAfter(list: readonly { end: number }[], at: number, scale = 1): number {
  let lo = 0, hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]!.end * scale <= at) lo = mid + 1; else hi = mid;
  }
  return lo;
}
