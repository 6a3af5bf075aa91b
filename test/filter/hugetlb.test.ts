// Hugetlb pages on real guests booted with hugepages=8: 6.1 marks them by compound_dtor, 6.12 and 7.x by
// the hugetlb page type; either way level 8 excludes the 16 MiB pool exactly like makedumpfile.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { openKdumpFile } from '../../runtime/dumpfile/kdump-reader.ts';
import { createPageFilter } from '../../runtime/filter/index.ts';
import { openVmcore } from '../../runtime/vmcore/index.ts';
import type { Vmcore } from '../../runtime/vmcore/index.ts';
import { fullBitmap } from './bitmaps.ts';
import { KERNEL_SERIES } from '../support/lab.ts';
import { hugetlbVmcore } from './hugetlb-vmcore.ts';
import { makedumpfileHead } from './reference.ts';

const HUGEPAGES = 8;

for (const series of KERNEL_SERIES) {
  describe(`hugetlb pool of a real ${series} guest`, () => {
    let dir: string;
    let file: string;
    let vmcore: Vmcore;
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-hugetlb-'));
      file = hugetlbVmcore(series);
      vmcore = openVmcore(file);
    });
    after(() => {
      vmcore?.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    for (const level of [8, 31]) {
      test(`level ${level} excludes the hugetlb pages makedumpfile excludes`, async () => {
        const ref = openKdumpFile(await makedumpfileHead(series, file, level, path.join(dir, `d${level}.kdump`)));
        try {
          const filter = createPageFilter(vmcore, level, { strict: true });
          const ours = fullBitmap(filter);
          const theirs = Buffer.alloc(ours.length);
          ref.readBitmap(2, 0, theirs);
          assert.ok(ours.equals(theirs), 'same 2nd bitmap');
          assert.ok(filter.counts.user >= HUGEPAGES * 512, `user pages ${filter.counts.user} include the ${HUGEPAGES} x 2 MiB pool`);
        } finally {
          ref.close();
        }
      });
    }
  });
}
