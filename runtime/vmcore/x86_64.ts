// x86_64 kernel virtual -> physical for reading the crashed kernel's data structures: kernel image
// (phys_base), direct map (PAGE_OFFSET from the PT_LOADs, so KASLR needs nothing more), and a
// 4- or 5-level page-table walk for everything else (vmemmap, vmalloc). Translations are cached
// per leaf (2 MiB / 1 GiB / 4 KiB), since struct pages are read sequentially.
import { LastwordError } from '../errors.ts';
import { START_KERNEL_MAP, pageReadFailure } from './reader.ts';
import type { Vmcore } from './types.ts';
import { requireKey } from './vmcoreinfo.ts';

// arch/x86/include/asm/pgtable_types.h
const PRESENT = 1n;
const PSE = 0x80n;
const PSE_BIT = Number(PSE);
const ENTRY_MASK = 0x000ffffffffff000n;
const KERNEL_IMAGE_SIZE_DEFAULT = 1n << 30n;
// The kernel half of the canonical address space (5-level paging starts it lowest); p_vaddr below it is not a kernel mapping (QEMU writes 0).
export const KERNEL_HALF = 0xff00000000000000n;
const CACHE_LIMIT = 1 << 16;

const LEVEL_NAMES = ['pgd', 'p4d', 'pud', 'pmd', 'pte'];

/** Bytes of a read whose data was lost (X86_64Memory.readVirtSalvaging): where in the buffer, how many, why. */
export interface LostPiece {
  at: number;
  bytes: number;
  reason: string;
}

export class X86_64Memory {
  readonly vmcore: Vmcore;
  readonly physBase: bigint;
  readonly pageOffset: bigint | undefined;
  readonly levels: 4 | 5;
  readonly topPgt: number;
  private readonly smeMask: bigint;
  /** The end of the kernel image mapping: START_KERNEL_MAP + KERNEL_IMAGE_SIZE. */
  readonly imageEnd: bigint;
  private readonly directMapEnd: bigint;
  private readonly cache2M = new Map<bigint, number>();
  private readonly cache4K = new Map<bigint, number>();
  private readonly entry = Buffer.alloc(8);

  constructor(vmcore: Vmcore) {
    this.vmcore = vmcore;
    const info = vmcore.vmcoreinfo;
    const file = vmcore.file;
    // NUMBER(phys_base) is printed as signed long; reinterpret as u64.
    this.physBase = BigInt.asUintN(64, requireKey(info.number, 'NUMBER', 'phys_base', file));
    this.levels = info.number.get('pgtable_l5_enabled') === 1n ? 5 : 4;
    this.smeMask = BigInt.asUintN(64, info.number.get('sme_mask') ?? 0n);
    this.imageEnd = START_KERNEL_MAP + BigInt.asUintN(64, info.number.get('KERNEL_IMAGE_SIZE') ?? KERNEL_IMAGE_SIZE_DEFAULT);
    this.pageOffset = derivePageOffset(vmcore);
    const physBits = BigInt(info.number.get('MAX_PHYSMEM_BITS') ?? (this.levels === 5 ? 52n : 46n));
    this.directMapEnd = this.pageOffset === undefined ? 0n : this.pageOffset + (1n << physBits);
    const top = info.symbol.get('init_top_pgt') ?? info.symbol.get('swapper_pg_dir') ?? info.symbol.get('init_level4_pgt');
    if (top === undefined) {
      throw new LastwordError('EVMCOREINFO_KEY', 'VMCOREINFO has no SYMBOL(init_top_pgt) (nor swapper_pg_dir): cannot walk page tables', { where: { file } });
    }
    this.topPgt = this.imageToPhys(top);
  }

  /** Physical address of a kernel virtual address; throws naming the address when it is unmapped. */
  vtop(v: bigint): number {
    if (this.inImage(v)) return this.imageToPhys(v);
    if (this.inDirectMap(v)) return Number(v - this.pageOffset!);
    const hit2M = this.cache2M.get(v >> 21n);
    if (hit2M !== undefined) return hit2M + Number(v & 0x1fffffn);
    const hit4K = this.cache4K.get(v >> 12n);
    if (hit4K !== undefined) return hit4K + Number(v & 0xfffn);
    return this.walk(v);
  }

