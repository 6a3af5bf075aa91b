// Cutting ELF segments for the crash-first order (runtime/dumpfile/elf-crash-first.ts), on plans
// made by hand: the pieces cover each segment's data exactly once with the same addresses, pages of
// the tiers go first, what the kernel-text PT_LOAD already ranked stays unranked in RAM, and a huge
// number of scattered tier pages still gives a bounded number of PT_LOADs. The real dumps (bytes per
// address, crash on a cut dump) are in crash-first.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cutForTiers, fileOrder, type RankedSegment } from '../../runtime/dumpfile/elf-crash-first.ts';
import type { ElfSegment } from '../../runtime/dumpfile/elf-writer.ts';

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
