// The ELF vmcore reader and x86_64 translation against real kdump vmcores of Debian 6.1, 6.12 and
// 7.x guests, checked with binutils' readelf and the kernel image's own version string; bad input
// against small copies and synthetic cores.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LastwordError } from '../../runtime/errors.ts';
import { openVmcore, readUtsname, X86_64Memory, crashTime, physBase, nrCpus, START_KERNEL_MAP } from '../../runtime/vmcore/index.ts';
import type { Vmcore } from '../../runtime/vmcore/index.ts';
import { KERNEL_SERIES, kernelVersion, labVmcore } from '../support/lab.ts';
import { writeSyntheticVmcore } from '../../initramfs/executable/synthetic-vmcore.ts';

interface ReadelfLoad { offset: number; vaddr: bigint; paddr: number; filesz: number }

function readelfLoads(file: string): ReadelfLoad[] {
  const out = execFileSync('readelf', ['-lW', file], { encoding: 'utf8' });
  return out.split('\n').filter((l) => /^\s+LOAD\s/.test(l)).map((l) => {
    const f = l.trim().split(/\s+/);
    return { offset: Number(f[1]), vaddr: BigInt(f[2]), paddr: Number(f[3]), filesz: Number(f[4]) };
  });
}

function expectError(fn: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof LastwordError, `not a LastwordError: ${String(err)}`);
    assert.equal(err.code, code, err.oneLine());
    assert.match(err.oneLine(), pattern);
    assert.ok(!err.oneLine().includes('\n'));
    return true;
  });
}

for (const series of KERNEL_SERIES) {
  describe(`vmcore reader on a real ${series} kdump vmcore`, () => {
    const kver = kernelVersion(series);
    let file: string;
    let vmcore: Vmcore;
    before(() => {
      file = labVmcore({ series });
      vmcore = openVmcore(file);
    });
    after(() => vmcore?.close());

    test('keeps every RAM PT_LOAD readelf lists and drops only the kernel-text one', () => {
      const ref = readelfLoads(file);
      const ram = ref.filter((l) => l.vaddr < START_KERNEL_MAP);
      assert.ok(ref.length > ram.length, 'the kdump vmcore has a kernel-text PT_LOAD');
      assert.deepEqual(vmcore.loads.map((l) => [l.paddr, l.offset, l.fileSize, l.vaddr]), ram.map((l) => [l.paddr, l.offset, l.filesz, l.vaddr]));
      const top = Math.max(...ref.map((l) => l.paddr + l.filesz));
      assert.equal(vmcore.maxMapnr, Math.ceil(top / 4096));
    });

    test('counts the NT_PRSTATUS notes readelf shows and finds VMCOREINFO', () => {
      const notes = execFileSync('readelf', ['-nW', file], { encoding: 'utf8' });
      assert.equal(vmcore.nrCpus, (notes.match(/NT_PRSTATUS/g) ?? []).length);
      assert.equal(nrCpus(vmcore), vmcore.nrCpus);
      const text = vmcore.notes.toString('latin1', vmcore.vmcoreinfoDescOffset, vmcore.vmcoreinfoDescOffset + vmcore.vmcoreinfoDescSize);
      assert.match(text, /^OSRELEASE=/);
      assert.equal(vmcore.vmcoreinfo.osrelease, kver);
      assert.equal(vmcore.pageSize, 4096);
      assert.ok((crashTime(vmcore) ?? 0) > 1_600_000_000);
      assert.equal(physBase(vmcore), BigInt.asUintN(64, BigInt(/NUMBER\(phys_base\)=(-?\d+)/.exec(text)![1])));
      // NUMBER() is signed decimal, or hex with 0x where the kernel prints it so (6.12's VMALLOC_START).
      for (const [, name, value] of text.matchAll(/^NUMBER\((\w+)\)=(\S+)$/gm)) {
        assert.equal(vmcore.vmcoreinfo.number.get(name), BigInt(value), name); // BigInt() reads both forms
      }
      for (const [, name, value] of text.matchAll(/^SYMBOL\((\w+)\)=(\S+)$/gm)) {
        assert.equal(vmcore.vmcoreinfo.symbol.get(name), BigInt('0x' + value), name);
      }
    });

    test('reads physical memory at the file offsets the PT_LOADs give', () => {
      const fd = fs.openSync(file, 'r');
      try {
        for (const l of vmcore.loads) {
          const pa = l.paddr + Math.floor(l.fileSize / 2 / 4096) * 4096;
          const want = Buffer.alloc(8192);
          fs.readSync(fd, want, 0, want.length, l.offset + (pa - l.paddr));
          assert.deepEqual(vmcore.readPhys(pa, 8192), want);
          const pages = Buffer.alloc(8192);
          vmcore.readPages(pa / 4096, 2, pages);
          assert.deepEqual(pages, want);
        }
      } finally {
        fs.closeSync(fd);
      }
      // pfn 0 is not in any PT_LOAD on x86_64 (the first RAM range starts at 0x1000).
      assert.equal(vmcore.pfnHasData(0), false);
      const page = Buffer.alloc(4096, 0xff);
      vmcore.readPages(0, 1, page);
      assert.ok(page.every((b) => b === 0));
      expectError(() => vmcore.readPhys(0, 16), 'EVMCORE_PADDR', /physical address 0x0 is not in the vmcore/);
    });

    test('reads the utsname the kernel image was built with (init_uts_ns through the kernel mapping)', () => {
      const u = readUtsname(vmcore);
      assert.equal(u.sysname, 'Linux');
      assert.equal(u.machine, 'x86_64');
      assert.equal(u.release, kver);
      const banner = execFileSync('file', ['-b', `/boot/vmlinuz-${kver}`], { encoding: 'utf8' });
      assert.ok(banner.includes(u.version), `${banner} should contain ${u.version}`);
    });

    test('the page-table walk agrees with the direct map and reaches mem_map through vmemmap', () => {
      const mem = new X86_64Memory(vmcore);
      assert.ok(mem.pageOffset !== undefined && mem.pageOffset > 0xff00000000000000n);
      const ms = vmcore.vmcoreinfo.symbol.get('mem_section')!;
      // SYMBOL(mem_section) is a direct-map address: the shortcut and the walk must agree.
      assert.equal(mem.walk(ms), Number(ms - mem.pageOffset!));
      const root = mem.readU64(ms);
      const sectionMemMap = mem.readU64(root) & ~0x1fn;
      // The struct page of pfn 0x1000 is in vmemmap; its flags word has the kernel's section bits.
      const page = sectionMemMap + 0x1000n * 64n;
      assert.ok(page < START_KERNEL_MAP && page > mem.pageOffset!);
      const pa = mem.vtop(page);
      assert.equal(mem.vtop(page), pa, 'cached translation is stable');
      assert.ok(vmcore.pfnHasData(Math.floor(pa / 4096)));
    });
  });
}

