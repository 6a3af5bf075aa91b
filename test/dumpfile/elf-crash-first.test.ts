// Cutting ELF segments for the crash-first order (runtime/dumpfile/elf-crash-first.ts), on plans
// made by hand: the pieces cover each segment's data exactly once with the same addresses, pages of
// the tiers go first, what the kernel-text PT_LOAD already ranked stays unranked in RAM, and a huge
// number of scattered tier pages still gives a bounded number of PT_LOADs. The real dumps (bytes per
// address, crash on a cut dump) are in crash-first.test.ts.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { cutForTiers, fileOrder, type RankedSegment } from '../../runtime/dumpfile/elf-crash-first.ts';
import { writeElfDump, type ElfSegment } from '../../runtime/dumpfile/elf-writer.ts';
import { DumpOutput } from '../../runtime/dumpfile/output.ts';
import { createPageFilter } from '../../runtime/filter/index.ts';
import { FilePositionalSink } from '../../runtime/targets/target.ts';
import { openVmcore } from '../../runtime/vmcore/index.ts';
import { writeSyntheticVmcore } from '../../initramfs/executable/synthetic-vmcore.ts';
import { assertTextInsideOneRam, assertTextInsideOneRamLoad, tempDir } from './support.ts';

const B = 4096;
const TEXT_VADDR = 0xffffffff81000000n, RAM_VADDR = 0xffff888000000000n;

/** Asserts the pieces of each segment tile its data and keep its p_memsz; returns them per segment. */
function assertTiles(segments: ElfSegment[], pieces: RankedSegment[]): RankedSegment[][] {
  const per: RankedSegment[][] = [];
  let k = 0;
  for (const seg of segments) {
    const mine: RankedSegment[] = [];
    let at = seg.paddr, memSize = 0;
    do {
      const p = pieces[k++]!;
      assert.equal(p.paddr, at, `a piece of the segment at 0x${seg.paddr.toString(16)} starts at 0x${p.paddr.toString(16)}, not 0x${at.toString(16)}`);
      assert.equal(p.vaddr - seg.vaddr, BigInt(p.paddr - seg.paddr), 'vaddr and paddr moved apart');
      at += p.size;
      memSize += p.memSize;
      mine.push(p);
    } while (at < seg.paddr + seg.size);
    assert.equal(at, seg.paddr + seg.size);
    assert.equal(memSize, seg.memSize, 'p_memsz of the pieces');
    per.push(mine);
  }
  assert.equal(k, pieces.length, 'pieces left over');
  return per;
}

test('ELF crash-first cut: tier pages get their tier, the text PT_LOAD ranks the image once, excluded pages stay with the last piece', () => {
  const segments: ElfSegment[] = [
    { paddr: 0x100000, vaddr: TEXT_VADDR, size: 0x10000, memSize: 0x10000 },            // the kernel text PT_LOAD, pfns 0x100-0x10f
    { paddr: 0, vaddr: RAM_VADDR, size: 0x400000, memSize: 0x500000 },                 // RAM, pfns 0-0x3ff, then 0x100 excluded pages
  ];
  const tiers = [Uint32Array.from([0x100, 0x101, 0x200, 0x300]), Uint32Array.from([0x10f, 0x205]), Uint32Array.from([0x3ff])];
  const pieces = cutForTiers(segments, tiers, B);
  const [text, ram] = assertTiles(segments, pieces);
  assertTextInsideOneRam(pieces, 'the cut');
  const rankAt = (list: RankedSegment[], pfn: number) => list.find((p) => pfn * B >= p.paddr && pfn * B < p.paddr + p.size)!.rank;
  // In the text PT_LOAD: 0x100-0x10f is one run (gaps under 16 pages merge), taking tier 0.
  assert.deepEqual(text!.map((p) => [p.paddr, p.size, p.rank]), [[0x100000, 0x10000, 0]]);
  // In RAM: the image's pages are the text PT_LOAD's already; 0x200 and 0x205 merge (tier 0 first).
  assert.equal(rankAt(ram!, 0x100), undefined);
  assert.equal(rankAt(ram!, 0x10f), undefined);
  assert.equal(rankAt(ram!, 0x200), 0);
  assert.equal(rankAt(ram!, 0x203), 0);
  assert.equal(rankAt(ram!, 0x205), 0);
  assert.equal(rankAt(ram!, 0x300), 0);
  assert.equal(rankAt(ram!, 0x3ff), 2);
  assert.equal(rankAt(ram!, 0x0), undefined);
  assert.equal(rankAt(ram!, 0x206), undefined);
  assert.equal(ram!.at(-1)!.memSize - ram!.at(-1)!.size, 0x100000, 'the excluded tail belongs to the last piece');
  // File order: tier 0 (text first, then RAM in address order), tier 2, then the rest in header order.
  const order = fileOrder(pieces).map((i) => pieces[i]!);
  const ranks = order.map((p) => p.rank ?? Infinity);
  assert.deepEqual(ranks, [...ranks].sort((a, b) => a - b));
  assert.equal(order[0], text![0]);
});

