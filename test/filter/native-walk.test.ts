// The native mem_map walk (runtime/filter/native/page-walk.cc) against the TypeScript loop it
// replaces, on real guests of three kernel generations (plain and with a hugetlb pool): the same
// 2nd bitmap and the same class counts for every dump level bit and some mixtures.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPageFilter } from '../../runtime/filter/index.ts';
import { openVmcore } from '../../runtime/vmcore/index.ts';
import { labVmcore, UNSTABLE_SERIES } from '../support/lab.ts';
import { hugetlbVmcore } from './hugetlb-vmcore.ts';

const LEVELS = [2, 4, 8, 16, 31, 2 | 16, 8 | 16, 4 | 8];

for (const [name, file] of [
  ['6.1 guest', () => labVmcore({ series: '6.1' })],
  ['6.12 guest', () => labVmcore({ series: '6.12' })],
  [`${UNSTABLE_SERIES}.x guest (tail pages marked by compound_info)`, () => labVmcore({ series: UNSTABLE_SERIES })],
  ['6.1 guest with a hugetlb pool', () => hugetlbVmcore('6.1')],
  ['6.12 guest with a hugetlb pool', () => hugetlbVmcore('6.12')],
] as const) {
  describe(`native walk on a real ${name}`, () => {
    for (const level of LEVELS) {
      test(`dump level ${level}: the same bitmap and counts as the TypeScript walk`, () => {
        const vmcore = openVmcore(file());
        try {
          // Small cycles, so ranges that cross a cycle end (carries) are compared too.
          const native = createPageFilter(vmcore, level, { strict: true, cyclePfns: 1 << 18 });
          const ts = createPageFilter(vmcore, level, { strict: true, cyclePfns: 1 << 18, native: false });
          const a = Buffer.alloc(native.cyclePfns / 8), b = Buffer.alloc(ts.cyclePfns / 8);
          let excluded = 0;
          for (let start = 0; start < native.maxMapnr; start += native.cyclePfns) {
            const end = Math.min(start + native.cyclePfns, native.maxMapnr);
            native.fillCycle(start, end, a);
            ts.fillCycle(start, end, b);
            const bytes = Math.ceil((end - start) / 8);
            assert.ok(a.subarray(0, bytes).equals(b.subarray(0, bytes)), `bitmaps differ in cycle [${start}, ${end})`);
          }
          assert.deepEqual(native.counts, ts.counts);
          for (const k of ['cache', 'cachePrivate', 'user', 'free'] as const) excluded += native.counts[k];
          assert.ok(excluded > 0, 'the level excluded pages (the comparison is not vacuous)');
        } finally {
          vmcore.close();
        }
      });
    }
  });
}
