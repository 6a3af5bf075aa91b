// Where the struct pages are: one mem_map per SPARSEMEM section, found through mem_section the way
// makedumpfile's get_mm_sparsemem does it (the same sections present/absent gives the same pages
// classified). SPARSEMEM_VMEMMAP needs nothing else: the decoded section_mem_map is the vmemmap
// address of the section's first struct page.
import { LastwordError } from '../errors.ts';
import type { Vmcore } from '../vmcore/types.ts';
import { requireKey } from '../vmcore/vmcoreinfo.ts';
import type { X86_64Memory } from '../vmcore/x86_64.ts';

export interface MemMapSection {
  pfnStart: number;
  pfnEnd: number;
  /** Kernel virtual address of the struct page of pfnStart; undefined = no mem_map (pages kept). */
  memMap: bigint | undefined;
}

// makedumpfile.h: SECTION_MARKED_PRESENT, SECTION_MAP_LAST_BIT (always 1<<5, see its comment).
const SECTION_MARKED_PRESENT = 1n;
const SECTION_MAP_MASK = ~((1n << 5n) - 1n) & ((1n << 64n) - 1n);

export interface MemMapLayout {
  sections: MemMapSection[];
  pagesPerSection: number;
  /** max_mapnr as makedumpfile adjusts it: not beyond the last section that has a mem_map. */
  maxMapnr: number;
}

/** Reads mem_section and decodes each section's mem_map (SPARSEMEM and SPARSEMEM_EXTREME). */
export function findMemMap(vmcore: Vmcore, memory: X86_64Memory): MemMapLayout {
  const info = vmcore.vmcoreinfo;
  const file = vmcore.file;
  const pageShift = Math.log2(vmcore.pageSize);
  const sizePage = requireKey(info.size, 'SIZE', 'page', file);
  const sectionSizeBits = Number(requireKey(info.number, 'NUMBER', 'SECTION_SIZE_BITS', file));
  const maxPhysmemBits = Number(requireKey(info.number, 'NUMBER', 'MAX_PHYSMEM_BITS', file));
  const sizeMemSection = requireKey(info.size, 'SIZE', 'mem_section', file);
  const memSectionSym = requireKey(info.symbol, 'SYMBOL', 'mem_section', file);
  const mapOffset = requireKey(info.offset, 'OFFSET', 'mem_section.section_mem_map', file);
  if (sizePage <= 0 || sizeMemSection <= 0) {
    throw new LastwordError('EVMCOREINFO_DAMAGED', `${file}: SIZE(page) ${sizePage} / SIZE(mem_section) ${sizeMemSection} is not usable`, { where: { file } });
  }
  const pfnSectionShift = sectionSizeBits - pageShift;
  const pagesPerSection = 2 ** pfnSectionShift;
  const numSection = Math.ceil(vmcore.maxMapnr / pagesPerSection);
  const nrMemSections = 2 ** (maxPhysmemBits - sectionSizeBits);
  const perRootExtreme = vmcore.pageSize / sizeMemSection;
  const length = info.length.get('mem_section');
  const extreme = length === undefined || length === Math.ceil(nrMemSections / perRootExtreme);
  const sectionsPerRoot = extreme ? perRootExtreme : 1;
  const nrRoots = Math.ceil(numSection / sectionsPerRoot);
  const pageOffset = memory.pageOffset ?? 0xffff800000000000n;
  const isKvaddr = (a: bigint) => a >= pageOffset;

  // Returns undefined when no section validates (makedumpfile's validate_mem_section FALSE).
  const validate = (rootsAt: bigint): (bigint | undefined)[] | undefined => {
    const rootBytes = extreme ? 8 * nrRoots : sizeMemSection * nrRoots;
    const roots = memory.readVirt(rootsAt, rootBytes);
    const maps: (bigint | undefined)[] = [];
    let any = false;
    const one = Buffer.alloc(sizeMemSection);
    for (let nr = 0; nr < numSection; nr++) {
      let section: bigint | undefined;
      if (extreme) {
        const root = roots.readBigUInt64LE(8 * Math.floor(nr / sectionsPerRoot));
        section = root === 0n ? undefined : root + BigInt((nr % sectionsPerRoot) * sizeMemSection);
      } else {
        section = memSectionSym + BigInt(nr * sizeMemSection);
      }
      if (section === undefined || !isKvaddr(section)) {
        maps.push(undefined);
        continue;
      }
      try {
        memory.readVirt(section, sizeMemSection, one);
      } catch {
        // makedumpfile: an unreadable mem_section is a section without mem_map.
        maps.push(undefined);
        continue;
      }
      const word = one.readBigUInt64LE(mapOffset);
      if ((word & SECTION_MARKED_PRESENT) === 0n) {
        maps.push(undefined);
        continue;
      }
      const memMap = BigInt.asUintN(64, (word & SECTION_MAP_MASK) + BigInt(nr * pagesPerSection) * BigInt(sizePage));
      if (!isKvaddr(memMap)) return undefined;
      any = true;
      maps.push(memMap);
    }
    return any ? maps : undefined;
  };

  // VMCOREINFO gives the root array's address (4.15+: the value of the mem_section pointer); an
  // older layout needs one more dereference. makedumpfile tries both in this order.
  let maps = validate(memSectionSym);
  if (!maps && extreme) maps = validate(memory.readU64(memSectionSym));
  if (!maps) {
    throw new LastwordError('EFILTER_MEMSECTION', `${file}: mem_section at 0x${memSectionSym.toString(16)} has no valid present section`, { where: { file } });
  }
  const sections: MemMapSection[] = maps.map((memMap, nr) => ({
    pfnStart: nr * pagesPerSection,
    pfnEnd: Math.min((nr + 1) * pagesPerSection, vmcore.maxMapnr),
    memMap,
  }));
  const lastValid = sections.filter((s) => s.memMap !== undefined).at(-1);
  const maxMapnr = lastValid ? Math.min(vmcore.maxMapnr, lastValid.pfnEnd) : vmcore.maxMapnr;
  return { sections, pagesPerSection, maxMapnr };
}
