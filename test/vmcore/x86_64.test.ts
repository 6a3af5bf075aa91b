// x86_64 page-table walks the lab guests cannot produce (their CPU has no LA57, no SME): 5-level
// tables, 1 GiB and 2 MiB leaves, the SME C-bit in entries. Built as real tables in a synthetic core.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { LastwordError } from '../../runtime/errors.ts';
import { START_KERNEL_MAP, X86_64Memory, openVmcore } from '../../runtime/vmcore/index.ts';
import { writeSyntheticVmcore } from '../../initramfs/executable/synthetic-vmcore.ts';

const SME = 1n << 47n;
const PRESENT_RW = 0x63n;
const PSE = 0x80n;

let dir: string;
before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-x86-')); });
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function index(v: bigint, shift: bigint): number {
  return Number((v >> shift) & 511n);
}

/** Memory of 16 pages at physical 0; tables at pfns 1..5; entries carry the SME bit. */
function build(l5: boolean) {
  const mem = Buffer.alloc(16 * 4096);
  const entry = (tablePfn: number, idx: number, value: bigint) => mem.writeBigUInt64LE(value | SME, tablePfn * 4096 + idx * 8);
  const v4k = 0xffd4000000003123n;          // 5-level vmemmap base region, 4 KiB leaf
  const v2m = 0xffd4000000200000n + 0x1234n; // same pmd table, 2 MiB leaf
  const v1g = 0xffd4000040000000n + 0x5678n; // same pud table, 1 GiB leaf
  const v2m0 = 0xffd4000000400000n + 0x2345n; // 2 MiB leaf at physical 0
  const v1g0 = 0xffd4000080000000n + 0x3456n; // 1 GiB leaf at physical 0
  const top = 1;
  let pud = 3;
  if (l5) {
    entry(top, index(v4k, 48n), 0x2000n | PRESENT_RW);   // pgd -> p4d (pfn 2)
    entry(2, index(v4k, 39n), 0x3000n | PRESENT_RW);     // p4d -> pud (pfn 3)
  } else {
    pud = 3;
    entry(top, index(v4k, 39n), 0x3000n | PRESENT_RW);   // pgd -> pud
  }
  entry(pud, index(v4k, 30n), 0x4000n | PRESENT_RW);     // pud -> pmd (pfn 4)
  entry(pud, index(v1g, 30n), 0x40000000n | PRESENT_RW | PSE);
  entry(pud, index(v1g0, 30n), PRESENT_RW | PSE);
  entry(4, index(v2m0, 21n), PRESENT_RW | PSE);
  entry(4, index(v4k, 21n), 0x5000n | PRESENT_RW);       // pmd -> pte (pfn 5)
  entry(4, index(v2m, 21n), 0x200000n | PRESENT_RW | PSE);
  entry(5, index(v4k, 12n), 0x9000n | PRESENT_RW);       // pte -> pfn 9
  mem.write('five-level', 0x9000 + 0x123, 'latin1');
  const f = path.join(dir, `pt-l${l5 ? 5 : 4}.vmcore`);
  writeSyntheticVmcore(f, [
    'OSRELEASE=6.12.0', 'PAGESIZE=4096', 'NUMBER(phys_base)=0', `NUMBER(sme_mask)=${SME}`,
    `SYMBOL(init_top_pgt)=${(START_KERNEL_MAP + 0x1000n).toString(16)}`, `NUMBER(pgtable_l5_enabled)=${l5 ? 1 : 0}`, '',
  ].join('\n'), [{ paddr: 0, vaddr: 0xff11000000000000n, data: mem }]);
  return { f, v4k, v2m, v1g, v2m0, v1g0 };
}

