// The whole-cycle native walk (page-walk.cc walkCycle: the addon reads the struct pages itself, on
// one or more threads) against the walk a block at a time (struct pages read in TypeScript) and the
// TypeScript loop: the same 2nd bitmap, class counts and carries on real guests of three kernel
// generations, and on a synthetic mem_map of 8-page sections whose ranges cross from one thread's
// sections into the next one's.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPageFilter, type PageFilter } from '../../runtime/filter/index.ts';
import type { PageFilterOptions } from '../../runtime/filter/page-filter.ts';
import { openVmcore } from '../../runtime/vmcore/index.ts';
import type { Vmcore } from '../../runtime/vmcore/index.ts';
import { labVmcore, UNSTABLE_SERIES } from '../support/lab.ts';
import { differingPfns, fullBitmap } from './bitmaps.ts';
import { hugetlbVmcore } from './hugetlb-vmcore.ts';
import { NR_PAGES, PG, compound, writeMemMapVmcore } from '../../initramfs/executable/synthetic-memmap.ts';
import type { PageSpec } from '../../initramfs/executable/synthetic-memmap.ts';

/** The whole bitmap and the counts of a filter made with `opts`, and how its cycles were walked. */
function run(vmcore: Vmcore, level: number, opts: PageFilterOptions, order: 'forward' | 'reverse' = 'forward') {
  const filter: PageFilter = createPageFilter(vmcore, level, { strict: true, ...opts });
  const bits = fullBitmap(filter, order);
  return { bits, counts: filter.counts, walks: filter.walks!, maxMapnr: filter.maxMapnr };
}

for (const [name, file] of [
  ['6.1 guest', () => labVmcore({ series: '6.1' })],
  ['6.12 guest', () => labVmcore({ series: '6.12' })],
  [`${UNSTABLE_SERIES}.x guest`, () => labVmcore({ series: UNSTABLE_SERIES })],
  ['6.1 guest with a hugetlb pool', () => hugetlbVmcore('6.1')],
  ['6.12 guest with a hugetlb pool', () => hugetlbVmcore('6.12')],
] as const) {
  describe(`whole-cycle walk on a real ${name}`, () => {
    let vmcore: Vmcore;
    before(() => { vmcore = openVmcore(file()); });
    after(() => vmcore?.close());

    for (const level of [31, 8 | 16, 2, 4]) {
      // One cycle for the whole guest, and 32 Ki-pfn cycles (one section each: every cycle has a
      // carry and a first section that may resume after a range), asked in reverse too.
      for (const cyclePfns of [undefined, 1 << 15]) {
        test(`level ${level}, ${cyclePfns ? `${cyclePfns}-pfn` : 'default'} cycles: 1, 2 and 5 threads equal the block walk and the TypeScript loop`, () => {
          const block = run(vmcore, level, { cyclePfns, cycleWalk: false });
          const ts = run(vmcore, level, { cyclePfns, native: false });
          assert.ok(block.walks.block > 0 && block.walks.cycle === 0);
          assert.ok(ts.walks.typescript > 0 && ts.walks.cycle === 0);
          assert.deepEqual(differingPfns(block.bits, ts.bits, block.maxMapnr), [], 'block walk vs TypeScript');
          assert.deepEqual(block.counts, ts.counts);
          for (const walkThreads of [1, 2, 5]) {
            for (const order of cyclePfns ? ['forward', 'reverse'] as const : ['forward'] as const) {
              const cycle = run(vmcore, level, { cyclePfns, walkThreads }, order);
              assert.equal(cycle.walks.block + cycle.walks.typescript, 0, `${walkThreads} threads: every cycle walked in one call`);
              assert.ok(cycle.walks.cycle > 0);
              assert.deepEqual(differingPfns(cycle.bits, block.bits, block.maxMapnr), [], `${walkThreads} threads, ${order}: pfns where the bitmaps differ`);
              if (order === 'forward') assert.deepEqual(cycle.counts, block.counts, `${walkThreads} threads: counts`);
            }
          }
          const excluded = block.counts.cache + block.counts.cachePrivate + block.counts.user + block.counts.free;
          assert.ok(excluded > 0, 'the level excluded pages (the comparison is not vacuous)');
        });
      }
    }
  });
}

