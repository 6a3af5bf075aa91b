// The page filter's product: the 2nd bitmap of makedumpfile (bit set = page is dumped), made in
// cycles so memory stays bounded whatever the RAM size.

export interface PageClassCounts {
  zero: number;        // only counted by writers that look at page contents (dump level bit 1)
  cache: number;       // non-private page cache (bit 2)
  cachePrivate: number; // private page cache (bit 4)
  user: number;        // anonymous + hugetlbfs (bit 8)
  free: number;        // buddy / unaccepted (bit 16)
  hwpoison: number;
  offline: number;
  dumpable: number;
}

export interface PageFilter {
  readonly dumpLevel: number;
  readonly maxMapnr: number;
  /** pfns per cycle; a multiple of 8. Writers ask for the bitmap one cycle at a time. */
  readonly cyclePfns: number;
  /**
   * Fills `bitmap` (LSB first: bit i of byte i>>3 is pfn start+i) for [start, end) with the 2nd
   * bitmap: 1 = dump the page. `start` is a multiple of 8. Pure with respect to its inputs: the same
   * cycle asked twice gives the same bits (writers make two passes: count, then write).
   */
  fillCycle(start: number, end: number, bitmap: Buffer): void;
  /** Counts per excluded class so far (for `info`, progress and the summary). */
  readonly counts: PageClassCounts;
  /** Set when the filter could not classify (broken VMCOREINFO...) and fell back to level 0. */
  readonly fallbackReason?: string;
}