  /**
   * Reads `length` bytes of kernel virtual memory; physically contiguous pages are read at once.
   * One translation per leaf (a 2 MiB vmemmap page holds 32768 struct pages), not per 4 KiB.
   */
  readVirt(v: bigint, length: number, into?: Buffer): Buffer {
    const buf = into ?? Buffer.allocUnsafe(length);
    this.physRanges(v, length, (pa, n, done) => { this.vmcore.readPhys(pa, n, buf.subarray(done, done + n)); });
    return buf;
  }

  /**
   * readVirt that keeps going where a page's data is lost: a read that fails with a data error
   * (pageReadFailure: EIO, a memory error, the file cut short) is done again a 4 KiB page at a time,
   * and the pages that still fail read as zeros. Returns those pieces (offset in the buffer, bytes,
   * the error); any other failure (an address not mapped) throws, as readVirt does.
   */
  readVirtSalvaging(v: bigint, length: number, into: Buffer): LostPiece[] {
    try {
      this.readVirt(v, length, into);
      return [];
    } catch (err) {
      if (pageReadFailure(err) === undefined) throw err;
    }
    const lost: LostPiece[] = [];
    for (let at = 0; at < length;) {
      const piece = Math.min(length - at, 4096 - Number((v + BigInt(at)) & 0xfffn));
      try {
        this.readVirt(v + BigInt(at), piece, into.subarray(at, at + piece));
      } catch (err) {
        const reason = pageReadFailure(err);
        if (reason === undefined) throw err;
        into.fill(0, at, at + piece);
        const last = lost[lost.length - 1];
        if (last && last.at + last.bytes === at) last.bytes += piece;
        else lost.push({ at, bytes: piece, reason });
      }
      at += piece;
    }
    return lost;
  }

  /**
   * The physical ranges of `length` bytes of kernel virtual memory from `v`, in order, physically
   * contiguous pages merged: visit(physical address, bytes, bytes before it). Throws like vtop.
   */
  physRanges(v: bigint, length: number, visit: (pa: number, bytes: number, done: number) => void): void {
    let done = 0;
    while (done < length) {
      const va = v + BigInt(done);
      const pa = this.vtop(va);
      let n = this.leafRest(va, length - done);
      while (done + n < length) {
        const vb = v + BigInt(done + n);
        if (this.vtop(vb) !== pa + n) break;
        n += this.leafRest(vb, length - done - n);
      }
      visit(pa, n, done);
      done += n;
    }
  }

  /** The kernel image mapping (phys_base) and the direct map: linear, no page-table walk. */
  private inImage(v: bigint): boolean {
    return v >= START_KERNEL_MAP && v < this.imageEnd;
  }

  private inDirectMap(v: bigint): boolean {
    return this.pageOffset !== undefined && v >= this.pageOffset && v < this.directMapEnd;
  }

  /** Bytes from `v` to the end of the linear range or leaf vtop(v) just translated, at most `max`. */
  private leafRest(v: bigint, max: number): number {
    let end: bigint;
    if (this.inImage(v)) end = this.imageEnd;
    else if (this.inDirectMap(v)) end = this.directMapEnd;
    else if (this.cache2M.has(v >> 21n)) end = (v | 0x1fffffn) + 1n;
    else end = (v | 0xfffn) + 1n;
    const rest = end - v;
    return rest < BigInt(max) ? Number(rest) : max;
  }

  readU64(v: bigint): bigint {
    return this.readVirt(v, 8).readBigUInt64LE(0);
  }

  readU32(v: bigint): number {
    return this.readVirt(v, 4).readUInt32LE(0);
  }

  private imageToPhys(v: bigint): number {
    return Number(BigInt.asUintN(64, v - START_KERNEL_MAP + this.physBase));
  }

