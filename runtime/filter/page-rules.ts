// How one struct page is classified: makedumpfile 1.7.8's __exclude_unnecessary_pages, rule by
// rule and in its order, with every flag number, offset and page-type value taken from VMCOREINFO.
// Pure: a Buffer of struct pages in, a decision out.
import { LastwordError } from '../errors.ts';
import type { Vmcoreinfo } from '../vmcore/types.ts';

// makedumpfile.h dump level bits
export const DL_EXCLUDE_ZERO = 1;
export const DL_EXCLUDE_CACHE = 2;
export const DL_EXCLUDE_CACHE_PRI = 4;
export const DL_EXCLUDE_USER_DATA = 8;
export const DL_EXCLUDE_FREE = 16;

export type PageClass = 'free' | 'cache' | 'cachePrivate' | 'user' | 'hwpoison' | 'offline';

export interface PageDecision {
  cls: PageClass;
  nrPages: number;
}

/** A VMCOREINFO NUMBER(): makedumpfile's NOT_FOUND_NUMBER is -1, and some rules use it as such. */
const NOT_FOUND = -1;

export interface PageRules {
  sizePage: number;
  offFlags: number;
  offMapping: number;
  offMapcount: number | undefined;
  offPrivate: number | undefined;
  offCompoundHead: number | undefined;
  /** Offsets inside the first tail page (makedumpfile's compound_order_offset / dtor_offset); 0 = none. */
  orderOffset: number;
  dtorOffset: number;
  /** Kernels >= 4.16 store order/dtor as u8; 4.4..4.15 as u16; before 4.4 the dtor is a pointer. */
  kernelVersion: number;
  pgLru: number;
  pgPrivate: number;
  pgSwapcache: number;
  pgSwapbacked: number;
  pgSlab: number;
  pgHwpoison: number;
  pgHugetlb: number;
  headMaskLo: number;
  headMaskHi: number;
  buddy: 'mapcount' | 'flag' | undefined;
  pgBuddy: number;
  buddyValue: number;       // u32 views of the signed page-type values
  offlineValue: number | undefined;
  slabValue: number | undefined;
  hugetlbValue: number | undefined;
  unacceptedValue: number | undefined;
  hugetlbDtor: bigint | undefined;
  freeHugePage: bigint | undefined;
  freeAreaLength: number | undefined;
}

export function kernelVersionCode(osrelease: string | undefined): number {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(osrelease ?? '');
  if (!m) return 0;
  return (Number(m[1]) << 16) + (Number(m[2]) << 8) + Math.min(Number(m[3] ?? 0), 255);
}

export const KERNEL_4_4 = kernelVersionCode('4.4.0');
export const KERNEL_4_16 = kernelVersionCode('4.16.0');

/**
 * The VMCOREINFO offset whose bit 0 marks a tail page. Linux 7.1 renamed struct page's compound_head
 * to compound_info (kernel d50569612c29), and its key with it. makedumpfile <= 1.7.9 knows only the
 * old key, so on 7.1+ it cannot tell tail pages and drops every one whose mapping word looks
 * anonymous (page 1 of a large folio holds _entire_mapcount = -1 there): -d 8 loses slab and
 * kernel-stack pages crash needs. Fixed upstream after 1.7.9 (f50c015) the same way.
 */
export function tailMarkerKey(info: Pick<Vmcoreinfo, 'offset'>): 'page.compound_head' | 'page.compound_info' {
  return info.offset.has('page.compound_head') ? 'page.compound_head' : 'page.compound_info';
}

