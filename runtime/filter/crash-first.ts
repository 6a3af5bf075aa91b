// The order in which a kdump-compressed dump's pages are written, so that a dump cut short (a
// target that fills up, a capture killed or timed out) still opens in crash: first what crash
// reads to open a dump and show sys, log, ps and the panic backtrace, then the rest in pfn order.
// In pfn order, as makedumpfile writes, a cut dump does not open at all: KASLR often puts the
// kernel image and the per-CPU areas at the top of RAM, so they come last.
//
// Tiers, each in pfn order, from what the crashed kernel's own memory says (no vmlinux needed):
//   0. the kernel image's non-executable pages (.rodata, .data, .bss: the variables crash reads);
//      PG_reserved pages outside the mem_map and the image (per-CPU areas, other memblock
//      allocations); the page tables of the kernel half outside the direct map (crash translates
//      vmalloc, module and vmemmap addresses through them); the stack each CPU was on; and the
//      pages those stacks and the PG_reserved pages point to in the direct map (each CPU's current
//      task_struct: crash finds no active task without it);
//   1. the kernel image's text (crash reads functions' code at startup and for bt), and the
//      modules' memory (crash reads each struct module and its kallsyms at startup and stops
//      without them: "page incomplete ... module symbols");
//   2. slab pages, heads and tails (every task_struct for ps, kmem_caches, files, sockets).
// Each source is bounded (the *_FIRST_MAX constants), so a large machine costs a few MiB of pfns.
// Where a sign does not hold (PG_reserved not set on the image's own struct pages) tier 0 is
// smaller: the order never changes which pages are dumped, only when.
import { describeError } from '../errors.ts';
import type { Vmcore } from '../vmcore/types.ts';
import { START_KERNEL_MAP } from '../vmcore/reader.ts';
import { KERNEL_HALF, X86_64Memory } from '../vmcore/x86_64.ts';
import { NT_PRSTATUS, parseNotes } from '../vmcore/elf.ts';
import { findMemMap, type MemMapLayout } from './mem-map.ts';
import { compoundHeadOf, kernelPageKind, pageRules, type PageRules } from './page-rules.ts';
import { KIND_STATE, nativeScanPointers } from './native-walk.ts';
import type { KernelPageSink } from './types.ts';
import { anyBitIn } from './bitmap.ts';
import { PfnList, PfnRanges, ShortRuns, forEachRun, without } from './pfn-lists.ts';

// Bounds, so the order costs little memory and time on a large machine (pfns are 4 bytes each).
/** Kernel page-table pages, PG_reserved pages, slab pages, in their tiers at most. */
const TABLES_FIRST_MAX = 1 << 16;
const RESERVED_FIRST_MAX = 1 << 16;
const SLAB_FIRST_MAX = 1 << 18;
/** Pages pointed to by the CPUs' stacks and the PG_reserved pages (per-CPU areas), at most. */
const POINTED_FIRST_MAX = 1 << 14;
/** Pages mapped in the module area, in the text's tier at most (a few hundred modules take tens of MiB). */
const MODULES_FIRST_MAX = 1 << 15;
/** x86_64 MODULES_END: the module area is [the end of the kernel image's mapping, the fixmap). */
const MODULES_END = 0xffffffffff000000n;
/** PG_reserved pages read for pointers at most, and at once. */
const RESERVED_SCAN_MAX = 1 << 13;
/**
 * Runs of PG_reserved pages read for pointers, and put in tier 0, at most this long: a per-CPU
 * area's used part is shorter, the printk buffer of a large machine too; the swiotlb buffer and
 * the boot-time hash tables (dentries, inodes) are longer, and crash does not read them at startup.
 */
const SCAN_RUN_MAX = 256;
const TIER0_RUN_MAX = 1024;
const SCAN_READ_PAGES = 16;
/** Pages taken from each such pointer: an object may span pages (a task_struct is ~10 KiB). */
const OBJECT_PAGES = 3;
/** x86_64 THREAD_SIZE (16 KiB; 32 KiB with KASAN, whose lower half the stack pointer then shows). */
const THREAD_SIZE = 16384n;
/** struct pages read at once. */
const BLOCK_PAGES = 512;
// x86_64 struct elf_prstatus: pr_reg at 112, rsp is user_regs_struct index 19.
const PRSTATUS_RSP = 112 + 19 * 8;