  /**
   * The page-table walk alone (no shortcuts, no cache); vtop uses it for non-linear addresses.
   * `onTable` gets the physical address of each table the walk reads, top first.
   */
  walk(v: bigint, onTable?: (pa: number) => void): number {
    let table = this.topPgt;
    const shifts = this.levels === 5 ? [48n, 39n, 30n, 21n, 12n] : [39n, 30n, 21n, 12n];
    const names = this.levels === 5 ? LEVEL_NAMES : LEVEL_NAMES.filter((n) => n !== 'p4d');
    for (let i = 0; i < shifts.length; i++) {
      const shift = shifts[i];
      const at = table + Number((v >> shift) & 511n) * 8;
      onTable?.(table);
      let e: bigint;
      try {
        e = this.vmcore.readPhys(at, 8, this.entry).readBigUInt64LE(0);
      } catch (err) {
        throw new LastwordError('EVMCORE_PAGETABLE', `${this.vmcore.file}: ${names[i]} table of vaddr 0x${v.toString(16)} at physical 0x${table.toString(16)} is outside memory`, { where: { file: this.vmcore.file }, cause: err });
      }
      if ((e & PRESENT) === 0n) {
        throw new LastwordError('EVMCORE_UNMAPPED', `${this.vmcore.file}: vaddr 0x${v.toString(16)} is not mapped (${names[i]} entry at physical 0x${at.toString(16)} not present)`, { where: { file: this.vmcore.file } });
      }
      const next = e & ~this.smeMask & ENTRY_MASK;
      const leafSize = 1n << shift;
      if (shift === 12n || ((e & PSE) !== 0n && (shift === 21n || shift === 30n))) {
        const base = next & ~(leafSize - 1n);
        const pa = Number(base + (v & (leafSize - 1n)));
        if (!this.vmcore.pfnHasData(Math.floor(pa / this.vmcore.pageSize))) {
          throw new LastwordError('EVMCORE_PAGETABLE', `${this.vmcore.file}: ${names[i]} entry 0x${e.toString(16)} of vaddr 0x${v.toString(16)} points to physical 0x${pa.toString(16)}, outside memory`, { where: { file: this.vmcore.file } });
        }
        this.remember(v, shift, base);
        return pa;
      }
      table = Number(next);
    }
    throw new Error('unreachable');
  }