describe('whole-cycle walk on a synthetic mem_map of 8-page sections', () => {
  let dir: string;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-cycle-walk-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  // Sections of 8 pages (SECTION_SIZE_BITS 15): with 8 threads each section is one thread's share.
  const pages = new Map<number, PageSpec>();
  pages.set(6, { mapcount: -129, private: 2n });                       // misaligned buddy 6..9: into section 1
  pages.set(13, { mapcount: -129, private: 3n });                      // misaligned buddy 13..20: across section 2 into 3
  pages.set(22, { mapping: 0xffff888000100001n });                     // anonymous
  pages.set(23, { flags: 1n << BigInt(PG.lru) });                      // page cache
  compound(pages, 32, 4, { mapping: 0xffff888000200001n });            // anonymous THP 32..47: sections 4 and 5
  compound(pages, 48, 3, {}, 2);                                       // hugetlb 48..55
  pages.set(60, { mapcount: -129, private: 3n });                      // buddy 60..67: past the last pfn

  const expectedExcluded = (level: number): number[] => {
    const out: number[] = [];
    if (level & 16) out.push(6, 7, 8, 9, 13, 14, 15, 16, 17, 18, 19, 20, 60, 61, 62, 63);
    if (level & 8) out.push(22, ...Array.from({ length: 24 }, (_, i) => 32 + i));
    if (level & 2) out.push(23);
    return [...new Set(out)].sort((a, b) => a - b);
  };

  for (const level of [31, 16, 8]) {
    test(`level ${level}: ranges that cross into another thread's sections are cleared and counted once, as in one thread`, () => {
      const f = path.join(dir, `sections-${level}.vmcore`);
      writeMemMapVmcore(f, pages, { sectionBits: 15 });
      const v = openVmcore(f);
      try {
        for (const cyclePfns of [64, 16, 8]) {
          const block = run(v, level, { cyclePfns, cycleWalk: false });
          const ts = run(v, level, { cyclePfns, native: false });
          const excluded: number[] = [];
          for (let p = 0; p < NR_PAGES; p++) if (!((block.bits[p >> 3]! >> (p & 7)) & 1)) excluded.push(p);
          assert.deepEqual(excluded, expectedExcluded(level), `block walk, ${cyclePfns}-pfn cycles`);
          assert.deepEqual(block.bits, ts.bits);
          assert.deepEqual(block.counts, ts.counts);
          for (const walkThreads of [1, 2, 3, 8]) {
            const cycle = run(v, level, { cyclePfns, walkThreads });
            assert.ok(cycle.walks.cycle > 0 && cycle.walks.block === 0, 'walked in one call per cycle');
            assert.deepEqual(cycle.bits, block.bits, `${walkThreads} threads, ${cyclePfns}-pfn cycles`);
            assert.deepEqual(cycle.counts, block.counts, `${walkThreads} threads, ${cyclePfns}-pfn cycles: counts`);
          }
        }
      } finally {
        v.close();
      }
    });
  }

  test('struct pages outside the file: the cycle is walked a block at a time, and the failure named as before', () => {
    const f = path.join(dir, 'outside.vmcore');
    // Section 0's struct pages pointed past the 64 pages of memory.
    writeMemMapVmcore(f, pages, { memMap: 0xffff888000100000n });
    const v = openVmcore(f);
    try {
      const filter = createPageFilter(v, 31, { strict: true, walkThreads: 4 });
      assert.throws(() => fullBitmap(filter), /cannot read struct page of pfn 0x0 at 0xffff888000100000/);
      assert.equal(filter.walks!.cycle, 0);
    } finally {
      v.close();
    }
  });
});
