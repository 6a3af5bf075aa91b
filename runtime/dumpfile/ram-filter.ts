// Dump level 0: every page that has data in the vmcore (the 1st bitmap). Also what `filter`
// falls back to when the page filter cannot classify pages: save everything, flagged.
import { fillFirstBitmap } from '../filter/page-filter.ts';
import type { PageClassCounts, PageFilter } from '../filter/types.ts';
import type { Vmcore } from '../vmcore/types.ts';

export function ramPageFilter(vmcore: Vmcore, dumpLevel = 0, fallbackReason?: string): PageFilter {
  const counts: PageClassCounts = { zero: 0, cache: 0, cachePrivate: 0, user: 0, free: 0, hwpoison: 0, offline: 0, dumpable: 0 };
  return {
    dumpLevel,
    maxMapnr: vmcore.maxMapnr,
    cyclePfns: 1 << 20,
    counts,
    fallbackReason,
    fillCycle: (start, end, bitmap) => fillFirstBitmap(vmcore, start, end, bitmap),
  };
}