for (const l5 of [true, false]) {
  test(`walks ${l5 ? '5' : '4'}-level tables to 4 KiB, 2 MiB and 1 GiB leaves with the SME bit cleared`, () => {
    const { f, v4k, v2m, v1g, v2m0, v1g0 } = build(l5);
    const v = openVmcore(f);
    try {
      const m = new X86_64Memory(v);
      assert.equal(m.levels, l5 ? 5 : 4);
      assert.equal(m.pageOffset, 0xff11000000000000n);
      assert.equal(m.vtop(v4k), 0x9123);
      assert.equal(m.readVirt(v4k, 10).toString('latin1'), 'five-level');
      assert.equal(m.vtop(v2m0), 0x2345);
      assert.equal(m.vtop(v1g0), 0x3456);
      assert.equal(m.vtop(v2m0 + 0x1000n), 0x3345, 'cached 2 MiB translation');
      // The other 2 MiB and 1 GiB leaves point beyond the 64 KiB of memory: named, not read.
      assert.throws(() => m.vtop(v2m), (e: unknown) => e instanceof LastwordError && e.code === 'EVMCORE_PAGETABLE'
        && /pmd entry 0x8000002000e3 of vaddr 0xffd4000000201234 points to physical 0x201234, outside memory/.test(e.message));
      assert.throws(() => m.vtop(v1g), (e: unknown) => e instanceof LastwordError && e.code === 'EVMCORE_PAGETABLE'
        && /pud entry 0x8000400000e3 of vaddr 0xffd4000040005678 points to physical 0x40005678, outside memory/.test(e.message));
      // Direct map and kernel image need no tables.
      assert.equal(m.vtop(0xff11000000004000n), 0x4000);
      assert.equal(m.vtop(START_KERNEL_MAP + 0x1000n), 0x1000);
    } finally {
      v.close();
    }
  });
}

test('the kernel-table walk skips only entries wholly inside the direct map: the vmalloc area can share the 512 GiB slot where it ends', () => {
  // A KASLR layout of a 6.12 guest: page_offset_base 1 GiB-aligned, so the direct map's end
  // (page_offset_base + 2^46) falls inside a top-level slot, and VMALLOC_START 37 GiB after it.
  const pageOffset = 0xffff891980000000n;
  const stack = 0xffffc922c0010000n;      // a task's vmalloc'd stack, in that same slot
  const inDirectMap = pageOffset + 0x10000000000n;      // 1 TiB in: its slot lies wholly inside the direct map
  const mem = Buffer.alloc(16 * 4096);
  const entry = (tablePfn: number, idx: number, value: bigint) => mem.writeBigUInt64LE(value, tablePfn * 4096 + idx * 8);
  entry(1, index(stack, 39n), 0x2000n | PRESENT_RW);       // pgd -> pud (pfn 2)
  entry(2, index(stack, 30n), 0x3000n | PRESENT_RW);       // pud -> pmd (pfn 3)
  entry(3, index(stack, 21n), 0x4000n | PRESENT_RW);       // pmd -> pte (pfn 4)
  entry(4, index(stack, 12n), 0x9000n | PRESENT_RW);       // the stack page, pfn 9
  assert.notEqual(index(inDirectMap, 39n), index(stack, 39n));
  entry(1, index(inDirectMap, 39n), 0x5000n | PRESENT_RW); // a slot wholly in the direct map: its tables (pfn 5) are not walked
  entry(5, index(inDirectMap, 30n), 0x6000n | PRESENT_RW);
  const f = path.join(dir, 'pt-kaslr.vmcore');
  writeSyntheticVmcore(f, [
    'OSRELEASE=6.12.0', 'PAGESIZE=4096', 'NUMBER(phys_base)=0', 'NUMBER(MAX_PHYSMEM_BITS)=46',
    `SYMBOL(init_top_pgt)=${(START_KERNEL_MAP + 0x1000n).toString(16)}`, 'NUMBER(pgtable_l5_enabled)=0', '',
  ].join('\n'), [{ paddr: 0, vaddr: pageOffset, data: mem }]);
  const v = openVmcore(f);
  try {
    const m = new X86_64Memory(v);
    assert.equal(m.pageOffset, pageOffset);
    assert.equal(m.vtop(stack), 0x9000);
    const tables: number[] = [];
    const leaves: number[] = [];
    m.visitKernelTables({ table: (pa) => tables.push(pa / 4096), ranges: [{ lo: stack, hi: stack + 0x4000n, leaf: (pa) => leaves.push(pa / 4096) }] });
    assert.deepEqual(tables.sort((a, b) => a - b), [1, 2, 3, 4], 'the tables that map the stack, and no direct-map table');
    assert.deepEqual(leaves, [9]);
  } finally {
    v.close();
  }
});
