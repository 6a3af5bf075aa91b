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
/** PT_LOADs at most after the cut (56 bytes each): the gap grows until the pieces fit. */
const MAX_SEGMENTS = 1 << 15;

/** A segment of the ELF output and the tier its data is written with (undefined: after every tier, in order). */
export interface RankedSegment extends ElfSegment {
  rank?: number;
}

/**
 * Cuts `segments` (the pfn-order plan) at the tiers' runs of pages; each piece takes the first
 * tier among its pages. Runs of one tier closer than the gap merge, with the pages between.
 */
export function cutForTiers(segments: readonly ElfSegment[], tiers: readonly Uint32Array[], pageSize: number): RankedSegment[] {
  for (let gap = TIER_GAP_PAGES; ; gap *= 4) {
    const pieces = cut(segments, tierRuns(tiers, gap), pageSize);
    if (pieces.length <= MAX_SEGMENTS || gap > 1 << 24) return pieces;
  }
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
  // Address ranges already given a tier by an earlier segment: the kernel-text PT_LOAD comes first
  // and repeats the image's pages of RAM, and crash reads an address from the first PT_LOAD that
  // holds it, so the RAM loads' copy of the image stays in pfn order.
  const ranked: [number, number][] = [];
  for (const seg of segments) {
    const end = seg.paddr + seg.size;
    // The first run that ends after the segment's start.
    let lo = 0, hi = runs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (runs[mid]!.end * B <= seg.paddr) lo = mid + 1; else hi = mid;
    }
    const pieces: RankedSegment[] = [];
    const piece = (from: number, to: number, rank?: number) => {
      if (to <= from) return;
      const last = pieces[pieces.length - 1];
      if (last && last.rank === rank && last.paddr + last.size === from) { last.size += to - from; last.memSize = last.size; return; }
      pieces.push({ paddr: from, vaddr: seg.vaddr + BigInt(from - seg.paddr), size: to - from, memSize: to - from, ...(rank === undefined ? {} : { rank }) });
    };
    const mine: [number, number][] = [];
    let at = seg.paddr;
    for (let r = lo; r < runs.length && runs[r]!.start * B < end; r++) {
      const from = Math.max(runs[r]!.start * B, seg.paddr), to = Math.min(runs[r]!.end * B, end);
      piece(at, from);
      // Inside the run, what an earlier segment ranked stays unranked here.
      let x = from;
      for (const [a, b] of ranked) {
        if (b <= x || a >= to) continue;
        if (a > x) { piece(x, a, runs[r]!.rank); mine.push([x, a]); }
        piece(Math.max(a, x), Math.min(b, to));
        x = Math.min(b, to);
      }
      if (x < to) { piece(x, to, runs[r]!.rank); mine.push([x, to]); }
      at = to;
    }
    piece(at, end);
    ranked.push(...mine);
    ranked.sort((a, b) => a[0] - b[0]);
    if (pieces.length === 0) { out.push({ ...seg }); continue; }
    // The excluded pages after the segment's data stay with its last piece (p_memsz beyond p_filesz).
    pieces[pieces.length - 1]!.memSize += seg.memSize - seg.size;
    out.push(...pieces);
  }
  return out;
}
