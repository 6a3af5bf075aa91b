// A 64-page synthetic vmcore with a real SPARSEMEM_EXTREME mem_section and hand-made struct pages
// (6.1 layout and page-type values), for rules and cycle edges the lab guest does not produce on
// demand: unaligned buddy blocks across a cycle end, hugetlb, private cache, hwpoison, offline.
// The build trains the executable's code caches on one (train.ts), so it lives beside the build.
import { writeSyntheticVmcore, type SyntheticLoad } from './synthetic-vmcore.ts';

export const PAGE_OFFSET = 0xffff888000000000n;
const START_KERNEL_MAP = 0xffffffff80000000n;
export const NR_PAGES = 64;
const SIZE_PAGE = 64;
const MEMMAP_PFN = 4;

export interface PageSpec {
  flags?: bigint;
  mapping?: bigint;
  private?: bigint;
  mapcount?: number;
  compoundHead?: bigint;
  compoundDtor?: number;
  compoundOrder?: number;
}

export const PG = { lru: 4, slab: 9, private: 13, swapcache: 10, swapbacked: 19, hwpoison: 23, head: 16 };

export function vmcoreinfoText(opts: { drop?: string[]; extra?: string[] } = {}): string {
  const lines = [
    'OSRELEASE=6.1.0-synthetic', 'PAGESIZE=4096',
    `SYMBOL(init_top_pgt)=${(START_KERNEL_MAP + 0x1000n).toString(16)}`, 'NUMBER(phys_base)=0', 'NUMBER(pgtable_l5_enabled)=0',
    `SYMBOL(mem_section)=${(PAGE_OFFSET + 0x2000n).toString(16)}`, 'LENGTH(mem_section)=2048', 'SIZE(mem_section)=16',
    'OFFSET(mem_section.section_mem_map)=0', 'NUMBER(SECTION_SIZE_BITS)=27', 'NUMBER(MAX_PHYSMEM_BITS)=46',
    'SIZE(page)=64', 'OFFSET(page.flags)=0', 'OFFSET(page._refcount)=52', 'OFFSET(page.mapping)=24', 'OFFSET(page.lru)=8',
    'OFFSET(page._mapcount)=48', 'OFFSET(page.private)=40', 'OFFSET(page.compound_dtor)=16', 'OFFSET(page.compound_order)=17',
    'OFFSET(page.compound_head)=8', 'LENGTH(zone.free_area)=11',
    `NUMBER(PG_lru)=${PG.lru}`, `NUMBER(PG_private)=${PG.private}`, `NUMBER(PG_swapcache)=${PG.swapcache}`,
    `NUMBER(PG_swapbacked)=${PG.swapbacked}`, `NUMBER(PG_slab)=${PG.slab}`, `NUMBER(PG_hwpoison)=${PG.hwpoison}`,
    `NUMBER(PG_head_mask)=${1 << PG.head}`, 'NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129', 'NUMBER(HUGETLB_PAGE_DTOR)=2',
    'NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-257', 'CRASHTIME=1700000000',
  ];
  return [...lines.filter((l) => !(opts.drop ?? []).some((d) => l.startsWith(d))), ...(opts.extra ?? [])].join('\n') + '\n';
}

/**
 * Writes the vmcore; `memMap` overrides where section 0's struct pages are (default: pfn 4).
 * `sectionBits` < 18 (SECTION_SIZE_BITS; default 27) makes sections of 2^(sectionBits - 12) pages,
 * all present, their struct pages one array as with SPARSEMEM_VMEMMAP.
 */
export function writeMemMapVmcore(file: string, pages: Map<number, PageSpec>, opts: { memMap?: bigint; drop?: string[]; extra?: string[]; sectionBits?: number; extraLoads?: SyntheticLoad[]; qemuXnum?: boolean } = {}): void {
  const mem = Buffer.alloc(NR_PAGES * 4096);
  // pfn 2: the root array of SPARSEMEM_EXTREME; root 0 -> pfn 3, which holds mem_section[0..].
  mem.writeBigUInt64LE(PAGE_OFFSET + 0x3000n, 0x2000);
  const memMap = opts.memMap ?? PAGE_OFFSET + BigInt(MEMMAP_PFN * 4096);
  const perSection = opts.sectionBits === undefined ? NR_PAGES : 2 ** (opts.sectionBits - 12);
  // Decoded, section_mem_map + the section's first pfn is its struct pages: the same word in each section.
  for (let nr = 0; nr * perSection < NR_PAGES; nr++) mem.writeBigUInt64LE(memMap | 1n, 0x3000 + 16 * nr);
  if (opts.sectionBits !== undefined) {
    // mem_section's length is what tells SPARSEMEM_EXTREME: NR_MEM_SECTIONS / sections per root.
    opts = { ...opts, drop: [...(opts.drop ?? []), 'NUMBER(SECTION_SIZE_BITS)', 'LENGTH(mem_section)'],
      extra: [...(opts.extra ?? []), `NUMBER(SECTION_SIZE_BITS)=${opts.sectionBits}`, `LENGTH(mem_section)=${2 ** (46 - opts.sectionBits) / 256}`] };
  }
  for (let pfn = 0; pfn < NR_PAGES; pfn++) {
    const at = MEMMAP_PFN * 4096 + pfn * SIZE_PAGE;
    const p = pages.get(pfn) ?? {};
    mem.writeBigUInt64LE(p.flags ?? 0n, at);
    mem.writeBigUInt64LE(p.compoundHead ?? 0n, at + 8);
    if (p.compoundDtor !== undefined) mem.writeUInt8(p.compoundDtor, at + 16);
    if (p.compoundOrder !== undefined) mem.writeUInt8(p.compoundOrder, at + 17);
    mem.writeBigUInt64LE(p.mapping ?? 0n, at + 24);
    mem.writeBigUInt64LE(p.private ?? 0n, at + 40);
    mem.writeInt32LE(p.mapcount ?? -1, at + 48);
    mem.writeUInt32LE(1, at + 52);
  }
  writeSyntheticVmcore(file, vmcoreinfoText(opts), [{ paddr: 0, vaddr: PAGE_OFFSET, data: mem }, ...(opts.extraLoads ?? [])], 1, opts.qemuXnum);
}

export function structPageAddr(pfn: number): bigint {
  return PAGE_OFFSET + BigInt(MEMMAP_PFN * 4096 + pfn * SIZE_PAGE);
}

/** A compound page: head at pfn with order, tails pointing back to it. */
export function compound(pages: Map<number, PageSpec>, pfn: number, order: number, head: PageSpec, dtor = 1): void {
  pages.set(pfn, { ...head, flags: (head.flags ?? 0n) | (1n << BigInt(PG.head)) });
  for (let i = 1; i < 2 ** order; i++) {
    pages.set(pfn + i, { compoundHead: structPageAddr(pfn) | 1n, ...(i === 1 ? { compoundDtor: dtor, compoundOrder: order } : {}) });
  }
}