test('ELF crash-first cut: a tier run across the image\'s end, whose last pages are excluded, leaves each text piece inside one RAM piece', () => {
  const segments: ElfSegment[] = [
    { paddr: 0x100000, vaddr: TEXT_VADDR, size: 0xc000, memSize: 0x10000 },              // text: pfns 0x100-0x10b, 0x10c-0x10f excluded
    { paddr: 0, vaddr: RAM_VADDR, size: 0x400000, memSize: 0x400000 },                 // RAM: the excluded gap is under PFN_EXCLUDED, written
  ];
  // One run, 0x100-0x112: it starts in the image and ends past it.
  const pieces = cutForTiers(segments, [Uint32Array.from([0x100, 0x10a, 0x112])], B);
  const [text, ram] = assertTiles(segments, pieces);
  assertTextInsideOneRam(pieces, 'the cut');
  assert.deepEqual(text!.map((p) => [p.paddr, p.size, p.memSize, p.rank]), [[0x100000, 0xc000, 0x10000, 0]]);
  // The RAM pages past the image keep the run's tier; those the text PT_LOAD holds do not.
  assert.deepEqual(ram!.map((p) => [p.paddr, p.size, p.rank]), [[0, 0x110000, undefined], [0x110000, 0x3000, 0], [0x113000, 0x2ed000, undefined]]);
});

test('ELF crash-first dump: the same pages and bytes as in pfn order when the image ends in excluded pages and a tier runs past it', async (t) => {
  const dir = tempDir(t);
  const vmcoreFile = path.join(dir, 'vmcore');
  // 1 MiB of RAM at 0; the image is pfns 0x40-0x4f, its last 4 pages zero (excluded at -d 1).
  const ram = Buffer.alloc(0x100 * B);
  for (let pfn = 0; pfn < 0x100; pfn++) if (pfn < 0x4c || pfn >= 0x50) ram.write(`page ${pfn}`, pfn * B);
  writeSyntheticVmcore(vmcoreFile, 'OSRELEASE=6.1.0-test\nPAGESIZE=4096\nCRASHTIME=1700000000\n', [
    { paddr: 0x40 * B, vaddr: TEXT_VADDR, data: ram.subarray(0x40 * B, 0x50 * B) },
    { paddr: 0, vaddr: RAM_VADDR, data: ram },
  ]);
  const dumps: Record<string, string> = {};
  for (const [name, tiers] of [['plain', []], ['first', [Uint32Array.from([0x40, 0x4a, 0x52]), Uint32Array.from([0x90])]]] as const) {
    const vmcore = openVmcore(vmcoreFile);
    dumps[name] = path.join(dir, name);
    try {
      const output = new DumpOutput(new FilePositionalSink(fs.openSync(dumps[name]!, 'w'), dumps[name]!));
      const order = tiers.length ? { observe: () => {}, tiers: () => tiers.map((x) => Uint32Array.from(x)) } : undefined;
      const summary = await writeElfDump({ vmcore, filter: createPageFilter(vmcore, 1), output, ...(order ? { order } : {}) });
      assert.equal(summary.dumpablePages, 0x100 - 4);
    } finally {
      vmcore.close();
    }
  }
  assertTextInsideOneRamLoad(dumps.first!);
  const a = openVmcore(dumps.first!), b = openVmcore(dumps.plain!);
  try {
    assert.ok(a.loads.length > b.loads.length, `${a.loads.length} RAM PT_LOADs crash-first, ${b.loads.length} in pfn order`);
    const pa = Buffer.alloc(B), pb = Buffer.alloc(B);
    for (let pfn = 0; pfn < 0x100; pfn++) {
      assert.equal(a.pfnHasData(pfn), b.pfnHasData(pfn), `pfn 0x${pfn.toString(16)}: data crash-first ${a.pfnHasData(pfn)}, in pfn order ${b.pfnHasData(pfn)}`);
      a.readPages(pfn, 1, pa);
      b.readPages(pfn, 1, pb);
      assert.ok(pa.equals(pb), `pfn 0x${pfn.toString(16)} differs`);
      assert.ok(pa.equals(ram.subarray(pfn * B, (pfn + 1) * B)), `pfn 0x${pfn.toString(16)} is not the vmcore's`);
    }
  } finally {
    a.close();
    b.close();
  }
});

test('ELF crash-first cut: 100,000 scattered tier pages give at most 32 Ki PT_LOADs, still tiling the data; the first tier keeps its runs', () => {
  const pages = 8 << 20;      // 32 GiB
  const segments: ElfSegment[] = [{ paddr: 0, vaddr: RAM_VADDR, size: pages * B, memSize: pages * B }];
  // Tier 1: 90,000 pages every 80 pfns; tier 0: 10,000 pages among them, every 800 pfns from 40.
  const tier1 = Uint32Array.from({ length: 90_000 }, (_, i) => i * 80);
  const tier0 = Uint32Array.from({ length: 10_000 }, (_, i) => 40 + i * 800);
  const pieces = cutForTiers(segments, [tier0, tier1], B);
  assert.ok(pieces.length <= 1 << 15, `${pieces.length} PT_LOADs`);
  const [all] = assertTiles(segments, pieces);
  const rankOf = (pfn: number) => {
    let lo = 0, hi = all!.length - 1;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (all![mid]!.paddr <= pfn * B) lo = mid; else hi = mid - 1; }
    return all![lo]!.rank;
  };
  for (const pfn of tier0) assert.equal(rankOf(pfn), 0, `tier 0 pfn 0x${pfn.toString(16)}`);
  const ranked1 = tier1.filter((pfn) => rankOf(pfn) === 1).length;
  assert.ok(ranked1 > 1000 && ranked1 < tier1.length, `${ranked1} of tier 1's pages kept their tier`);
});
