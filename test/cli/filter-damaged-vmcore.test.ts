// `lastword filter` on a vmcore whose VMCOREINFO or program headers are damaged where the dump does
// not depend on it (found by fuzzing): a malformed line of a key nothing needs, a PAGESIZE that is no
// page size, an impossible LENGTH(zone.free_area), a PT_LOAD with p_memsz below p_filesz. Each cost
// the whole dump before; now each is one warning and the dump is written (every page, when the
// filter cannot trust what it would classify pages by). And a mem_map the filter cannot read: saved
// unfiltered as before, now with a warning.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NR_PAGES, PAGE_OFFSET, writeMemMapVmcore } from '../../initramfs/executable/synthetic-memmap.ts';
import { repo } from '../support/lab.ts';
import { tempDir } from '../dumpfile/support.ts';

const lastword = (args: string[]) => spawnSync(process.execPath, [path.join(repo, 'runtime', 'main.ts'), ...args], { encoding: 'utf8' });

for (const [what, damage, warning, allPages] of [
  ['a malformed line of a key nothing needs', { extra: ['SYMBOL(kallsyms_num_syms)=zzzzzzzz'] }, /warning: EVMCOREINFO_DAMAGED: VMCOREINFO line \d+: SYMBOL\(kallsyms_num_syms\) is not hex: "zzzzzzzz"/, false],
  ['a line without KEY=value', { extra: ['OSRELEASE'] }, /warning: EVMCOREINFO_DAMAGED: VMCOREINFO line \d+: line without KEY=value: "OSRELEASE"/, false],
  ['a key given twice (makedumpfile takes the first)', { extra: ['SIZE(page)=128'] }, /warning: EVMCOREINFO_DAMAGED: VMCOREINFO line \d+: SIZE\(page\) again; the first one is used/, false],
  ['PAGESIZE=9999', { drop: ['PAGESIZE'], extra: ['PAGESIZE=9999'] }, /warning: VMCOREINFO PAGESIZE=9999 is not a page size; using 4096/, false],
  ['LENGTH(zone.free_area)=99', { drop: ['LENGTH(zone.free_area)'], extra: ['LENGTH(zone.free_area)=99'] }, /warning: dump level 31 not possible \(EVMCOREINFO_DAMAGED: VMCOREINFO LENGTH\(zone\.free_area\)=99 is not a number of page orders/, true],
] as const) {
  test(`${what}: one warning, and the dump is written and reads back complete`, (t) => {
    const dir = tempDir(t);
    const vmcore = path.join(dir, 'vmcore');
    // pfns 12-15 free (a buddy block of order 2): level 31 leaves them out when it can classify pages
    writeMemMapVmcore(vmcore, new Map([[12, { mapcount: -129, private: 2n }]]), { drop: 'drop' in damage ? [...damage.drop] : [], extra: [...damage.extra] });
    const out = path.join(dir, 'dump');
    const r = lastword(['filter', '-l', '-d', '31', vmcore, out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, warning);
    const info = lastword(['info', out]);
    assert.equal(info.status, 0, info.stderr);
    assert.match(info.stdout, /status: +complete/);
    const dumpable = Number(/dumpable +(\d+)/.exec(info.stdout)?.[1]);
    if (allPages) assert.equal(dumpable, NR_PAGES);
    else assert.equal(dumpable, NR_PAGES - 4, info.stdout);
  });
}

test('a PT_LOAD whose p_memsz is below its p_filesz: ELF and kdump-compressed dumps both hold its pages, with one warning (-E failed before)', (t) => {
  const dir = tempDir(t);
  const vmcore = path.join(dir, 'vmcore');
  const paddr = 0x100000;
  writeMemMapVmcore(vmcore, new Map(), { extraLoads: [{ paddr, vaddr: PAGE_OFFSET + BigInt(paddr), data: Buffer.alloc(8192, 0x5a), memSize: 0 }] });
  for (const format of ['-E', '-l']) {
    const out = path.join(dir, `dump${format}`);
    const r = lastword(['filter', format, '-d', '0', vmcore, out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /warning: .*PT_LOAD 1 \(paddr 0x100000\) has p_memsz 0 < p_filesz 8192; taken as 8192/);
    assert.match(r.stderr, new RegExp(`${NR_PAGES + 2} of ${NR_PAGES + 2} pages saved`));
  }
});

test('a mem_map that cannot be read (its page tables broken): every page is saved and a warning says the filter stopped (it was silent)', (t) => {
  const dir = tempDir(t);
  const vmcore = path.join(dir, 'vmcore');
  writeMemMapVmcore(vmcore, new Map([[12, { mapcount: -129, private: 2n }]]), { memMap: 0xffffea0000000000n });
  const r = lastword(['filter', '-l', '-d', '31', vmcore, path.join(dir, 'dump')]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`${NR_PAGES} of ${NR_PAGES} pages saved`));
  assert.match(r.stderr, /warning: pages could not be classified from some pfn on \(EFILTER_MEMMAP: .*cannot read struct page of pfn 0x0 at 0xffffea0000000000.*\); those were saved unfiltered/);
});

test('a vmcore file cut inside a PT_LOAD (a copy that stopped): what is there is written, the dump flagged incomplete with the missing pages counted (it was refused)', (t) => {
  const dir = tempDir(t);
  const vmcore = path.join(dir, 'vmcore');
  const paddr = 0x100000;
  writeMemMapVmcore(vmcore, new Map(), { extraLoads: [{ paddr, vaddr: PAGE_OFFSET + BigInt(paddr), data: Buffer.alloc(16 * 4096, 0x5a) }] });
  fs.truncateSync(vmcore, fs.statSync(vmcore).size - 10 * 4096);     // the last 10 pages of the second load
  for (const format of ['-l', '-E']) {
    const out = path.join(dir, `dump${format}`);
    const r = lastword(['filter', format, '-d', '0', vmcore, out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /warning: \S+vmcore: 10 pages could not be read, the first at offset 0x[0-9a-f]+ \(pfn 0x106\): the vmcore file ends before it; the dump has every other page and is flagged incomplete/);
    const info = lastword(['info', out]);
    assert.equal(info.status, 0, info.stderr);
    assert.match(info.stdout, /INCOMPLETE/);
    if (format === '-l') assert.match(info.stdout, /not written +10\b/);
  }
});