/** What the kdump-compressed writer asks of a page order: see every cycle's bitmap, then give the tiers. */
export interface PageOrder {
  /** Pass 1 calls this with each cycle's 2nd bitmap (bit i = pfn start+i is dumped), in pfn order. */
  observe(start: number, end: number, bitmap: Buffer): void;
  /** After pass 1: the pfns to write first, tier by tier, each ascending; no pfn in two tiers. */
  tiers(): Uint32Array[];
  /** Pass 1 hands this to the filter's fillCycle: a native walk reports the pages `observe` looks for there. */
  readonly sink?: KernelPageSink;
}

/**
 * The crash-first order for `vmcore`, or undefined (pages in pfn order) when it cannot be made.
 * It never costs the dump: a failure while the bitmaps go by only says so through `warn` and
 * leaves the pages in pfn order.
 */
export function crashFirstOrder(vmcore: Vmcore, warn: (message: string) => void): PageOrder | undefined {
  const fallBack = (err: unknown) => warn(`${vmcore.file}: pages are written in pfn order, not crash-first: ${describeError(err)}`);
  let order: CrashFirstOrder;
  try {
    order = new CrashFirstOrder(vmcore);
  } catch (err) {
    fallBack(err);
    return undefined;
  }
  let failed = false;
  return {
    sink: order.sink,
    observe(start, end, bitmap) {
      if (failed) return;
      try {
        order.observe(start, end, bitmap);
      } catch (err) {
        failed = true;
        fallBack(err);
      }
    },
    tiers() {
      if (failed) return [];
      try {
        return order.tiers();
      } catch (err) {
        fallBack(err);
        return [];
      }
    },
  };
}

export interface CrashFirstOptions {
  /** Scan for pointers in the native addon, and take slab and PG_reserved pages from a native walk, when it loads (default); false = TypeScript only. */
  native?: boolean;
}

export class CrashFirstOrder implements PageOrder {
  private readonly vmcore: Vmcore;
  private readonly memory: X86_64Memory;
  private readonly rules: PageRules;
  private readonly layout: MemMapLayout;
  /** The pages that hold the mem_map, and the image's: PG_reserved too, but in tiers of their own or none. */
  private readonly memMapPages: PfnRanges;
  private readonly imagePages: PfnRanges;
  /** PG_reserved's bit: PG_private - 1 in every kernel since 2.6 (VMCOREINFO has no NUMBER for it); -1 = not trusted. */
  private readonly pgReserved: number;
  private readonly tier0 = new PfnList(Infinity);      // bounded by its sources' own bounds
  private readonly text = new PfnList(Infinity);       // bounded by the image
  private readonly modules = new PfnList(MODULES_FIRST_MAX);
  private readonly slab = new PfnList(SLAB_FIRST_MAX);
  private readonly reserved = new ShortRuns(RESERVED_FIRST_MAX, TIER0_RUN_MAX);
  private readonly pointedPages = new Set<number>();
  /** Struct pages read by observe() when no native walk reported the cycle. */
  private block: Buffer | undefined;
  private readonly page: Buffer;
  readonly sink: KernelPageSink | undefined;
  private readonly scan: ReturnType<typeof nativeScanPointers>;
  private scanOut: Uint32Array | undefined;

