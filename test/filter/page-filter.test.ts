// The page filter's 2nd bitmap against makedumpfile's on real kdump vmcores of Debian 6.1, 6.12 and
// unstable's 7.x guests (read with our kdump-compressed reader; for 7.x makedumpfile gets the
// vmcore its upstream fix reads, see reference.ts), plus rule and cycle edges on a synthetic mem_map.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { openKdumpFile } from '../../runtime/dumpfile/kdump-reader.ts';
import { LastwordError } from '../../runtime/errors.ts';
import { createPageFilter } from '../../runtime/filter/index.ts';
import { openVmcore } from '../../runtime/vmcore/index.ts';
import type { Vmcore } from '../../runtime/vmcore/index.ts';
import { KERNEL_SERIES, labVmcore } from '../support/lab.ts';
import { differingPfns, fullBitmap } from './bitmaps.ts';
import { makedumpfileHead } from './reference.ts';
import { NR_PAGES, PAGE_OFFSET, PG, compound, structPageAddr, writeMemMapVmcore } from '../../initramfs/executable/synthetic-memmap.ts';
import type { PageSpec } from '../../initramfs/executable/synthetic-memmap.ts';

const LEVELS = [0, 1, 2, 4, 8, 16, 31, 17, 26];

for (const series of KERNEL_SERIES) {
  describe(`page filter equals makedumpfile on a real ${series} kdump vmcore`, () => {
    let dir: string;
    let file: string;
    let vmcore: Vmcore;
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-filter-'));
      file = labVmcore({ series });
      vmcore = openVmcore(file);
    });
    after(() => {
      vmcore?.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    for (const level of LEVELS) {
      test(`dump level ${level}: the same pfns as makedumpfile -d ${level}`, async () => {
        const ref = openKdumpFile(await makedumpfileHead(series, file, level, path.join(dir, `d${level}.kdump`)));
        try {
          const filter = createPageFilter(vmcore, level, { strict: true });
          assert.equal(filter.fallbackReason, undefined);
          assert.equal(filter.maxMapnr, ref.maxMapnr);
          const ours = fullBitmap(filter);
          const theirs = Buffer.alloc(ours.length);
          ref.readBitmap(2, 0, theirs);
          assert.deepEqual(differingPfns(ours, theirs, filter.maxMapnr), [], 'pfns where the 2nd bitmaps differ');
          assert.equal(filter.counts.dumpable, ref.dumpablePages);
          if (level & 16) assert.ok(filter.counts.free > 0, 'the guest had free pages');
          if (level & 2) assert.ok(filter.counts.cache > 0, 'the guest had page cache');
          if (level & 8) assert.ok(filter.counts.user > 0, 'the guest had anonymous pages');
        } finally {
          ref.close();
        }
      });
    }

    test('small, unaligned cycles asked in any order give the same bitmap as one pass', () => {
      const whole = fullBitmap(createPageFilter(vmcore, 31, { strict: true }));
      // 8200 pfns: not a multiple of any buddy/compound size, so ranges cross cycle ends.
      const small = createPageFilter(vmcore, 31, { strict: true, cyclePfns: 8200 });
      assert.equal(small.cyclePfns, 8200);
      assert.deepEqual(differingPfns(fullBitmap(small, 'reverse'), whole, small.maxMapnr), []);
      assert.deepEqual(differingPfns(fullBitmap(small), whole, small.maxMapnr), [], 'second pass equals the first');
    });
  });
}

