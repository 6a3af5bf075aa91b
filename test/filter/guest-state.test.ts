// hwpoison and logically offline pages of real guests (hard_offline_page, an inflated
// virtio-balloon; see test/vmcore/guest-state-vmcore.ts): makedumpfile's create_2nd_bitmap walks
// mem_map whenever VMCOREINFO has NUMBER(PG_hwpoison), so even levels 0 and 1 drop them. Our
// 2nd bitmap equals makedumpfile's at levels 0, 1 and 31, and `filter`/`save` use that filter.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { choosePageFilter } from '../../runtime/cli/filter.ts';
import { openKdumpFile } from '../../runtime/dumpfile/kdump-reader.ts';
import { createPageFilter } from '../../runtime/filter/index.ts';
import { openVmcore } from '../../runtime/vmcore/index.ts';
import type { Vmcore } from '../../runtime/vmcore/index.ts';
import { KERNEL_SERIES } from '../support/lab.ts';
import { guestStateVmcore } from '../vmcore/guest-state-vmcore.ts';
import type { GuestStateFacts } from '../vmcore/guest-state-vmcore.ts';
import { differingPfns, fullBitmap } from './bitmaps.ts';
import { makedumpfileHead } from './reference.ts';

for (const series of KERNEL_SERIES) {
  describe(`hwpoison and offline pages of a real ${series} guest`, () => {
    let dir: string;
    let file: string;
    let facts: GuestStateFacts;
    let vmcore: Vmcore;
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-state-'));
      ({ file, facts } = guestStateVmcore(series));
      vmcore = openVmcore(file);
    });
    after(() => {
      vmcore?.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    test('the guest really had them: hwpoison pages flagged, the balloon inflated', () => {
      assert.ok(facts.hwpoison >= 4, `hwpoison pages flagged in the guest: ${facts.hwpoison}`);
      assert.ok(facts.balloonBytes >= 32 << 20, `balloon held ${facts.balloonBytes} bytes`);
    });

    for (const level of [0, 1, 31]) {
      test(`dump level ${level}: the 2nd bitmap equals makedumpfile -d ${level}'s, without the hwpoison and offline pages`, async () => {
        const ref = openKdumpFile(await makedumpfileHead(series, file, level, path.join(dir, `d${level}.kdump`)));
        try {
          const filter = createPageFilter(vmcore, level, { strict: true });
          assert.equal(filter.maxMapnr, ref.maxMapnr, 'max_mapnr');
          const ours = fullBitmap(filter);
          const theirs = Buffer.alloc(ours.length);
          ref.readBitmap(2, 0, theirs);
          assert.deepEqual(differingPfns(ours, theirs, filter.maxMapnr), [], 'pfns where the 2nd bitmaps differ');
          assert.equal(filter.counts.dumpable, ref.dumpablePages);
          assert.equal(filter.counts.hwpoison, facts.hwpoison, 'every poisoned page excluded as hwpoison');
          // The balloon's pages, less any the kernel moved while the DIMM went away, are offline.
          assert.ok(filter.counts.offline >= facts.balloonBytes / vmcore.pageSize / 2, `offline pages: ${filter.counts.offline}`);
        } finally {
          ref.close();
        }
      });
    }

    for (const level of [0, 1]) {
      test(`filter and save choose the mem_map filter at level ${level} too`, async () => {
        const warnings: string[] = [];
        // makedumpfile's cyclic path, as the strict filter below and the reference above.
        const filter = await choosePageFilter(vmcore, level, (m) => warnings.push(m), { cyclicBuffer: true });
        assert.equal(vmcore.partialPages, false);
        assert.deepEqual(warnings, []);
        assert.equal(filter.dumpLevel, level);
        const strict = createPageFilter(vmcore, level, { strict: true });
        assert.ok(fullBitmap(filter).equals(fullBitmap(strict)));
        assert.ok(filter.counts.hwpoison > 0 && filter.counts.offline > 0, JSON.stringify(filter.counts));
      });
    }
  });
}