export function pageRules(info: Vmcoreinfo, file?: string): PageRules {
  const need = (map: Map<string, number>, kind: string, name: string): number => {
    const v = map.get(name);
    if (v === undefined) throw new LastwordError('EVMCOREINFO_KEY', `VMCOREINFO has no ${kind}(${name}), needed to classify pages`, { where: { file } });
    return v;
  };
  const num = (name: string): number => Number(info.number.get(name) ?? BigInt(NOT_FOUND));
  const u32 = (name: string): number | undefined => {
    const v = info.number.get(name);
    return v === undefined ? undefined : Number(BigInt.asUintN(32, v));
  };
  const sizePage = need(info.size, 'SIZE', 'page');
  const offMapcount = info.offset.get('page._mapcount');
  const offPrivate = info.offset.get('page.private');
  const compoundKey = tailMarkerKey(info);
  const offCompoundHead = info.offset.get(compoundKey);
  const kernelVersion = kernelVersionCode(info.osrelease);
  const headMask = BigInt.asUintN(64, info.number.get('PG_head_mask') ?? BigInt(NOT_FOUND));

  // init_compound_offset()
  let orderOffset = 0;
  let dtorOffset = 0;
  const folioOrder = info.offset.get('folio._folio_order');
  const folioDtor = info.offset.get('folio._folio_dtor');
  if (folioOrder !== undefined) orderOffset = folioOrder - sizePage;
  else if (info.offset.has('page.compound_order')) orderOffset = info.offset.get('page.compound_order')!;
  else if (kernelVersion < KERNEL_4_4) orderOffset = need(info.offset, 'OFFSET', 'page.lru') + (info.offset.get('list_head.prev') ?? 8);
  if (folioDtor !== undefined) dtorOffset = folioDtor - sizePage;
  else if (info.offset.has('page.compound_dtor')) dtorOffset = info.offset.get('page.compound_dtor')!;
  else if (kernelVersion < KERNEL_4_4) dtorOffset = need(info.offset, 'OFFSET', 'page.lru') + (info.offset.get('list_head.next') ?? 0);

  // setup_page_is_buddy()
  let buddy: PageRules['buddy'];
  if (offPrivate !== undefined) {
    if (info.number.has('PAGE_BUDDY_MAPCOUNT_VALUE')) buddy = offMapcount !== undefined ? 'mapcount' : undefined;
    else if (info.number.has('PG_buddy')) buddy = 'flag';
  }

  // Damaged offsets would read outside the struct page: refuse them here, naming the key.
  const inPage = (name: string, off: number | undefined, width: number) => {
    if (off !== undefined && (off < 0 || off + width > sizePage)) {
      throw new LastwordError('EVMCOREINFO_DAMAGED', `VMCOREINFO OFFSET(${name})=${off} does not fit in SIZE(page)=${sizePage}`, { where: { file } });
    }
  };
  inPage('page.flags', info.offset.get('page.flags'), 8);
  inPage('page.mapping', info.offset.get('page.mapping'), 8);
  inPage('page._mapcount', offMapcount, 4);
  inPage('page.private', offPrivate, 8);
  inPage(compoundKey, offCompoundHead, 4);
  inPage('compound order', orderOffset || undefined, 2);
  inPage('compound dtor', dtorOffset || undefined, 8);
  // MAX_ORDER + 1 (NR_PAGE_ORDERS): 11 on x86_64; its power of two sizes the filter's cycles.
  const freeAreaLength = info.length.get('zone.free_area');
  if (freeAreaLength !== undefined && !(Number.isInteger(freeAreaLength) && freeAreaLength >= 1 && freeAreaLength <= 20)) {
    throw new LastwordError('EVMCOREINFO_DAMAGED', `VMCOREINFO LENGTH(zone.free_area)=${freeAreaLength} is not a number of page orders`, { where: { file } });
  }
  // A page type is PAGE_TYPE_BASE's high bits with one type cleared (~PG_buddy = -129 up to 6.11) or
  // set (PGTY_buddy << 24 = 0xf0000000 since 6.12): the top nibble is 0xf and it is never -1, the
  // _mapcount of every untyped page. A damaged value compared equal to most pages: -1 as
  // PAGE_OFFLINE_MAPCOUNT_VALUE excluded ~98% of RAM even at -d 0.
  for (const name of ['PAGE_BUDDY_MAPCOUNT_VALUE', 'PAGE_OFFLINE_MAPCOUNT_VALUE', 'PAGE_SLAB_MAPCOUNT_VALUE', 'PAGE_HUGETLB_MAPCOUNT_VALUE', 'PAGE_UNACCEPTED_MAPCOUNT_VALUE']) {
    const v = u32(name);
    if (v !== undefined && (v >>> 28 !== 0xf || v === 0xffffffff)) {
      throw new LastwordError('EVMCOREINFO_DAMAGED', `VMCOREINFO NUMBER(${name})=${info.number.get(name)} is not a page type`, { where: { file } });
    }
  }

  return {
    sizePage,
    offFlags: need(info.offset, 'OFFSET', 'page.flags'),
    offMapping: need(info.offset, 'OFFSET', 'page.mapping'),
    offMapcount,
    offPrivate,
    offCompoundHead,
    orderOffset,
    dtorOffset,
    kernelVersion,
    pgLru: num('PG_lru'),
    pgPrivate: num('PG_private'),
    pgSwapcache: num('PG_swapcache'),
    pgSwapbacked: num('PG_swapbacked'),
    pgSlab: num('PG_slab'),
    pgHwpoison: num('PG_hwpoison'),
    pgHugetlb: num('PG_hugetlb'),
    headMaskLo: Number(headMask & 0xffffffffn),
    headMaskHi: Number(headMask >> 32n),
    buddy,
    pgBuddy: num('PG_buddy'),
    buddyValue: u32('PAGE_BUDDY_MAPCOUNT_VALUE') ?? 0,
    offlineValue: u32('PAGE_OFFLINE_MAPCOUNT_VALUE'),
    slabValue: u32('PAGE_SLAB_MAPCOUNT_VALUE'),
    hugetlbValue: u32('PAGE_HUGETLB_MAPCOUNT_VALUE'),
    unacceptedValue: u32('PAGE_UNACCEPTED_MAPCOUNT_VALUE'),
    hugetlbDtor: info.number.get('HUGETLB_PAGE_DTOR'),
    freeHugePage: info.symbol.get('free_huge_page'),
    freeAreaLength,
  };
}