  constructor(vmcore: Vmcore, opts: CrashFirstOptions = {}) {
    this.vmcore = vmcore;
    this.scan = (opts.native ?? true) ? nativeScanPointers() : undefined;
    this.memory = new X86_64Memory(vmcore);
    this.rules = pageRules(vmcore.vmcoreinfo, vmcore.file);
    this.layout = findMemMap(vmcore, this.memory);
    this.page = Buffer.alloc(vmcore.pageSize);
    const B = vmcore.pageSize;
    const pfnOf = (pa: number) => Math.floor(pa / B);

    // One walk of the kernel's page tables: the tables themselves, the image's pages and which are
    // executable (NX clear), the modules' pages, and the pages that hold the mem_map (the vmemmap's leaves).
    const memMaps = this.layout.sections.filter((s) => s.memMap !== undefined);
    let vmemmapStart = 1n << 64n, vmemmapEnd = 0n;
    for (const s of memMaps) {
      const end = s.memMap! + BigInt((s.pfnEnd - s.pfnStart) * this.rules.sizePage);
      if (s.memMap! < vmemmapStart) vmemmapStart = s.memMap!;
      if (end > vmemmapEnd) vmemmapEnd = end;
    }
    const memMapRanges: [number, number][] = [];
    const textRanges: [number, number][] = [];
    const imageRanges: [number, number][] = [];
    let tables = 0;
    this.memory.visitKernelTables({
      table: (pa) => { if (tables++ < TABLES_FIRST_MAX) this.tier0.push(pfnOf(pa)); },
      ranges: [
        {
          lo: START_KERNEL_MAP, hi: this.memory.imageEnd,
          leaf: (pa, size, executable) => {
            const range: [number, number] = [pfnOf(pa), pfnOf(pa) + size / B];
            imageRanges.push(range);
            if (executable) textRanges.push(range);
            else for (let p = range[0]; p < range[1]; p++) this.tier0.push(p);
          },
        },
        {
          lo: this.memory.imageEnd, hi: MODULES_END,
          leaf: (pa, size) => { for (let p = pfnOf(pa), end = p + size / B; p < end && this.modules.length < MODULES_FIRST_MAX; p++) this.modules.push(p); },
        },
        { lo: vmemmapStart, hi: vmemmapEnd, leaf: (pa, size) => { memMapRanges.push([pfnOf(pa), pfnOf(pa) + size / B]); } },
      ],
    });
    this.memMapPages = new PfnRanges(memMapRanges);
    this.imagePages = new PfnRanges(imageRanges);
    for (const [s, e] of textRanges) for (let p = s; p < e; p++) this.text.push(p);
    this.pgReserved = this.reservedBitHolds(imageRanges) ? this.rules.pgPrivate - 1 : -1;
    // The addon that scans also reports kinds from its walk. Its lists are scratch for one cycle;
    // memory the walk does not write to is never touched.
    if (this.scan) {
      const state = new Float64Array(KIND_STATE.length);
      state[KIND_STATE.pgReserved] = this.pgReserved;
      this.sink = { state, slab: new Uint32Array(SLAB_FIRST_MAX), reserved: new Uint32Array(RESERVED_FIRST_MAX), walked: -1 };
    }

    // The stack each CPU was on at the crash (the panic backtrace), and what those stacks point to:
    // the current task_structs, and the objects the crash was handling, what one looks at first.
    for (const note of parseNotes(vmcore.notes, vmcore.file, 0)) {
      if (note.name !== 'CORE' || note.type !== NT_PRSTATUS || note.descSize < PRSTATUS_RSP + 8) continue;
      const rsp = vmcore.notes.readBigUInt64LE(note.descOffset + PRSTATUS_RSP);
      if (rsp < KERNEL_HALF) continue;      // a user-space stack pointer: not the kernel's
      // crash reads a task's whole stack, the THREAD_SIZE-aligned block around rsp. An IRQ stack
      // (per-CPU pages vmap'd) is aligned to a page only, so its part in use, [rsp, top), may go on
      // into the next block, up to the guard page after it (6.12, CPU 1 of a CI guest was on one).
      const base = rsp & ~(THREAD_SIZE - 1n);
      const first = rsp & ~BigInt(B - 1);
      const put = (v: bigint): boolean => {
        let pfn: number;
        try {
          pfn = pfnOf(this.memory.vtop(v));
        } catch {
          return false;      // not mapped: nothing to put first
        }
        this.tier0.push(pfn);
        this.addPointed(pfn);
        return true;
      };
      let mapped = true;      // every page from rsp's up to here
      for (let v = base; v < base + THREAD_SIZE; v += BigInt(B)) if (!put(v) && v >= first) mapped = false;
      for (let v = base + THREAD_SIZE; mapped && v < first + THREAD_SIZE; v += BigInt(B)) mapped = put(v);
    }
  }

  /** Adds to tier 0 what page `pfn` points to in the direct map (the next OBJECT_PAGES pages from each pointer). */
  private addPointed(pfn: number): void {
    if (this.pointedPages.size >= POINTED_FIRST_MAX) return;
    try {
      this.vmcore.readPhys(pfn * this.vmcore.pageSize, this.vmcore.pageSize, this.page);
    } catch {
      return;
    }
    this.addPointedFrom(this.page, pfn);
  }

