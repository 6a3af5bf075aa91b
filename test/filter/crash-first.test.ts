// The crash-first order (runtime/filter/crash-first.ts) checked against the kernel's own symbols,
// which lastword does not have in a capture but the debug vmlinux has: the text tier is the image's
// [_text, _etext) and the module area's pages, among them every loaded module's struct module
// (from the kernel's `modules` list), and tier 0 holds the variables crash reads at startup, each CPU's per-CPU
// current task pointer and runqueue, and the task_structs those point to. On a real vmcore of each
// kernel generation. And the two ways of making it give the same tiers: the native walk reporting
// slab and PG_reserved pages as it classifies them, with the addon's pointer scan, and the
// TypeScript loop that reads the struct pages again.
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X86_64Memory, openVmcore } from '../../runtime/vmcore/index.ts';
import { NT_PRSTATUS, parseNotes } from '../../runtime/vmcore/elf.ts';
import { KERNEL_SERIES, debugVmlinux, kernelVersion, labVmcore } from '../support/lab.ts';
import { crashFirstTiers } from './bitmaps.ts';
import { hugetlbVmcore } from './hugetlb-vmcore.ts';

/** Addresses of `names` in the debug vmlinux (nm; per-CPU symbols are offsets in 6.1 and 6.12, addresses in 7.x). */
function symbols(vmlinux: string, names: string[]): Map<string, bigint> {
  const out = execFileSync('nm', [vmlinux], { encoding: 'utf8', maxBuffer: 256 << 20 });
  const found = new Map<string, bigint>();
  for (const line of out.split('\n')) {
    const [addr, , name] = line.split(' ');
    if (name && names.includes(name) && !found.has(name)) found.set(name, BigInt(`0x${addr}`));
  }
  return found;
}

function mapped(memory: X86_64Memory, v: bigint): boolean {
  try {
    memory.vtop(v);
    return true;
  } catch {
    return false;
  }
}