/** makedumpfile's test_bit(): int mask 1 << (nr & 31); bit 31 sign-extends over the high word. */
function testBit(nr: number, lo: number, hi: number): boolean {
  const n = nr & 31;
  if (n === 31) return (lo >>> 31) !== 0 || hi !== 0;
  return ((lo >>> n) & 1) !== 0;
}

/** `flags & (1UL << nr)` where nr may be -1 (missing key): x86 shifts by nr & 63. */
function testBit64(nr: number, lo: number, hi: number): boolean {
  const n = nr & 63;
  return n < 32 ? ((lo >>> n) & 1) !== 0 : ((hi >>> (n - 32)) & 1) !== 0;
}

/**
 * Classifies the struct page at `at` in `pages` (pfn `pfn`). `nextAt` is the offset of the
 * following struct page when makedumpfile would look at it (head pages not last in its 512-page
 * cache), else -1. Returns 'tail' for compound tails, undefined for pages that are kept.
 */
export function classifyPage(r: PageRules, dumpLevel: number, pages: Buffer, at: number, nextAt: number, pfn: number): PageDecision | 'tail' | undefined {
  const flagsLo = pages.readUInt32LE(at + r.offFlags);
  const flagsHi = pages.readUInt32LE(at + r.offFlags + 4);
  const mappingLo = pages.readUInt32LE(at + r.offMapping);
  const mapcount = r.offMapcount !== undefined ? pages.readUInt32LE(at + r.offMapcount) : 0;

  let order = 0;
  let dtor: bigint = 0n;
  let dtorIsHugetlb = false;
  if (nextAt >= 0 && ((flagsLo & r.headMaskLo) !== 0 || (flagsHi & r.headMaskHi) !== 0)) {
    if (r.hugetlbValue !== undefined) {
      order = pages.readUInt8(nextAt + r.offFlags);
      dtorIsHugetlb = mapcount === r.hugetlbValue;
    } else if (r.pgHugetlb !== NOT_FOUND) {
      const f1Lo = pages.readUInt32LE(nextAt + r.offFlags);
      const f1Hi = pages.readUInt32LE(nextAt + r.offFlags + 4);
      order = f1Lo & 0xff;
      dtorIsHugetlb = testBit64(r.pgHugetlb, f1Lo, f1Hi);
    } else {
      const wide = r.kernelVersion >= KERNEL_4_16;
      if (r.orderOffset) order = wide ? pages.readUInt8(nextAt + r.orderOffset) : pages.readUInt16LE(nextAt + r.orderOffset);
      if (r.dtorOffset) {
        if (wide) dtor = BigInt(pages.readUInt8(nextAt + r.dtorOffset));
        else if (r.kernelVersion >= KERNEL_4_4) dtor = BigInt(pages.readUInt16LE(nextAt + r.dtorOffset));
        else dtor = pages.readBigUInt64LE(nextAt + r.dtorOffset);
      }
    }
    // check_order: an order that is too big or a misaligned head means order 0.
    if (order >= 64 || pfn % 2 ** order !== 0) order = 0;
  }
  const compoundHead = r.offCompoundHead !== undefined ? pages.readUInt32LE(at + r.offCompoundHead) : 0;
  if (compoundHead & 1) return 'tail';

  const isSlab = (r.slabValue !== undefined && mapcount === r.slabValue) || testBit64(r.pgSlab, flagsLo, flagsHi);
  const isAnon = (mappingLo & 1) !== 0 && !isSlab;
  const isPrivate = testBit(r.pgPrivate, flagsLo, flagsHi);
  const isCache = testBit(r.pgLru, flagsLo, flagsHi)
    || ((r.pgSwapbacked === NOT_FOUND || testBit(r.pgSwapbacked, flagsLo, flagsHi)) && testBit(r.pgSwapcache, flagsLo, flagsHi));
  const nrPages = 2 ** order;

  if (dumpLevel & DL_EXCLUDE_FREE && r.buddy) {
    const isBuddy = r.buddy === 'mapcount' ? !isSlab && mapcount === r.buddyValue : testBit64(r.pgBuddy, flagsLo, flagsHi);
    if (isBuddy) {
      const priv = pages.readBigUInt64LE(at + r.offPrivate!);
      // makedumpfile warns and keeps the page when the order is impossible.
      if (r.freeAreaLength !== undefined && priv >= BigInt(r.freeAreaLength)) return undefined;
      return { cls: 'free', nrPages: 2 ** Number(priv) };
    }
  }
  if (dumpLevel & DL_EXCLUDE_FREE && r.unacceptedValue !== undefined && mapcount === r.unacceptedValue) {
    return { cls: 'free', nrPages: 2 ** ((r.freeAreaLength ?? 0) - 1) };
  }
  if (dumpLevel & DL_EXCLUDE_CACHE && isCache && !isPrivate && !isAnon) return { cls: 'cache', nrPages };
  if (dumpLevel & DL_EXCLUDE_CACHE_PRI && isCache && !isAnon) return { cls: isPrivate ? 'cachePrivate' : 'cache', nrPages };
  if (dumpLevel & DL_EXCLUDE_USER_DATA) {
    const isHugetlb = dtorIsHugetlb
      || (r.hugetlbDtor !== undefined && r.hugetlbDtor === dtor)
      || (r.freeHugePage !== undefined && r.freeHugePage === dtor);
    if (isAnon || isHugetlb) return { cls: 'user', nrPages };
  }
  if (r.pgHwpoison !== NOT_FOUND && testBit(r.pgHwpoison, flagsLo, flagsHi)) return { cls: 'hwpoison', nrPages };
  if (r.offlineValue !== undefined && !isSlab && mapcount === r.offlineValue) return { cls: 'offline', nrPages };
  return undefined;
}

