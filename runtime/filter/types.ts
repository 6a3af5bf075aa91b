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
   * cycle asked twice gives the same bits (writers make two passes: count, then write). With `sink`,
   * a native walk also reports the kept slab and PG_reserved pages it classified (pass 1 only).
   */
  fillCycle(start: number, end: number, bitmap: Buffer, sink?: KernelPageSink): void;
  /** Counts per excluded class so far (for `info`, progress and the summary). */
  readonly counts: PageClassCounts;
  /** Set when the filter could not classify (broken VMCOREINFO...) and fell back to level 0. */
  readonly fallbackReason?: string;
  /**
   * Pages whose struct pages could not be read (a page of mem_map lost to EIO or a memory error):
   * kept unclassified, the rest of the walk goes on. How many, the first pfn, the first read's error.
   */
  readonly unclassified?: { pfns: number; firstPfn: number; reason: string };
  /**
   * Cycle walks so far by how they ran: in one native call (`cycle`, the addon reading the struct
   * pages), a native call per block read here (`block`), or the TypeScript loop (`typescript`).
   */
  readonly walks?: { cycle: number; block: number; typescript: number };
}

/**
 * Where a native mem_map walk reports the kept slab and PG_reserved pages of a cycle, for the
 * crash-first order (runtime/filter/crash-first.ts), so that it need not read the struct pages again.
 */
export interface KernelPageSink {
  /**
   * page-walk.cc's KindState: [PG_reserved's bit or -1, slab pfns in `slab`, numbers in `reserved`
   * (runs of PG_reserved pfns as [first, end) pairs), the kind of the last compound head, the pfn
   * its compound ends at].
   */
  readonly state: Float64Array;
  readonly slab: Uint32Array;
  readonly reserved: Uint32Array;
  /** fillCycle sets this to the cycle's start when the walk reported every kept page of the cycle, else -1. */
  walked: number;
}

/** The warning for PageFilter.unclassified. */
export function unclassifiedMessage(u: { pfns: number; firstPfn: number; reason: string }): string {
  return `${u.pfns} page${u.pfns === 1 ? '' : 's'} kept unfiltered: their struct pages could not be read (mem_map; the first of pfn 0x${u.firstPfn.toString(16)}: ${u.reason}); every other page was filtered`;
}
