// Dump level 0: every page that has data in the vmcore (the 1st bitmap). Also what `filter`
// falls back to when the page filter cannot classify pages: save everything, flagged.
import type { PageClassCounts, PageFilter } from '../filter/types.ts';
import type { Vmcore } from '../vmcore/types.ts';

export function fillRamBitmap(vmcore: Vmcore, start: number, end: number, bitmap: Buffer): void {
  bitmap.fill(0, 0, Math.ceil((end - start) / 8));
  for (let pfn = start; pfn < end; pfn++) {
    if (vmcore.pfnHasData(pfn)) {
      const i = pfn - start;
      bitmap[i >> 3] = bitmap[i >> 3]! | (1 << (i & 7));
    }
  }
}

export function ramPageFilter(vmcore: Vmcore, dumpLevel = 0, fallbackReason?: string): PageFilter {
  const counts: PageClassCounts = { zero: 0, cache: 0, cachePrivate: 0, user: 0, free: 0, hwpoison: 0, offline: 0, dumpable: 0 };
  return {
    dumpLevel,
    maxMapnr: vmcore.maxMapnr,
    cyclePfns: 1 << 20,
    counts,
    fallbackReason,
    fillCycle: (start, end, bitmap) => fillRamBitmap(vmcore, start, end, bitmap),
  };
}