  /** Adds to tier 0 what `pages` (the pages from `pfn`) point to in the direct map. */
  private addPointedFrom(pages: Buffer, pfn: number): void {
    const B = this.vmcore.pageSize;
    const base = this.memory.pageOffset;
    if (base === undefined) return;
    const last = pfn + pages.length / B;
    if (this.scan) {
      const out = this.scanOut ??= new Uint32Array(SCAN_READ_PAGES * B / 8);
      const n = this.scan(pages, base, B, this.vmcore.maxMapnr, pfn, last, out);
      for (let i = 0; i < n && this.pointedPages.size < POINTED_FIRST_MAX; i++) this.addObject(out[i]!);
      return;
    }
    // Without BigInts (a page is 512 words): the high and low halves apart.
    const baseHi = Number(base >> 32n), baseLo = Number(base & 0xffffffffn);
    const u32 = new Uint32Array(pages.buffer, pages.byteOffset, pages.length >> 2);
    for (let w = 0; w < u32.length && this.pointedPages.size < POINTED_FIRST_MAX; w += 2) {
      const hi = u32[w + 1]!;
      if (hi < baseHi) continue;
      const offset = (hi - baseHi) * 0x100000000 + (u32[w]! - baseLo);
      if (offset < 0) continue;
      const p = Math.floor(offset / B);
      if (p >= this.vmcore.maxMapnr || (p >= pfn && p < last)) continue;
      this.addObject(p);
    }
  }

  /** Tier 0 gets the OBJECT_PAGES pages from `pfn`, an object pointed to. */
  private addObject(pfn: number): void {
    for (let k = 0; k < OBJECT_PAGES; k++) {
      if (this.pointedPages.has(pfn + k)) continue;
      this.pointedPages.add(pfn + k);
      this.tier0.push(pfn + k);
    }
  }

  /**
   * What the PG_reserved pages point to, from the top of memory down (memblock allocates top-down,
   * so the per-CPU areas come before low allocations such as the swiotlb buffer), RESERVED_SCAN_MAX
   * pages at most, read in runs.
   */
  private addPointedFromReserved(reserved: Uint32Array): void {
    const B = this.vmcore.pageSize;
    const buf = Buffer.alloc(SCAN_READ_PAGES * B);
    let scanned = 0;
    forEachRun(reserved, (first, n) => {
      if (n > SCAN_RUN_MAX || scanned >= RESERVED_SCAN_MAX || this.pointedPages.size >= POINTED_FIRST_MAX) return;
      scanned += n;
      for (let at = 0; at < n; at += SCAN_READ_PAGES) {
        const m = Math.min(SCAN_READ_PAGES, n - at);
        try {
          this.vmcore.readPhys((first + at) * B, m * B, buf.subarray(0, m * B));
        } catch {
          continue;      // not in the vmcore: nothing to follow
        }
        this.addPointedFrom(buf.subarray(0, m * B), first + at);
      }
    }, true);
  }

  /** PG_private - 1 is PG_reserved when the kernel image's own struct pages (memblock-reserved) mostly have it. */
  private reservedBitHolds(imageRanges: [number, number][]): boolean {
    const bit = this.rules.pgPrivate - 1;
    const total = imageRanges.reduce((n, [s, e]) => n + e - s, 0);
    if (bit < 0 || total === 0) return false;
    // 64 pages spread evenly over the image.
    const step = Math.max(1, Math.floor(total / 64));
    let set = 0, seen = 0, skipped = 0;
    for (const [s, e] of imageRanges) {
      for (let pfn = s + ((step - skipped % step) % step); pfn < e; pfn += step) {
        const at = this.structPage(pfn);
        if (at === undefined) continue;
        try {
          this.memory.readVirt(at, this.rules.sizePage, this.page.subarray(0, this.rules.sizePage));
        } catch {
          continue;
        }
        seen++;
        if ((this.page.readBigUInt64LE(this.rules.offFlags) >> BigInt(bit)) & 1n) set++;
      }
      skipped += e - s;
    }
    // Not all: pages freed after boot (init sections, the padding around .rodata) stay mapped.
    return seen > 0 && set >= 0.5 * seen;
  }

  private structPage(pfn: number): bigint | undefined {
    const s = this.layout.sections[Math.floor(pfn / this.layout.pagesPerSection)];
    return s?.memMap === undefined ? undefined : s.memMap + BigInt((pfn - s.pfnStart) * this.rules.sizePage);
  }

