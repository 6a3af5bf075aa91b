// x86_64 kernel virtual -> physical for reading the crashed kernel's data structures: kernel image
// (phys_base), direct map (PAGE_OFFSET from the PT_LOADs, so KASLR needs nothing more), and a
// 4- or 5-level page-table walk for everything else (vmemmap, vmalloc). Translations are cached
// per leaf (2 MiB / 1 GiB / 4 KiB), since struct pages are read sequentially.
import { LastwordError } from '../errors.ts';
import { START_KERNEL_MAP } from './reader.ts';
import type { Vmcore } from './types.ts';
import { requireKey } from './vmcoreinfo.ts';

// arch/x86/include/asm/pgtable_types.h
const PRESENT = 1n;
const PSE = 0x80n;
const NX = 1n << 63n;
const ENTRY_MASK = 0x000ffffffffff000n;
const KERNEL_IMAGE_SIZE_DEFAULT = 1n << 30n;
// The kernel half of the canonical address space; p_vaddr below it is not a kernel mapping (QEMU writes 0).
const KERNEL_HALF = 0xff00000000000000n;
const CACHE_LIMIT = 1 << 16;

const LEVEL_NAMES = ['pgd', 'p4d', 'pud', 'pmd', 'pte'];

export class X86_64Memory {
  readonly vmcore: Vmcore;
  readonly physBase: bigint;
  readonly pageOffset: bigint | undefined;
  readonly levels: 4 | 5;
  readonly topPgt: number;
  private readonly smeMask: bigint;
  private readonly imageEnd: bigint;
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
      this.vmcore.readPhys(pa, n, buf.subarray(done, done + n));
      done += n;
    }
    return buf;
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

  /** The page-table walk alone (no shortcuts, no cache); vtop uses it for non-linear addresses. */
  walk(v: bigint): number {
    let table = this.topPgt;
    const shifts = this.levels === 5 ? [48n, 39n, 30n, 21n, 12n] : [39n, 30n, 21n, 12n];
    const names = this.levels === 5 ? LEVEL_NAMES : LEVEL_NAMES.filter((n) => n !== 'p4d');
    for (let i = 0; i < shifts.length; i++) {
      const shift = shifts[i];
      const at = table + Number((v >> shift) & 511n) * 8;
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
   * `table` gets each table page (the top one included), `leaf` each present mapping (its size,
   * physical address, and whether it is executable: NX clear) where `leaves(v, size)` wants them;
   * the last level's tables elsewhere are named, not read (vmalloc has thousands). Tables outside
   * memory are skipped.
   */
  visitKernelTables(visit: {
    table(pa: number): void;
    leaf(v: bigint, size: bigint, pa: number, executable: boolean): void;
    leaves(v: bigint, size: bigint): boolean;
  }): void {
    const shifts = this.levels === 5 ? [48n, 39n, 30n, 21n, 12n] : [39n, 30n, 21n, 12n];
    const top = shifts[0]!;
    const directMap = this.pageOffset === undefined ? undefined : [this.pageOffset, this.directMapEnd];
    const table = Buffer.alloc(4096);
    const visitTable = (pa: number, level: number, base: bigint) => {
      if (!this.vmcore.pfnHasData(Math.floor(pa / this.vmcore.pageSize))) return;
      visit.table(pa);
      const entries = Buffer.from(this.vmcore.readPhys(pa, 4096, table));
      const shift = shifts[level]!;
      for (let i = level === 0 ? 256 : 0; i < 512; i++) {
        if ((entries[i * 8]! & 1) === 0) continue;      // not present (checked without a BigInt)
        const e = entries.readBigUInt64LE(i * 8);
        let v = base + (BigInt(i) << shift);
        if (shift === top && level === 0) v = BigInt.asUintN(64, v | (this.levels === 5 ? 0xff00000000000000n : 0xffff000000000000n));
        if (directMap && v >= directMap[0]! && v < directMap[1]!) continue;
        const next = e & ~this.smeMask & ENTRY_MASK;
        if (shift === 12n || ((e & PSE) !== 0n && (shift === 21n || shift === 30n))) {
          const size = 1n << shift;
          if (visit.leaves(v, size)) visit.leaf(v, size, Number(next & ~(size - 1n)), (e & NX) === 0n);
        } else if (level === shifts.length - 2 && !visit.leaves(v, 1n << shift)) {
          if (this.vmcore.pfnHasData(Math.floor(Number(next) / this.vmcore.pageSize))) visit.table(Number(next));
        } else if (level < shifts.length - 1) {
          visitTable(Number(next), level + 1, v);
        }
      }
    };
    visitTable(this.topPgt, 0, 0n);
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