/**
 * What a page is to crash at startup (runtime/filter/crash-first.ts): slab, PG_reserved (bit
 * `pgReserved`; -1 = not tested), 'tail' for a compound tail (its head says what it is), or
 * undefined for any other page.
 */
export function kernelPageKind(r: PageRules, pgReserved: number, pages: Buffer, at: number): 'slab' | 'reserved' | 'tail' | undefined {
  if (r.offCompoundHead !== undefined && (pages.readUInt32LE(at + r.offCompoundHead) & 1) !== 0) return 'tail';
  const flagsLo = pages.readUInt32LE(at + r.offFlags);
  const flagsHi = pages.readUInt32LE(at + r.offFlags + 4);
  const mapcount = r.offMapcount !== undefined ? pages.readUInt32LE(at + r.offMapcount) : 0;
  if ((r.slabValue !== undefined && mapcount === r.slabValue) || (r.pgSlab >= 0 && testBit64(r.pgSlab, flagsLo, flagsHi))) return 'slab';
  if (pgReserved >= 0 && testBit64(pgReserved, flagsLo, flagsHi)) return 'reserved';
  return undefined;
}

/**
 * The address of the head of the compound tail page at `page`, from its tail marker word `info`:
 * compound_head is the head's address + 1; Linux 7.1's compound_info is, where struct page's size
 * is a power of 2, a mask + 1 that the tail's own address is ANDed with (the 7.2 lab vmcore's tails
 * hold 0xffffffffffffff01 for order 2). A vmemmap address is never such a mask.
 */
export function compoundHeadOf(info: bigint, page: bigint): bigint {
  const m = info - 1n;
  const low = BigInt.asUintN(64, ~m) + 1n;
  return low <= 1n << 40n && (low & (low - 1n)) === 0n ? page & m : m;
}