  /**
   * Walks the kernel half of the page tables (top-level entries 256..511) except the direct map:
   * `table` gets each table page (the top one included), and each range's `leaf` the present
   * mappings inside [lo, hi): physical address, size and whether executable (NX clear), runs of
   * physically consecutive 4 KiB pages alike in NX at once. The last level's tables outside every range are named, not read (vmalloc has
   * thousands); inside one, their entries are decoded without BigInts. Tables outside memory are
   * skipped.
   */
  visitKernelTables(visit: {
    table(pa: number): void;
    ranges: { lo: bigint; hi: bigint; leaf(pa: number, size: number, executable: boolean): void }[];
  }): void {
    const shifts = this.levels === 5 ? [48, 39, 30, 21, 12] : [39, 30, 21, 12];
    const last = shifts.length - 1;
    const smeLo = Number(this.smeMask & 0xffffffffn), smeHi = Number((this.smeMask >> 32n) & 0xffffffffn);
    const directMap = this.pageOffset === undefined ? undefined : [this.pageOffset, this.directMapEnd] as const;
    const hasData = (pa: number) => this.vmcore.pfnHasData(Math.floor(pa / this.vmcore.pageSize));
    /** Entry i of a table (its words in `e`): its physical address (low bits and SME mask cleared), or -1 if not present. */
    const target = (e: Uint32Array, i: number): number => {
      const lo = e[2 * i]!;
      if ((lo & 1) === 0) return -1;
      return ((e[2 * i + 1]! & 0xfffff & ~smeHi) >>> 0) * 0x100000000 + ((lo & 0xfffff000 & ~smeLo) >>> 0);
    };
    // One buffer per level: the walk recurses while a table's entries are in use.
    const buffers = shifts.map(() => Buffer.allocUnsafeSlow(4096));
    const read = (pa: number, level: number) => {
      const page = this.vmcore.readPhys(pa, 4096, buffers[level]);
      return new Uint32Array(page.buffer, page.byteOffset, 1024);
    };
    const executable = (e: Uint32Array, i: number) => (e[2 * i + 1]! & 0x80000000) === 0;      // NX is bit 63
    // A table is named once: tables are shared (espfix maps one page through thousands of entries).
    const seen = new Set<number>();
    const first = (pa: number) => !seen.has(pa) && seen.add(pa) !== undefined;
    const visitTable = (pa: number, level: number, base: bigint) => {
      if (!hasData(pa) || !first(pa)) return;
      visit.table(pa);
      const entries = read(pa, level);
      const shift = shifts[level]!, span = 2 ** shift;
      // The direct map and the ranges as offsets from `base` (Numbers: a table spans at most 2^57).
      const end = base + BigInt(512 * span);
      const rel = (x: bigint) => (x <= base ? -Infinity : x >= end ? Infinity : Number(x - base));
      const skipFrom = directMap ? rel(directMap[0]) : Infinity, skipTo = directMap ? rel(directMap[1]) : -Infinity;
      const ranges = visit.ranges.map((r) => ({ r, lo: rel(r.lo), hi: rel(r.hi) }));
      const hugeLevel = shift === 21 || shift === 30;
      for (let i = level === 0 ? 256 : 0; i < 512; i++) {
        if ((entries[2 * i]! & 1) === 0) continue;      // not present: most entries
        const off = i * span;
        // Only an entry wholly inside the direct map is skipped: the one where it ends may also map
        // the start of the vmalloc area (KASLR puts VMALLOC_START 1 GiB-aligned, at times in the same
        // 512 GiB slot), whose tables crash needs for the panic task's stack.
        if (off >= skipFrom && off + span <= skipTo) continue;
        const next = target(entries, i);
        const huge = hugeLevel && (entries[2 * i]! & PSE_BIT) !== 0;
        let range: (typeof ranges)[number] | undefined;
        for (const x of ranges) if (off < x.hi && off + span > x.lo) { range = x; break; }
        if (huge) {
          if (range) range.r.leaf(next - (next % span), span, executable(entries, i));
        } else if (level + 1 === last) {
          // A last-level table: read only inside a range.
          if (!hasData(next) || !first(next)) continue;
          visit.table(next);
          if (!range) continue;
          const ptes = read(next, level + 1);
          const from = Number(base + BigInt(off) - range.r.lo), size = Number(range.r.hi - range.r.lo);
          // Runs of physically consecutive pages alike in NX go to `leaf` at once.
          let runPa = -1, runLen = 0, runExec = false;
          for (let k = 0; k <= 512; k++) {
            const at = from + k * 4096;
            const page = k < 512 && at >= 0 && at < size ? target(ptes, k) : -1;
            const exec = page >= 0 && executable(ptes, k);
            if (runLen > 0 && page === runPa + runLen && exec === runExec) { runLen += 4096; continue; }
            if (runLen > 0) range.r.leaf(runPa, runLen, runExec);
            runPa = page;
            runLen = page >= 0 ? 4096 : 0;
            runExec = exec;
          }
        } else if (level < last) {
          visitTable(next, level + 1, base + BigInt(off));
        }
      }
    };
    visitTable(this.topPgt, 0, this.levels === 5 ? 0xff00000000000000n : 0xffff000000000000n);
  }

  private remember(v: bigint, shift: bigint, base: bigint): void {
    if (this.cache2M.size > CACHE_LIMIT) this.cache2M.clear();
    if (this.cache4K.size > CACHE_LIMIT) this.cache4K.clear();
    if (shift === 12n) this.cache4K.set(v >> 12n, Number(base));
    else if (shift === 21n) this.cache2M.set(v >> 21n, Number(base));
    else this.cache2M.set(v >> 21n, Number(base + (v & ((1n << 30n) - 1n) & ~0x1fffffn)));
  }
}

/** PAGE_OFFSET = p_vaddr - p_paddr of a direct-map PT_LOAD (makedumpfile's get_page_offset_x86_64). */
export function derivePageOffset(vmcore: Vmcore): bigint | undefined {
  for (const l of vmcore.loads) {
    if (l.vaddr >= KERNEL_HALF && l.vaddr < START_KERNEL_MAP) return l.vaddr - BigInt(l.paddr);
  }
  return undefined;
}
