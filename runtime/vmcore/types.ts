// What the later stages (filter, dumpfile, dmesg) see of a vmcore: the ELF64 core of the crashed
// kernel, as /proc/vmcore or any ELF vmcore file. Physical addresses and pfns are JS numbers
// (exact up to 2^53, x86_64 physical memory stops at 2^52); kernel virtual addresses are bigint.

export interface LoadSegment {
  paddr: number;        // p_paddr: the physical address of the first byte
  vaddr: bigint;        // p_vaddr
  offset: number;       // p_offset: where the bytes are in the file
  fileSize: number;     // p_filesz
  memSize: number;      // p_memsz (> fileSize: the gap has no data)
}

/**
 * The end (exclusive) of a PT_LOAD's pfns with data, as makedumpfile's 1st bitmap has them: they
 * start at floor(p_paddr / pageSize) and end at floor(end of p_memsz) (create_bitmap_from_memhole;
 * in one cycle, create_1st_bitmap_file: ceil, when `partialPages`), cut at ceil(end of p_filesz)
 * (exclude_nodata_pages, 1.7.7+ rounding). Pure; Vmcore.pfnHasData and the 1st bitmap use it.
 */
export function loadDataEndPfn(l: LoadSegment, pageSize: number, partialPages: boolean): number {
  const memEnd = (l.paddr + l.memSize) / pageSize;
  return Math.min(partialPages ? Math.ceil(memEnd) : Math.floor(memEnd), Math.ceil((l.paddr + l.fileSize) / pageSize));
}

/** VMCOREINFO, parsed. Missing keys are undefined; never assume a key exists. */
export interface Vmcoreinfo {
  text: string;                              // the note text, verbatim
  osrelease?: string;
  pageSize?: number;
  crashTime?: number;
  kernelOffset?: bigint;
  buildId?: string;
  symbol: Map<string, bigint>;               // SYMBOL(name)
  size: Map<string, number>;                 // SIZE(type)
  offset: Map<string, number>;               // OFFSET(type.member)
  length: Map<string, number>;               // LENGTH(name)
  number: Map<string, bigint>;               // NUMBER(name), signed
  raw: Map<string, string>;                  // every KEY=value line
  /** malformed lines, left out (their keys are missing), one message each; Vmcore.problems carries them to the caller */
  problems: string[];
}

export interface Vmcore {
  readonly file: string;
  readonly pageSize: number;
  /** pfn count: roundup(highest paddr + memSize, pageSize) / pageSize */
  readonly maxMapnr: number;
  /** The PT_NOTE segment bytes as they are in the file (all NT_PRSTATUS notes + VMCOREINFO). */
  readonly notes: Buffer;
  /** Offset of the VMCOREINFO note's descriptor (its text) inside `notes`, and its length. */
  readonly vmcoreinfoDescOffset: number;
  readonly vmcoreinfoDescSize: number;
  readonly vmcoreinfo: Vmcoreinfo;
  /**
   * Damage the reader worked around, one message each, for the caller to warn about: notes cut
   * short, VMCOREINFO's malformed lines (vmcoreinfo.problems), a PAGESIZE or p_memsz it replaced.
   */
  readonly problems: readonly string[];
  /** Number of NT_PRSTATUS notes (CPUs online at the crash). */
  readonly nrCpus: number;
  /** RAM PT_LOADs, de-duplicated (the kernel-text PT_LOAD that repeats RAM is dropped). */
  readonly loads: readonly LoadSegment[];
  /**
   * The PT_LOADs that map the kernel image (p_vaddr at or above __START_KERNEL_map, with data), as
   * the file has them: the ELF writer keeps them, as makedumpfile -E does, for tools that read the
   * kernel's text through its virtual addresses.
   */
  readonly kernelText: readonly LoadSegment[];
  /** Reads `count` whole pages from `pfn` into `into` (count * pageSize bytes); pages with no data read as zero. */
  readPages(pfn: number, count: number, into: Buffer): void;
  /**
   * Where the bytes of `count` pages from `pfn` are in the file, in order: calls `add(fileOffset,
   * bytes)` per piece, fileOffset -1 for pieces with no data (they read as zero). Lets a reader on
   * another thread (the codecs' compression threads) pread the pages itself, with `fd`.
   */
  pageSpans?(pfn: number, count: number, add: (fileOffset: number, bytes: number) => void): void;
  /** pageSpans for any `length` bytes of physical memory from `paddr`. */
  fileSpans?(paddr: number, length: number, add: (fileOffset: number, bytes: number) => void): void;
  /** Reads of the file go through mappings (/proc/vmcore): pageSpans readers should map it too. */
  readonly mappedReads?: boolean;
  /** The open vmcore file, for pageSpans readers. */
  readonly fd?: number;
  /** Reads physical memory; throws a LastwordError naming the address when it is not in the file. */
  readPhys(paddr: number, length: number, into?: Buffer): Buffer;
  /**
   * Is there data for this pfn in the file (the 1st bitmap)? As makedumpfile: a page beyond
   * p_filesz is not; a page only partly covered at the end of a PT_LOAD (e.g. the one ending at
   * 0x9fc00) is not, unless `partialPages`.
   */
  pfnHasData(pfn: number): boolean;
  /**
   * makedumpfile keeps a PT_LOAD's partial last page (read zero-filled) when it works in one cycle
   * with its bitmaps in a file, and not on its cyclic path (see cli/filter.ts makedumpfileOneCycle,
   * which sets this before a dump is written). Default false.
   */
  partialPages: boolean;
  close(): void;
}