  observe(start: number, end: number, bitmap: Buffer): void {
    const sink = this.sink;
    if (sink?.walked === start) {
      this.takeFromSink(sink, start, bitmap);
      return;
    }
    if (sink) emptySink(sink);      // what a walk that failed part-way reported
    const size = this.rules.sizePage;
    const headAt = this.rules.offCompoundHead ?? 0;
    // Tails follow their head: the last head's address and what it is.
    let lastHead = -1n;
    let headKind: 'slab' | 'reserved' | undefined;
    for (let b = start; b < end;) {
      // A block of struct pages stays inside one section (one mem_map).
      const n = Math.min(BLOCK_PAGES, end - b, this.layout.pagesPerSection - (b % this.layout.pagesPerSection));
      const from = b;
      b += n;
      const at = this.structPage(from);
      if (at === undefined || !anyBitIn(bitmap, from - start, from - start + n)) continue;
      const block = this.block ??= Buffer.alloc(BLOCK_PAGES * size);
      try {
        this.memory.readVirt(at, n * size, block.subarray(0, n * size));
      } catch {
        continue;      // the filter kept these pages without their struct pages; they stay in pfn order
      }
      for (let k = 0; k < n; k++) {
        const i = from - start + k;
        if ((i & 7) === 0 && k + 8 <= n && bitmap[i >> 3] === 0) { k += 7; continue; }
        if (!((bitmap[i >> 3]! >> (i & 7)) & 1)) continue;
        const pfn = from + k;
        let kind = kernelPageKind(this.rules, this.pgReserved, block, k * size);
        if (kind === 'tail') {
          const head = compoundHeadOf(block.readBigUInt64LE(k * size + headAt), at + BigInt(k * size));
          if (head !== lastHead) {
            lastHead = head;
            // The head is mostly in this block already (compound pages are aligned).
            const inBlock = head - at;
            const h = inBlock >= 0n && inBlock < BigInt(k * size)
              ? kernelPageKind(this.rules, this.pgReserved, block, Number(inBlock))
              : this.headKind(head);
            headKind = h === 'tail' ? undefined : h;
          }
          kind = headKind;
        }
        if (kind === 'slab') {
          this.slab.push(pfn);
        } else if (kind === 'reserved' && !this.memMapPages.has(pfn) && !this.imagePages.has(pfn)) {
          this.reserved.push(pfn);
        }
      }
    }
  }

  /** The slab and PG_reserved pages the walk of this cycle reported, those the bitmap dumps. */
  private takeFromSink(sink: KernelPageSink, start: number, bitmap: Buffer): void {
    const dumped = (pfn: number) => ((bitmap[(pfn - start) >> 3]! >> ((pfn - start) & 7)) & 1) !== 0;
    for (let i = 0, n = sink.state[KIND_STATE.slabCount]!; i < n; i++) {
      const pfn = sink.slab[i]!;
      if (dumped(pfn)) this.slab.push(pfn);
    }
    for (let i = 0, n = sink.state[KIND_STATE.reservedCount]!; i < n; i += 2) {
      const end = sink.reserved[i + 1]!;
      for (let p = sink.reserved[i]!; p < end;) {
        // The mem_map's and the image's pages are jumped over at once (a large machine's mem_map is GiBs).
        const after = Math.max(this.memMapPages.skip(p), this.imagePages.skip(p));
        if (after > p) { p = after; continue; }
        const stop = Math.min(end, this.memMapPages.nextStart(p), this.imagePages.nextStart(p));
        for (; p < stop; p++) if (dumped(p)) this.reserved.push(p);
      }
    }
    emptySink(sink);
  }

  private headKind(head: bigint): 'slab' | 'reserved' | 'tail' | undefined {
    const page = this.page.subarray(0, this.rules.sizePage);
    try {
      this.memory.readVirt(head, this.rules.sizePage, page);
    } catch {
      return undefined;
    }
    return kernelPageKind(this.rules, this.pgReserved, page, 0);
  }

  /** Tier 0, then the image's text and the modules (crash reads both at startup), then slab; each without the pages of the tiers before. */
  tiers(): Uint32Array[] {
    // The per-CPU areas are among the PG_reserved pages: what they point to holds each CPU's current task.
    const reserved = this.reserved.sorted();
    this.addPointedFromReserved(reserved);
    forEachRun(reserved, (first, n) => {
      if (n <= TIER0_RUN_MAX) for (let p = first; p < first + n; p++) this.tier0.push(p);
    });
    const t0 = this.tier0.sorted();
    for (const p of this.modules.sorted()) this.text.push(p);
    const text = without(this.text.sorted(), t0);
    const slab = without(without(this.slab.sorted(), t0), text);
    return [t0, text, slab];
  }
}

/** The sink's lists start again for the next cycle (the last head's kind carries over). */
function emptySink(sink: KernelPageSink): void {
  sink.state[KIND_STATE.slabCount] = 0;
  sink.state[KIND_STATE.reservedCount] = 0;
}