describe('vmcore reader on bad input', () => {
  let dir: string;
  let head: Buffer;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-vmcore-'));
    // Headers + notes of the real 6.1 vmcore (first 8 KiB): enough to damage each part alone.
    const fd = fs.openSync(labVmcore({ series: '6.1' }), 'r');
    head = Buffer.alloc(8192);
    fs.readSync(fd, head, 0, head.length, 0);
    fs.closeSync(fd);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const variant = (name: string, edit: (b: Buffer) => Buffer) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, edit(Buffer.from(head)));
    return f;
  };
  const replace = (b: Buffer, from: string, to: string) => {
    const at = b.indexOf(from, 0, 'latin1');
    assert.ok(at > 0, `${from} in the note`);
    b.write(to, at, 'latin1');
    return b;
  };

  test('a truncated vmcore names the PT_LOAD that runs past the end of the file', () => {
    const f = variant('truncated', (b) => b);
    expectError(() => openVmcore(f), 'EVMCORE_TRUNCATED', /truncated: truncated: PT_LOAD 0 \(paddr 0x[0-9a-f]+, \d+ bytes\) ends at offset 0x[0-9a-f]+, but the file is 8192 bytes/);
    const tiny = variant('tiny', (b) => b.subarray(0, 40));
    expectError(() => openVmcore(tiny), 'EVMCORE_TRUNCATED', /tiny: truncated: wanted 64 bytes at offset 0x0, file ends after 40/);
  });

  test('refuses a file without the ELF magic', () => {
    const f = variant('notelf', (b) => { b.write('KDUMP   ', 0, 'latin1'); return b; });
    expectError(() => openVmcore(f), 'EVMCORE_NOT_ELF', /notelf: bad ELF magic 4b44554d at offset 0/);
  });

  test('a vmcore without a VMCOREINFO note says so', () => {
    const f = variant('noinfo', (b) => replace(b, 'VMCOREINFO\0', 'XMCOREINFO\0'));
    expectError(() => openVmcore(f), 'EVMCOREINFO_MISSING', /noinfo: no VMCOREINFO note/);
  });

  test('a damaged VMCOREINFO line is left out and named with its line number; the rest is read', () => {
    // makedumpfile writes the dump when a key it does not need is damaged; refusing the whole
    // vmcore for one line lost the dump (found by fuzzing).
    const f = variant('damaged', (b) => replace(b, 'PAGESIZE=4096', 'PAGESIZE=4z96'));
    const v = openVmcore(f, { allowTruncated: true });  // the variants hold the headers only
    try {
      assert.deepEqual(v.vmcoreinfo.problems.map((p) => p.replace(/ \(.*\)$/, '')), ['EVMCOREINFO_DAMAGED: VMCOREINFO line 3: PAGESIZE is not a number: "4z96"']);
      assert.match(v.vmcoreinfo.problems[0]!, /\(.*damaged:3\)$/);
      assert.equal(v.vmcoreinfo.pageSize, undefined);
      assert.equal(v.pageSize, 4096);
      assert.ok(v.vmcoreinfo.symbol.size > 0 && v.vmcoreinfo.osrelease);
    } finally {
      v.close();
    }
  });

  for (const bad of ['0000', '9999', '0016', '-096']) {
    test(`PAGESIZE=${bad} is not an x86_64 page size: 4096 is used, and it is named`, () => {
      const f = variant(`pagesize${bad}`, (b) => replace(b, 'PAGESIZE=4096', `PAGESIZE=${bad}`));
      const v = openVmcore(f, { allowTruncated: true });
      try {
        assert.equal(v.pageSize, 4096);
        assert.match(v.problems.join('\n'), /PAGESIZE=-?\d+ is not a page size; using 4096/);
      } finally {
        v.close();
      }
    });
  }

  for (const [what, edit, problem] of [
    ['the first CPU note\'s namesz is 0x80000005', (b: Buffer) => { b.writeUInt32LE(0x80000005, 0x1000); return b; }, /ELF note at offset 0x1000 runs past its PT_NOTE \(namesz 2147483653, descsz 336\); the notes after it are not read/],
    ['the first CPU note\'s namesz is 0xffffffff', (b: Buffer) => { b.writeUInt32LE(0xffffffff, 0x1000); return b; }, /ELF note at offset 0x1000 runs past its PT_NOTE/],
    ['the VMCOREINFO note runs 1000 bytes past its PT_NOTE', (b: Buffer) => {
      const at = b.indexOf('VMCOREINFO\0', 0, 'latin1') - 12;
      b.writeUInt32LE(b.readUInt32LE(at + 4) + 1000, at + 4);
      return b;
    }, /runs past its PT_NOTE \(namesz 11, descsz \d+\); its text is cut there/],
  ] as const) {
    test(`${what}: VMCOREINFO is still read, and the damage named (it cost the whole dump before)`, () => {
      const f = variant(`note-${what.replace(/\W+/g, '-')}`, edit);
      const v = openVmcore(f, { allowTruncated: true });
      try {
        assert.equal(v.vmcoreinfo.osrelease, '6.1.0-57-amd64');
        assert.ok(v.vmcoreinfo.symbol.has('init_top_pgt'));
        assert.match(v.problems.join('\n'), problem);
      } finally {
        v.close();
      }
    });
  }

  test('a missing key is named', () => {
    const f = path.join(dir, 'nokey.vmcore');
    writeSyntheticVmcore(f, 'OSRELEASE=6.1.0\nPAGESIZE=4096\nSYMBOL(init_top_pgt)=ffffffff81000000\n', [{ paddr: 0x1000, vaddr: 0xffff888000001000n, data: Buffer.alloc(8192) }]);
    const v = openVmcore(f);
    try {
      expectError(() => new X86_64Memory(v), 'EVMCOREINFO_KEY', /VMCOREINFO has no NUMBER\(phys_base\)/);
    } finally {
      v.close();
    }
  });

  test('a PT_LOAD with p_memsz beyond p_filesz has no data in the gap (refiltered ELF dumps)', () => {
    const f = path.join(dir, 'nodata.vmcore');
    writeSyntheticVmcore(f, 'OSRELEASE=6.1.0\nPAGESIZE=4096\n', [{ paddr: 0x100000, vaddr: 0xffff888000100000n, data: Buffer.alloc(8192, 7), memSize: 4 * 4096 }]);
    const v = openVmcore(f);
    try {
      assert.equal(v.maxMapnr, 0x104);
      assert.deepEqual([0x100, 0x101, 0x102, 0x103].map((p) => v.pfnHasData(p)), [true, true, false, false]);
      const pages = Buffer.alloc(4 * 4096, 0xff);
      v.readPages(0x100, 4, pages);
      assert.ok(pages.subarray(0, 8192).every((b) => b === 7) && pages.subarray(8192).every((b) => b === 0));
      expectError(() => v.readPhys(0x102000, 8), 'EVMCORE_PADDR', /physical address 0x102000 is not in the vmcore/);
    } finally {
      v.close();
    }
  });

  test('the kernel-text PT_LOAD is dropped when RAM PT_LOADs end to end cover it, kept over a hole', () => {
    const text = (paddr: number, pages: number) => ({ paddr, vaddr: 0xffffffff81000000n, data: Buffer.alloc(pages * 4096, 9) });
    const ram = (paddr: number, pages: number, fill: number) => ({ paddr, vaddr: 0xffff888000000000n + BigInt(paddr), data: Buffer.alloc(pages * 4096, fill) });
    const loadsOf = (name: string, loads: Parameters<typeof writeSyntheticVmcore>[2]) => {
      const f = path.join(dir, name);
      writeSyntheticVmcore(f, 'OSRELEASE=6.1.0\nPAGESIZE=4096\n', loads);
      const v = openVmcore(f);
      try {
        // Every page reads as the load that holds it: RAM where RAM is, the text load's copy elsewhere.
        const page = Buffer.alloc(4096);
        for (let pfn = 0; pfn < 0x20; pfn++) {
          v.readPages(pfn, 1, page);
          const want = loads.find((l) => l.vaddr < START_KERNEL_MAP && l.paddr <= pfn * 4096 && pfn * 4096 < l.paddr + l.data.length) ?? loads.find((l) => l.paddr <= pfn * 4096 && pfn * 4096 < l.paddr + l.data.length);
          assert.equal(page[0], want?.data[0] ?? 0, `${name}: pfn 0x${pfn.toString(16)}`);
          assert.equal(v.pfnHasData(pfn), want !== undefined, `${name}: pfn 0x${pfn.toString(16)} has data`);
        }
        return v.loads.map((l) => [l.paddr / 4096, l.vaddr >= START_KERNEL_MAP ? 'text' : 'ram']);
      } finally {
        v.close();
      }
    };
    // Text at pfns 0x10-0x17 over RAM 0-0x13 and 0x14-0x1f (a dump's loads, split where pages were excluded).
    assert.deepEqual(loadsOf('split.vmcore', [text(0x10000, 8), ram(0, 0x14, 1), ram(0x14000, 0xc, 2)]), [[0, 'ram'], [0x14, 'ram']]);
    // RAM 0-0x13 and 0x15-0x1f: pfn 0x14 is in the text PT_LOAD alone, which stays for that page only.
    assert.deepEqual(loadsOf('hole.vmcore', [text(0x10000, 8), ram(0, 0x14, 1), ram(0x15000, 0xb, 2)]), [[0, 'ram'], [0x14, 'text'], [0x15, 'ram']]);
  });

  test('a page-table entry pointing outside memory is named with the address and level', () => {
    // Memory: pfn 1..2. The top-level table is pfn 1 (init_top_pgt at phys 0x1000 with phys_base 0);
    // its entry for vmemmap points to physical 0x7f0000000, which the vmcore does not have.
    const mem = Buffer.alloc(8192);
    const vaddr = 0xffffea0000000000n;
    const idx = Number((vaddr >> 39n) & 511n);
    mem.writeBigUInt64LE(0x7f0000000n | 0x63n, idx * 8);
    const f = path.join(dir, 'badpgt.vmcore');
    writeSyntheticVmcore(f, [
      'OSRELEASE=6.1.0', 'PAGESIZE=4096', 'NUMBER(phys_base)=0',
      `SYMBOL(init_top_pgt)=${(START_KERNEL_MAP + 0x1000n).toString(16)}`, 'NUMBER(pgtable_l5_enabled)=0', '',
    ].join('\n'), [{ paddr: 0x1000, vaddr: 0xffff888000001000n, data: mem }], 2);
    const v = openVmcore(f);
    try {
      assert.equal(v.nrCpus, 2);
      const m = new X86_64Memory(v);
      expectError(() => m.vtop(vaddr), 'EVMCORE_PAGETABLE', /pud table of vaddr 0xffffea0000000000 at physical 0x7f0000000 is outside memory/);
      expectError(() => m.vtop(0xffffc90000000000n), 'EVMCORE_UNMAPPED', /vaddr 0xffffc90000000000 is not mapped \(pgd entry at physical 0x[0-9a-f]+ not present\)/);
    } finally {
      v.close();
    }
  });
});