describe('page filter rules and cycles on a synthetic mem_map', () => {
  let dir: string;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-filter-syn-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const pages = new Map<number, PageSpec>();
  pages.set(8, { mapcount: -129, private: 2n });                       // buddy block 8..11
  pages.set(13, { mapcount: -129, private: 2n });                      // misaligned buddy 13..16 (crosses 16)
  pages.set(20, { flags: 1n << BigInt(PG.lru) });                      // page cache
  pages.set(21, { flags: (1n << BigInt(PG.lru)) | (1n << BigInt(PG.private)) }); // private page cache
  pages.set(22, { mapping: 0xffff888000100001n });                     // anonymous
  pages.set(23, { flags: 1n << BigInt(PG.slab), mapping: 0xffff888000100001n }); // slab: never anon
  pages.set(24, { flags: 1n << BigInt(PG.hwpoison) });                 // hwpoison: always excluded
  pages.set(25, { mapcount: -257 });                                   // offline: always excluded
  pages.set(26, { flags: 1n << BigInt(PG.swapcache) });                // swapcache without swapbacked: kept
  compound(pages, 32, 2, {}, 2);                                       // hugetlb (dtor 2) 32..35
  compound(pages, 40, 3, { mapping: 0xffff888000200001n });            // anonymous THP 40..47
  compound(pages, 51, 1, { flags: 1n << BigInt(PG.lru) });             // misaligned head: order 0

  const expectedExcluded = (level: number): number[] => {
    const out = [24, 25];
    if (level & 16) out.push(8, 9, 10, 11, 13, 14, 15, 16);
    if (level & 2) out.push(20);
    if (level & 4) out.push(20, 21);
    if (level & 8) out.push(22, 32, 33, 34, 35, 40, 41, 42, 43, 44, 45, 46, 47);
    if (level & 6) out.push(51);
    return [...new Set(out)].sort((a, b) => a - b);
  };

  for (const level of [0, 2, 4, 8, 16, 31]) {
    test(`level ${level} excludes exactly the pages makedumpfile's rules name, with 8-pfn cycles too`, () => {
      const f = path.join(dir, `syn-${level}.vmcore`);
      writeMemMapVmcore(f, pages);
      const v = openVmcore(f);
      try {
        for (const cyclePfns of [64, 8]) {
          const filter = createPageFilter(v, level, { strict: true, cyclePfns });
          const bits = fullBitmap(filter, cyclePfns === 8 ? 'reverse' : 'forward');
          const excluded: number[] = [];
          for (let p = 0; p < NR_PAGES; p++) if (!((bits[p >> 3] >> (p & 7)) & 1)) excluded.push(p);
          assert.deepEqual(excluded, expectedExcluded(level), `cycle ${cyclePfns}`);
        }
      } finally {
        v.close();
      }
    });
  }

  test('a PT_LOAD at 8 TiB, past 2^31 pfns and every cycle of the mem_map: the cycles\' first bitmaps do not wrap (a RangeError wrote no dump)', () => {
    const f = path.join(dir, 'syn-8tib.vmcore');
    const paddr = 0x80100000000;
    writeMemMapVmcore(f, pages, { extraLoads: [{ paddr, vaddr: PAGE_OFFSET + BigInt(paddr), data: Buffer.alloc(4096, 0x5a) }] });
    const v = openVmcore(f);
    try {
      for (const cyclePfns of [64, 8]) {
        const filter = createPageFilter(v, 31, { strict: true, cyclePfns });
        const bits = fullBitmap(filter, 'forward');
        const excluded: number[] = [];
        for (let p = 0; p < NR_PAGES; p++) if (!((bits[p >> 3] >> (p & 7)) & 1)) excluded.push(p);
        assert.deepEqual(excluded, expectedExcluded(31), `cycle ${cyclePfns}`);
      }
    } finally {
      v.close();
    }
  });

  test('6.12-style page types: slab, hugetlb (order in the first tail flags), buddy and unaccepted by value', () => {
    // PGTY_* << 24 as the kernel exports them since 6.12; no PG_slab, no compound_order/dtor.
    const pgty = (t: number) => (t << 24) | 0;
    const typed = new Map<number, PageSpec>();
    typed.set(8, { mapcount: pgty(0xf0), private: 1n });                         // buddy 8..9
    typed.set(20, { mapcount: pgty(0xf5), mapping: 0xffff888000100001n });       // slab: not anon
    typed.set(22, { mapping: 0xffff888000100001n });                              // anon
    typed.set(24, { mapcount: pgty(0xf1) });                                     // offline
    typed.set(32, { mapcount: pgty(0xf4), flags: 1n << BigInt(PG.head) });      // hugetlb head, order 2
    typed.set(33, { flags: 2n, compoundHead: 1n });
    for (const t of [34, 35]) typed.set(t, { compoundHead: 1n });
    typed.set(56, { mapcount: pgty(0xf7) });                                     // unaccepted: 1 << (3 - 1)
    const f = path.join(dir, 'typed.vmcore');
    writeMemMapVmcore(f, typed, {
      drop: ['NUMBER(PG_slab)', 'OFFSET(page.compound_dtor)', 'OFFSET(page.compound_order)', 'NUMBER(HUGETLB_PAGE_DTOR)',
        'NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)', 'NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)', 'LENGTH(zone.free_area)'],
      extra: [`NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=${pgty(0xf0)}`, `NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=${pgty(0xf1)}`,
        `NUMBER(PAGE_HUGETLB_MAPCOUNT_VALUE)=${pgty(0xf4)}`, `NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)=${pgty(0xf5)}`,
        `NUMBER(PAGE_UNACCEPTED_MAPCOUNT_VALUE)=${pgty(0xf7)}`, 'LENGTH(zone.free_area)=3'],
    });
    const v = openVmcore(f);
    try {
      const excludedAt = (level: number) => {
        const bits = fullBitmap(createPageFilter(v, level, { strict: true, cyclePfns: 8 }));
        return Array.from({ length: NR_PAGES }, (_, p) => p).filter((p) => !((bits[p >> 3] >> (p & 7)) & 1));
      };
      assert.deepEqual(excludedAt(0), [24]);
      assert.deepEqual(excludedAt(8), [22, 24, 32, 33, 34, 35]);
      assert.deepEqual(excludedAt(16), [8, 9, 24, 56, 57, 58, 59]);
    } finally {
      v.close();
    }
  });

  test('7.1+ names the tail marker page.compound_info: a tail whose mapping word looks anonymous stays with its head', () => {
    // Page 1 of a large folio holds _entire_mapcount (-1) where page.mapping is on 7.1+, so its
    // mapping word has bit 0 set; only compound_info's bit 0 says it is a tail, not a user page.
    const tails = new Map<number, PageSpec>();
    tails.set(22, { mapping: 0xffff888000100001n });                              // anon
    tails.set(48, { flags: 1n << BigInt(PG.head) });                             // kernel compound page, order 1
    tails.set(49, { compoundHead: structPageAddr(48) | 1n, compoundOrder: 1, mapping: 0xffffffffn });
    const excludedAt8 = (keys: { drop?: string[]; extra?: string[] }) => {
      const f = path.join(dir, `tails-${keys.extra?.length ?? 0}.vmcore`);
      writeMemMapVmcore(f, tails, keys);
      const v = openVmcore(f);
      try {
        const bits = fullBitmap(createPageFilter(v, 8, { strict: true }));
        return Array.from({ length: NR_PAGES }, (_, p) => p).filter((p) => !((bits[p >> 3] >> (p & 7)) & 1));
      } finally {
        v.close();
      }
    };
    assert.deepEqual(excludedAt8({ drop: ['OFFSET(page.compound_head)'], extra: ['OFFSET(page.compound_info)=8'] }), [22]);
    // With neither key a tail cannot be told from a user page (makedumpfile <= 1.7.9 on 7.1+).
    assert.deepEqual(excludedAt8({ drop: ['OFFSET(page.compound_head)'] }), [22, 49]);
  });

  test('a missing VMCOREINFO key falls back to level 0 and names the key', () => {
    const f = path.join(dir, 'nokey.vmcore');
    writeMemMapVmcore(f, pages, { drop: ['SIZE(page)'] });
    const v = openVmcore(f);
    try {
      const filter = createPageFilter(v, 31);
      assert.match(filter.fallbackReason ?? '', /^EVMCOREINFO_KEY: VMCOREINFO has no SIZE\(page\)/);
      assert.equal(filter.dumpLevel, 1, 'only the zero-page bit of level 31 still applies');
      const bits = fullBitmap(filter);
      assert.ok(bits.every((b) => b === 0xff), 'every page with data is kept');
      assert.throws(() => createPageFilter(v, 31, { strict: true }), (e: unknown) => e instanceof LastwordError && e.code === 'EVMCOREINFO_KEY');
    } finally {
      v.close();
    }
  });

  test('a damaged struct page offset falls back to level 0 and names the key', () => {
    const f = path.join(dir, 'badoffset.vmcore');
    writeMemMapVmcore(f, pages, { drop: ['OFFSET(page.mapping)'], extra: ['OFFSET(page.mapping)=9999'] });
    const v = openVmcore(f);
    try {
      const filter = createPageFilter(v, 31);
      assert.match(filter.fallbackReason ?? '', /^EVMCOREINFO_DAMAGED: VMCOREINFO OFFSET\(page\.mapping\)=9999 does not fit in SIZE\(page\)=64/);
      assert.ok(fullBitmap(filter).every((b) => b === 0xff));
    } finally {
      v.close();
    }
  });

  for (const [key, bad] of [['PAGE_OFFLINE_MAPCOUNT_VALUE', '-1'], ['PAGE_BUDDY_MAPCOUNT_VALUE', '-1'], ['PAGE_BUDDY_MAPCOUNT_VALUE', '0'], ['PAGE_BUDDY_MAPCOUNT_VALUE', '129']] as const) {
    test(`a damaged page-type value (${key}=${bad}) falls back to saving every page and names the key`, () => {
      // -1 is the _mapcount of every untyped page: taken as the offline type it dropped ~98% of RAM at -d 0.
      const f = path.join(dir, `badtype-${key}${bad}.vmcore`);
      writeMemMapVmcore(f, pages, { drop: [`NUMBER(${key})`], extra: [`NUMBER(${key})=${bad}`] });
      const v = openVmcore(f);
      try {
        for (const level of [0, 31]) {
          const filter = createPageFilter(v, level);
          assert.ok(filter.fallbackReason?.startsWith(`EVMCOREINFO_DAMAGED: VMCOREINFO NUMBER(${key})=${bad} is not a page type (${f})`), filter.fallbackReason);
          assert.ok(fullBitmap(filter).every((b) => b === 0xff), 'every page with data is kept');
        }
      } finally {
        v.close();
      }
    });
  }

  test('an unmapped mem_map falls back to saving every page and names the pfn and address', () => {
    const f = path.join(dir, 'unmapped.vmcore');
    writeMemMapVmcore(f, pages, { memMap: 0xffffea0000000000n });
    const v = openVmcore(f);
    try {
      const filter = createPageFilter(v, 31);
      assert.equal(filter.fallbackReason, undefined, 'mem_section itself is fine');
      const bits = fullBitmap(filter);
      assert.ok(bits.every((b) => b === 0xff));
      assert.match(filter.fallbackReason ?? '', /^EFILTER_MEMMAP: .*cannot read struct page of pfn 0x0 at 0xffffea0000000000: EVMCORE_UNMAPPED: .*vaddr 0xffffea0000000000 is not mapped/);
      const strict = createPageFilter(v, 31, { strict: true });
      assert.throws(() => strict.fillCycle(0, 64, Buffer.alloc(8)), (e: unknown) => e instanceof LastwordError && e.code === 'EFILTER_MEMMAP');
    } finally {
      v.close();
    }
  });
});