for (const series of KERNEL_SERIES) {
  const kver = kernelVersion(series);
  describe(`crash-first order of a ${series} vmcore`, { skip: kver ? undefined : `no ${series} kernel (bash .ci/setup)` }, () => {
    test('tiers are ascending and disjoint; the text tier is the image\'s [_text, _etext) and the modules\' pages, each struct module among them; tier 0 has the kernel variables, each CPU\'s current task and runqueue, and those tasks', { timeout: 600_000 }, () => {
      const vmcoreFile = labVmcore({ series });
      const tiers = crashFirstTiers(vmcoreFile);
      assert.equal(tiers.length, 3);
      const seen = new Set<number>();
      for (const [i, t] of tiers.entries()) {
        for (let k = 0; k < t.length; k++) {
          if (k > 0) assert.ok(t[k]! > t[k - 1]!, `tier ${i} is not ascending at ${k}`);
          assert.ok(!seen.has(t[k]!), `pfn 0x${t[k]!.toString(16)} is in two tiers`);
          seen.add(t[k]!);
        }
      }
      const [tier0, text] = [new Set(tiers[0]), new Set(tiers[1])];

      const names = ['_text', '_etext', 'modules', '__per_cpu_offset', 'current_task', 'pcpu_hot', 'runqueues', 'init_uts_ns', 'prb'];
      const sym = symbols(debugVmlinux(kver!), names);
      const vmcore = openVmcore(vmcoreFile);
      try {
        const memory = new X86_64Memory(vmcore);
        const B = vmcore.pageSize;
        const kaslr = vmcore.vmcoreinfo.kernelOffset ?? 0n;
        const pfnOf = (v: bigint) => Math.floor(memory.vtop(v) / B);
        // The text tier: every page of [_text, _etext) (the image maps text with NX clear), and
        // otherwise only pages mapped in the module area.
        const textStart = pfnOf(sym.get('_text')! + kaslr);
        const textEnd = pfnOf(sym.get('_etext')! + kaslr - 1n) + 1;
        for (let p = textStart; p < textEnd; p++) assert.ok(text.has(p) || tier0.has(p), `text pfn 0x${p.toString(16)} is in no tier`);
        const modulePages = new Set<number>();
        memory.visitKernelTables({ table() {}, ranges: [{ lo: memory.imageEnd, hi: 0xffffffffff000000n, leaf(pa, size) { for (let p = pa / B; p < (pa + size) / B; p++) modulePages.add(p); } }] });
        for (const p of text) assert.ok((p >= textStart && p < textEnd) || modulePages.has(p), `pfn 0x${p.toString(16)} in the text tier is neither in [_text, _etext) nor a module's`);
        const imageText = [...text].filter((p) => p >= textStart && p < textEnd).length;
        assert.ok(imageText > (textEnd - textStart) * 0.9, `the text tier has ${imageText} of ${textEnd - textStart} pages`);
        // Every loaded module's struct module (the `modules` list runs through them): crash reads
        // each, and its symbols, at startup.
        const head = sym.get('modules')! + kaslr;
        let loaded = 0;
        for (let at = memory.readU64(head); at !== head && loaded < 10_000; at = memory.readU64(at), loaded++) {
          const p = pfnOf(at);
          assert.ok(text.has(p) || tier0.has(p), `module ${loaded}'s struct module (list at 0x${at.toString(16)}) is in no tier before slab`);
        }
        assert.ok(loaded > 0, 'the guest had no module loaded');
        // Variables crash reads first (the release, the printk ring buffer).
        for (const name of ['init_uts_ns', 'prb']) assert.ok(tier0.has(pfnOf(sym.get(name)! + kaslr)), `${name} is not in tier 0`);
        // Each CPU's per-CPU current task pointer and runqueue, and the current task_struct.
        const currentSym = sym.get('current_task') ?? sym.get('pcpu_hot')!;      // pcpu_hot.current_task is at 0
        const perCpu = (cpu: number) => memory.readU64(sym.get('__per_cpu_offset')! + kaslr + BigInt(8 * cpu));
        // 7.x links per-CPU symbols at their image addresses (__per_cpu_offset is then relative to those).
        const relocate = (s: bigint) => (s >= 0xffffffff80000000n ? s + kaslr : s);
        for (let cpu = 0; cpu < vmcore.nrCpus; cpu++) {
          const current = perCpu(cpu) + relocate(currentSym);
          assert.ok(tier0.has(pfnOf(current)), `CPU ${cpu}'s current task pointer (0x${current.toString(16)}) is not in tier 0`);
          const rq = perCpu(cpu) + relocate(sym.get('runqueues')!);
          assert.ok(tier0.has(pfnOf(rq)), `CPU ${cpu}'s runqueue is not in tier 0`);
          const task = memory.readU64(current);
          assert.ok(tier0.has(pfnOf(task)), `CPU ${cpu}'s current task_struct 0x${task.toString(16)} is not in tier 0`);
        }
        // The stack each CPU was on at the crash (its NT_PRSTATUS rsp; the panic task's for the
        // panicking CPU), and every page-table page that maps it: crash reads the panic task's
        // whole stack, the 16 KiB-aligned block, at startup. KASLR puts VMALLOC_START, where the
        // stacks are, 1 GiB-aligned: at times in the top-level slot where the direct map ends. An
        // IRQ stack is aligned to a page only: its part in use, from rsp's page up to its guard
        // page, may reach into the next block.
        let stacks = 0;
        for (const note of parseNotes(vmcore.notes, vmcoreFile, 0)) {
          if (note.name !== 'CORE' || note.type !== NT_PRSTATUS) continue;
          const rsp = vmcore.notes.readBigUInt64LE(note.descOffset + 112 + 19 * 8);      // pr_reg.rsp
          if (rsp < 0xffff800000000000n) continue;
          stacks++;
          const first = rsp & ~0xfffn;
          assert.ok(mapped(memory, first), `the stack pointer 0x${rsp.toString(16)} is not mapped`);
          const pages: bigint[] = [];
          for (let page = rsp & ~0x3fffn; page < (rsp & ~0x3fffn) + 0x4000n; page += 0x1000n) if (mapped(memory, page)) pages.push(page);
          for (let page = first; page < first + 0x4000n && mapped(memory, page); page += 0x1000n) if (!pages.includes(page)) pages.push(page);
          for (const page of pages) {
            const pa = memory.walk(page, (table) => assert.ok(tier0.has(table / B), `page-table page 0x${(table / B).toString(16)} mapping the stack at 0x${page.toString(16)} is not in tier 0`));
            assert.ok(tier0.has(Math.floor(pa / B)), `the stack page 0x${page.toString(16)} (rsp 0x${rsp.toString(16)}) is not in tier 0`);
          }
        }
        assert.ok(stacks > 0, 'no NT_PRSTATUS with a kernel stack pointer');
      } finally {
        vmcore.close();
      }
    });

    for (const [what, file] of [['', () => labVmcore({ series })], [' with a hugetlb pool', () => hugetlbVmcore(series)]] as const) {
      test(`the native walk and the TypeScript loop give the same tiers${what}, in one cycle and in 32 Ki-pfn cycles`, { timeout: 900_000 }, () => {
        const vmcoreFile = file();
        const typescript = crashFirstTiers(vmcoreFile, { native: false });
        assert.equal(typescript.walkedCycles, 0);
        for (const cyclePfns of [undefined, 1 << 15]) {
          const native = crashFirstTiers(vmcoreFile, { cyclePfns });
          // Every cycle came from the walk: the order did not read the struct pages again.
          assert.equal(native.walkedCycles, native.cycles);
          assert.ok(native.cycles >= (cyclePfns === undefined ? 1 : 8), `${native.cycles} cycles`);
          for (let t = 0; t < 3; t++) {
            assert.ok(typescript[t]!.length > 0, `TypeScript tier ${t} is empty`);
            assert.deepEqual(Array.from(native[t]!), Array.from(typescript[t]!), `tier ${t} differs (cycles of ${cyclePfns ?? 'default'} pfns)`);
          }
        }
      });
    }
  });
}
