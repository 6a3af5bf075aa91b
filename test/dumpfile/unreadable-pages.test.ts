// A vmcore some of whose pages cannot be read: a copy of a real 6.1 kdump vmcore on a filesystem
// (test/support/eio-fs.py, FUSE) that fails every read of a few pages with EIO, as a disk with bad
// sectors does (/proc/vmcore's own failures, ENOMEM/EFAULT, take the same path in the addon). lastword
// filter saves every other page, leaves those pages' descs empty and flags the header INCOMPLETE,
// so crash opens the dump and says which pages are missing; with the compression threads and
// without. ELF output (-E) has zeros in their place and e_flags DUMP_ELF_INCOMPLETE. (makedumpfile 1.7.2 dies of SIGBUS on such a file: it mmaps the vmcore.)
// With --mmap lastword maps the file as it maps /proc/vmcore, and the bad pages fault on the load
// (SIGBUS, as a memory error in /proc/vmcore does): caught, the same pages are lost and nothing else.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KdumpReader } from '../../runtime/dumpfile/kdump-reader.ts';
import { createPageFilter } from '../../runtime/filter/index.ts';
import { openVmcore, readUtsname } from '../../runtime/vmcore/index.ts';
import { readMapped, unmapVmcore } from '../../runtime/system/vmcore-mmap.ts';
import { X86_64Memory } from '../../runtime/vmcore/x86_64.ts';
import { crashBinary, debugVmlinux, kernelVersion, labVmcore, repo } from '../support/lab.ts';
import { tempDir } from './support.ts';
import { writeSyntheticVmcore } from '../../initramfs/executable/synthetic-vmcore.ts';

const PYTHON = '/usr/bin/python3';       // Debian's, where python3-fusepy is installed
const skip = !fs.existsSync('/dev/fuse') ? '/dev/fuse is missing'
  : spawnSync(PYTHON, ['-c', 'import fusepy']).status !== 0 ? 'python3-fusepy is missing (bash .ci/setup)'
  : !kernelVersion('6.1') ? 'no 6.1 kernel (bash .ci/setup)' : undefined;

function lastword(...args: string[]) {
  return spawnSync(process.execPath, [path.join(repo, 'runtime', 'main.ts'), ...args], { encoding: 'utf8' });
}

/** Mounts eio-fs.py over `backing`, failing reads of [lo, hi); resolves with its /vmcore once it is there. */
async function mountBadSectors(t: { after(fn: () => void): void }, backing: string, lo: number, hi: number): Promise<string> {
  // A directory of its own, not inside a temp dir that another hook removes: removing files under
  // a live mount fails, and the hooks after that one would not run.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-eio-mnt-'));
  const server: ChildProcess = spawn(PYTHON, [path.join(repo, 'test', 'support', 'eio-fs.py'), backing, dir, String(lo), String(hi)], { stdio: ['ignore', 'ignore', 'inherit'] });
  server.unref();
  t.after(() => {
    spawnSync('umount', [dir]);
    server.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const file = path.join(dir, 'vmcore');
  for (let i = 0; i < 100 && !fs.existsSync(file); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(fs.existsSync(file), `the FUSE filesystem did not come up on ${dir}`);
  return file;
}

/**
 * The pfns whose bytes a `lastword filter` run at `level` reads besides the pages it dumps (mem_map,
 * the page tables that map it, init_uts_ns...): a bad sector there costs the page filter (it falls back
 * to saving every page), not just those pages, so the tests' bad pages must not be among them.
 */
function pfnsTheFilterReads(vmcoreFile: string, level: number): Set<number> {
  const v = openVmcore(vmcoreFile);
  const B = v.pageSize;
  const read = new Set<number>();
  const note = (pa: number, len: number) => { for (let p = Math.floor(pa / B); p * B < pa + len; p++) read.add(p); };
  const readPhys = v.readPhys.bind(v), readPages = v.readPages.bind(v);
  v.readPhys = (pa, len, into) => { note(pa, len); return readPhys(pa, len, into); };
  v.readPages = (pfn, count, into) => { note(pfn * B, count * B); readPages(pfn, count, into); };
  try {
    // The walk a block at a time reads mem_map through readPhys (the whole-cycle walk reads the
    // same bytes in the addon, unseen here).
    const filter = createPageFilter(v, level, { strict: true, cycleWalk: false });
    const bm = Buffer.alloc(filter.cyclePfns / 8);
    for (let start = 0; start < filter.maxMapnr; start += filter.cyclePfns) filter.fillCycle(start, Math.min(start + filter.cyclePfns, filter.maxMapnr), bm);
    readUtsname(v);
  } finally {
    v.close();
  }
  return read;
}

test('pages whose reads fail with EIO are left out, every other page is saved, and crash opens the dump flagged INCOMPLETE', { skip, timeout: 300_000 }, async (t) => {
  const real = labVmcore({ series: '6.1' });
  const dir = tempDir(t, 'lastword-eio-');
  const clean = path.join(dir, 'clean.lzo');
  const r0 = lastword('filter', '-l', '-d', '31', '--num-threads', '1', real, clean);
  assert.equal(r0.status, 0, r0.stderr);
  const ref = new KdumpReader(clean);
  t.after(() => ref.close());

  // Three dumpable pages in a row, past the first ones, that sit in one PT_LOAD and that the filter
  // does not read itself: their bytes fail.
  const filterReads = pfnsTheFilterReads(real, 31);
  const v = openVmcore(real);
  let first = -1, offset = -1;
  let seen = 0;
  for (let pfn = 0; pfn < ref.maxMapnr - 3 && first < 0; pfn++) {
    if (!(ref.isDumpable(pfn) && ref.isDumpable(pfn + 1) && ref.isDumpable(pfn + 2)) || ++seen < 5000) continue;
    if ([0, 1, 2].some((k) => filterReads.has(pfn + k))) continue;
    const pa = pfn * v.pageSize;
    const load = v.loads.find((l) => l.paddr <= pa && pa + 3 * v.pageSize <= l.paddr + l.fileSize);
    if (load) { first = pfn; offset = load.offset + (pa - load.paddr); }
  }
  v.close();
  assert.ok(first >= 0, 'no run of three dumpable pages in the clean dump');
  const lost = [first, first + 1, first + 2];
  const bad = await mountBadSectors(t, real, offset, offset + 3 * ref.pageSize);
  assert.equal(spawnSync('dd', [`if=${bad}`, 'of=/dev/null', 'bs=4096', `skip=${offset / 4096}`, 'count=1']).status, 1, 'the bad range reads');

  // --mmap: the vmcore mapped, as /proc/vmcore is: a bad page then faults with SIGBUS on the load
  // (as a memory error in /proc/vmcore does), in the compression thread (compressing straight from
  // the mapping), in the main thread (compressing inline) and wherever the filter reads; caught, it is
  // the same unreadable page (it ended the process before).
  for (const [threads, mapped] of [['1', false], ['0', false], ['1', true], ['0', true]] as const) {
    const out = path.join(dir, `eio-${threads}${mapped ? '-mmap' : ''}.lzo`);
    const r = lastword('filter', '-l', '-d', '31', '--num-threads', threads, ...(mapped ? ['--mmap', '--message-level', '31'] : []), bad, out);
    assert.equal(r.status, 0, `--num-threads ${threads}${mapped ? ' --mmap' : ''}: ${r.stderr}`);
    if (mapped) assert.match(r.stderr, /reading \S+ through mappings of it/);
    assert.match(r.stderr, new RegExp(`3 pages could not be read, the first at offset 0x${offset.toString(16)} \\(pfn 0x${first.toString(16)}\\): EIO`));
    const dump = new KdumpReader(out);
    try {
      assert.equal(dump.incomplete, true, 'header not flagged INCOMPLETE');
      assert.equal(dump.dumpablePages, ref.dumpablePages, 'the bitmaps still name every dumpable page');
      const a = Buffer.alloc(ref.pageSize), b = Buffer.alloc(ref.pageSize);
      let missing = 0, same = 0;
      for (let pfn = 0; pfn < ref.maxMapnr; pfn++) {
        if (!ref.isDumpable(pfn)) continue;
        const got = dump.readPage(pfn, a);
        if (!got) { missing++; assert.ok(lost.includes(pfn), `pfn 0x${pfn.toString(16)} is missing`); continue; }
        ref.readPage(pfn, b);
        assert.ok(a.equals(b), `pfn 0x${pfn.toString(16)} differs from the clean dump`);
        same++;
      }
      assert.equal(missing, 3, `--num-threads ${threads}${mapped ? ' --mmap' : ''}: pages left out`);
      assert.equal(same, ref.dumpablePages - 3);
    } finally {
      dump.close();
    }
  }

  // crash: the session starts (INCOMPLETE noted), tasks are there, and the lost page is named as such.
  const script = `sys\nps\nrd -p 0x${(first * 4096).toString(16)}\nrd -p 0x${((first + 3) * 4096).toString(16)}\nq\n`;
  const c = spawnSync(crashBinary(), ['-s', debugVmlinux(kernelVersion('6.1')!), path.join(dir, 'eio-1.lzo')], { input: script, encoding: 'utf8', timeout: 180_000 });
  const said = `${c.stdout}\n${c.stderr}`;
  assert.match(said, /DUMPFILE: .*\[INCOMPLETE\]/, said);
  assert.match(said, /PANIC: "Kernel panic - not syncing: sysrq triggered crash"/, said);
  assert.match(said, /\binit\b/, said);
  assert.match(said, new RegExp(`page incomplete: physical address: ${(first * 4096).toString(16)}`, 'i'), said);
  assert.match(said, new RegExp(`^\\s*${((first + 3) * 4096).toString(16)}:  [0-9a-f]{16}`, 'm'), said);
});

/** The 6.1 lab vmcore's clean -E -d 31 dump (opened), and the pfns the filter reads of the vmcore. */
function cleanElfDump(t: { after(fn: () => void): void }, prefix: string) {
  const real = labVmcore({ series: '6.1' });
  const dir = tempDir(t, prefix);
  const clean = path.join(dir, 'clean.elf');
  const r0 = lastword('filter', '-E', '-d', '31', real, clean);
  assert.equal(r0.status, 0, r0.stderr);
  const filterReads = pfnsTheFilterReads(real, 31);
  const ref = openVmcore(clean);
  t.after(() => ref.close());
  return { real, dir, clean, filterReads, ref, B: ref.pageSize };
}

test('ELF output (-E): the pages that fail are zeros, every other byte as in the clean dump, e_flags says incomplete and crash warns', { skip, timeout: 300_000 }, async (t) => {
  const { real, dir, clean, filterReads, ref, B } = cleanElfDump(t, 'lastword-eio-elf-');
  // Two pages of the clean ELF's data that are not zeros, not in the kernel-text PT_LOAD (which
  // repeats RAM) and not read by the filter (the largest segment may be all mem_map): their bytes in
  // the vmcore fail. Segments from the largest down, each from its middle on.
  const text = ref.kernelText;
  let pa = -1;
  const two = Buffer.alloc(2 * B);
  for (const load of [...ref.loads].sort((x, y) => y.fileSize - x.fileSize)) {
    for (let p = load.paddr + Math.floor(load.fileSize / B / 2) * B; p + 2 * B <= load.paddr + load.fileSize && pa < 0; p += B) {
      if (text.some((l) => p + 2 * B > l.paddr && p < l.paddr + l.memSize)) continue;
      if (filterReads.has(p / B) || filterReads.has(p / B + 1)) continue;
      ref.readPhys(p, 2 * B, two);
      if (!two.subarray(0, B).equals(Buffer.alloc(B)) && !two.subarray(B).equals(Buffer.alloc(B))) pa = p;
    }
    if (pa >= 0) break;
  }
  assert.ok(pa >= 0, 'no two non-zero pages in the clean ELF');
  const v = openVmcore(real);
  const vl = v.loads.find((l) => l.paddr <= pa && pa + 2 * B <= l.paddr + l.fileSize)!;
  const offset = vl.offset + (pa - vl.paddr);
  v.close();
  const bad = await mountBadSectors(t, real, offset, offset + 2 * B);

  const out = path.join(dir, 'eio.elf');
  // --mmap: the main thread reads the vmcore through its mapping, where the bad pages fault (SIGBUS,
  // caught: the same EIO as a pread's).
  for (const mapped of [false, true]) {
    const file = mapped ? path.join(dir, 'eio-mmap.elf') : out;
    const r = lastword('filter', '-E', '-d', '31', ...(mapped ? ['--mmap'] : []), bad, file);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`2 pages could not be read, the first at offset 0x${offset.toString(16)} \\(pfn 0x${(pa / B).toString(16)}\\): EIO.*zeros stand in their place`));
    // Same size; the bytes differ only in e_flags (DUMP_ELF_INCOMPLETE) and where the two pages are.
    const a = fs.readFileSync(file), c = fs.readFileSync(clean);
    assert.equal(a.length, c.length);
    assert.equal(a.readUInt32LE(48), 1, 'e_flags');
    assert.equal(c.readUInt32LE(48), 0);
    const dump = openVmcore(file);
    const lostAt = dump.loads.find((l) => l.paddr <= pa && pa < l.paddr + l.fileSize)!;
    dump.close();
    const fileAt = lostAt.offset + (pa - lostAt.paddr);
    assert.ok(a.subarray(fileAt, fileAt + 2 * B).equals(Buffer.alloc(2 * B)), 'the lost pages are not zeros');
    a.writeUInt32LE(0, 48);
    c.fill(0, fileAt, fileAt + 2 * B);
    assert.ok(a.equals(c), `${mapped ? '--mmap: ' : ''}bytes other than e_flags and the two pages differ from the clean dump`);
  }

  const script = `sys\nps\nrd -p 0x${pa.toString(16)}\nq\n`;
  const cr = spawnSync(crashBinary(), ['-s', debugVmlinux(kernelVersion('6.1')!), out], { input: script, encoding: 'utf8', timeout: 180_000 });
  const said = `${cr.stdout}\n${cr.stderr}`;
  assert.match(said, /This dumpfile is incomplete/, said);
  assert.match(said, /PANIC: "Kernel panic - not syncing: sysrq triggered crash"/, said);
  assert.match(said, /\binit\b/, said);
  assert.match(said, new RegExp(`^\\s*${pa.toString(16)}:  0{16}\\s`, 'm'), said);
});

test('ELF output (-E): an unreadable page of the kernel image, which the ELF carries twice (kernel-text PT_LOAD and RAM), is zeros in both and counted once', { skip, timeout: 300_000 }, async (t) => {
  const { real, dir, clean, filterReads, ref, B } = cleanElfDump(t, 'lastword-eio-text-');
  const [text] = ref.kernelText;
  assert.ok(text, 'no kernel-text PT_LOAD in the ELF dump');
  const page = Buffer.alloc(B);
  let pa = -1;
  for (let p = text.paddr + Math.floor(text.fileSize / B / 2) * B; p + B <= text.paddr + text.fileSize && pa < 0; p += B) {
    if (filterReads.has(p / B)) continue;
    ref.readPhys(p, B, page);
    if (!page.equals(Buffer.alloc(B))) pa = p;
  }
  assert.ok(pa >= 0, 'no non-zero page in the second half of the kernel image');
  const v = openVmcore(real);
  const vl = v.loads.find((l) => l.paddr <= pa && pa + B <= l.paddr + l.fileSize && l.vaddr < 0xffffffff80000000n)!;
  const offset = vl.offset + (pa - vl.paddr);
  v.close();
  const bad = await mountBadSectors(t, real, offset, offset + B);

  const out = path.join(dir, 'eio.elf');
  const r = lastword('filter', '-E', '-d', '31', bad, out);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`1 page could not be read, the first at offset 0x${offset.toString(16)} \\(pfn 0x${(pa / B).toString(16)}\\): EIO`));
  const a = fs.readFileSync(out), c = fs.readFileSync(clean);
  assert.equal(a.readUInt32LE(48), 1, 'e_flags');
  const dump = openVmcore(out);
  t.after(() => dump.close());
  const copies = [...dump.kernelText, ...dump.loads].filter((l) => l.paddr <= pa && pa < l.paddr + l.fileSize);
  assert.equal(copies.length, 2, 'the page is not in both the kernel-text and a RAM PT_LOAD');
  for (const l of copies) {
    const at = l.offset + (pa - l.paddr);
    assert.ok(a.subarray(at, at + B).equals(Buffer.alloc(B)), `the lost page at file offset ${at} is not zeros`);
    c.fill(0, at, at + B);
  }
  a.writeUInt32LE(0, 48);
  assert.ok(a.equals(c), 'bytes other than e_flags and the two copies of the page differ from the clean dump');
});

test('lastword save (the capture path) keeps such a dump under its final name and says incomplete, with the unreadable count', { skip, timeout: 300_000 }, async (t) => {
  const real = labVmcore({ series: '6.1' });
  // The two pages at 0x19000000 of the file: inside the lab vmcore's big PT_LOAD, dumpable at level 0.
  const bad = await mountBadSectors(t, real, 0x19000000, 0x19000000 + 8192);
  const dir = tempDir(t, 'lastword-eio-save-');
  fs.mkdirSync(path.join(dir, 'root', 'var', 'crash'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'kdump.conf'), 'path /var/crash\ncore_collector makedumpfile -l -d 0\n');
  const r = lastword('save', '--config', path.join(dir, 'kdump.conf'), '--root', path.join(dir, 'root'), bad);
  const said = `${r.stdout}${r.stderr}`;
  assert.equal(r.status, 0, said);
  assert.match(said, /warning: .*: 2 pages could not be read, the first at offset 0x19000000 \(pfn 0x[0-9a-f]+\): EIO/);
  assert.match(said, /lastword: dump saved/);
  assert.match(said, /file: +\/var\/crash\/[^/]+\/vmcore  \(incomplete: /);
  const pages = /pages: +(\d+) saved of (\d+), 2 unreadable \(not saved\)/.exec(said);
  assert.ok(pages, said);
  assert.equal(Number(pages[1]), Number(pages[2]) - 2, 'level 0 saves every RAM page but the two');
  const [crashDir] = fs.readdirSync(path.join(dir, 'root', 'var', 'crash'));
  const dump = new KdumpReader(path.join(dir, 'root', 'var', 'crash', crashDir!, 'vmcore'));
  try {
    assert.equal(dump.incomplete, true);
  } finally {
    dump.close();
  }
});

test('when not one page can be read, the dump fails with EVMCORE_READ naming the offset instead of calling an empty dump saved', { skip, timeout: 120_000 }, async (t) => {
  const dir = tempDir(t, 'lastword-eio-all-');
  const file = path.join(dir, 'synthetic.vmcore');
  writeSyntheticVmcore(file, 'OSRELEASE=6.1.0-test\nPAGESIZE=4096\nCRASHTIME=1700000000\n', [{ paddr: 0x100000, vaddr: 0xffff888000100000n, data: Buffer.alloc(64 * 4096, 0x5a) }]);
  const v = openVmcore(file);
  const dataAt = v.loads[0]!.offset;
  v.close();
  const bad = await mountBadSectors(t, file, dataAt, dataAt + 64 * 4096);
  const r = lastword('filter', '-l', '-d', '0', bad, path.join(dir, 'dump'));
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`EVMCORE_READ: .*none of the 64 dumpable pages could be read, the first at offset 0x${dataAt.toString(16)}: EIO`));
});

test('a page of mem_map that cannot be read, with and without --mmap (where the filter\'s own loads fault): its 64 struct pages\' pfns are kept unfiltered, every other page filtered as in the clean dump (the whole rest was saved unfiltered before)', { skip, timeout: 300_000 }, async (t) => {
  const real = labVmcore({ series: '6.1' });
  const dir = tempDir(t, 'lastword-eio-memmap-');
  const clean = path.join(dir, 'clean.lzo');
  const r0 = lastword('filter', '-l', '-d', '31', real, clean);
  assert.equal(r0.status, 0, r0.stderr);
  const ref = new KdumpReader(clean);
  t.after(() => ref.close());
  // A page the filter reads for its struct pages, from the middle of them (mem_map is most of what it reads).
  const reads = [...pfnsTheFilterReads(real, 31)].sort((a, b) => a - b);
  const pfn = reads[Math.floor(reads.length / 2)]!;
  const v = openVmcore(real);
  const B = v.pageSize;
  const load = v.loads.find((l) => l.paddr <= pfn * B && pfn * B + B <= l.paddr + l.fileSize)!;
  const offset = load.offset + (pfn * B - load.paddr);
  v.close();
  const bad = await mountBadSectors(t, real, offset, offset + B);
  for (const mapped of [false, true]) {
    const out = path.join(dir, `memmap${mapped ? '-mmap' : ''}.lzo`);
    const r = lastword('filter', '-l', '-d', '31', ...(mapped ? ['--mmap'] : []), bad, out);
    assert.equal(r.status, 0, `${mapped ? '--mmap: ' : ''}${r.stderr}`);
    assert.match(r.stderr, new RegExp(`1 page could not be read, the first at offset 0x${offset.toString(16)} \\(pfn 0x${pfn.toString(16)}\\): EIO`));
    const kept = /warning: 64 pages kept unfiltered: their struct pages could not be read \(mem_map; the first of pfn 0x([0-9a-f]+): EIO \(errno 5\)\); every other page was filtered/.exec(r.stderr);
    assert.ok(kept, r.stderr);
    assert.doesNotMatch(r.stderr, /could not be classified from some pfn on/);
    const first = parseInt(kept[1]!, 16);
    const dump = new KdumpReader(out);
    try {
      assert.equal(dump.incomplete, true, 'header not flagged INCOMPLETE');
      assert.ok(dump.isDumpable(pfn), 'the mem_map page is not in the dump\'s bitmap');
      // Every page of the clean dump, and more only where struct pages were lost (or the compound
      // pages they headed): at most a few hundred pages, not the rest of memory.
      let extra = 0;
      for (let p = 0; p < ref.maxMapnr; p++) {
        if (ref.isDumpable(p)) assert.ok(dump.isDumpable(p), `pfn 0x${p.toString(16)} of the clean dump is left out`);
        else if (dump.isDumpable(p)) extra++;
      }
      // (A lost pfn may still be left out: a readable head page before it can span it, a free block's.)
      assert.ok(extra <= 1024, `${extra} pages more than the clean dump (struct pages lost from pfn 0x${first.toString(16)})`);
    } finally {
      dump.close();
    }
  }
});

test('mapped reads of a page that cannot be read, far from the last read (pread, failing, then its window) and next to it (the 4 MiB window): -EIO, and the pages around it read as in the file', { skip, timeout: 120_000 }, async (t) => {
  const real = labVmcore({ series: '6.1' });
  const B = 4096;
  const offset = Math.floor(fs.statSync(real).size / 2 / B) * B;
  const bad = await mountBadSectors(t, real, offset, offset + B);
  const fd = fs.openSync(bad, 'r'), ref = fs.openSync(real, 'r');
  // Closed here, not in an after hook: the mount's hook (registered first) runs first and cannot unmount a file in use.
  try {
    readAround(fd, ref, offset, B);
  } finally {
    unmapVmcore();
    fs.closeSync(fd);
    fs.closeSync(ref);
  }
});

function readAround(fd: number, ref: number, offset: number, B: number): void {
  const got = Buffer.alloc(B), want = Buffer.alloc(B);
  assert.equal(readMapped(fd, got, 0), 0);
  assert.equal(readMapped(fd, got, offset), -5, 'a read far from the last one');
  assert.equal(readMapped(fd, got, offset + B), 0, 'the page after it');
  fs.readSync(ref, want, 0, B, offset + B);
  assert.ok(got.equals(want));
  // Sequential reads up to it and across it: the large window.
  assert.equal(readMapped(fd, got, offset - 3 * B), 0);
  assert.equal(readMapped(fd, got, offset - 2 * B), 0);
  assert.equal(readMapped(fd, Buffer.alloc(3 * B), offset - B), -5, 'a read across it (4 MiB window)');
  assert.equal(readMapped(fd, got, offset - B), 0, 'the page before it');
  fs.readSync(ref, want, 0, B, offset - B);
  assert.ok(got.equals(want));
}

test('a page of the printk ring that cannot be read, with and without --mmap: --dump-dmesg writes every other record and a line where the lost ones were (makedumpfile writes no log)', { skip, timeout: 120_000 }, async (t) => {
  const real = labVmcore({ series: '6.1' });
  const dir = tempDir(t, 'lastword-eio-dmesg-');
  const clean = path.join(dir, 'clean.txt');
  const r0 = lastword('filter', '--dump-dmesg', real, clean);
  assert.equal(r0.status, 0, r0.stderr);
  const lines = fs.readFileSync(clean, 'utf8').split('\n').filter(Boolean);
  // The page of the text data ring that holds the middle line's text.
  const v = openVmcore(real);
  const mem = new X86_64Memory(v);
  const info = v.vmcoreinfo;
  const o = (k: string) => info.offset.get(k)!;
  const rb = mem.readU64(info.symbol.get('prb')!);
  const ring = rb + BigInt(o('printk_ringbuffer.text_data_ring'));
  const dataVaddr = mem.readU64(ring + BigInt(o('prb_data_ring.data')));
  const data = mem.readVirt(dataVaddr, 2 ** mem.readU32(ring + BigInt(o('prb_data_ring.size_bits'))));
  const middle = lines[Math.floor(lines.length / 2)]!.replace(/^\[[^\]]*\] \[[^\]]*\] /, '');
  const at = data.indexOf(Buffer.from(middle));
  assert.ok(at >= 0, `the text of "${middle}" is not in the ring`);
  const pa = mem.vtop((dataVaddr + BigInt(at)) & ~0xfffn);
  const load = v.loads.find((l) => l.paddr <= pa && pa + 4096 <= l.paddr + l.fileSize)!;
  const offset = load.offset + (pa - load.paddr);
  v.close();
  const bad = await mountBadSectors(t, real, offset, offset + 4096);
  for (const mapped of [false, true]) {
    const out = path.join(dir, `eio${mapped ? '-mmap' : ''}.txt`);
    const r = lastword('filter', '--dump-dmesg', ...(mapped ? ['--mmap'] : []), bad, out);
    assert.equal(r.status, 0, `${mapped ? '--mmap: ' : ''}${r.stderr}`);
    const warned = /warning: \S+: (\d+) log records? could not be read \(a page of the printk ring lost\)/.exec(r.stderr);
    assert.ok(warned, r.stderr);
    const n = Number(warned[1]);
    const got = fs.readFileSync(out, 'utf8').split('\n').filter(Boolean);
    const markers = got.filter((l) => / lastword: \d+ log records? lost here: a page of the printk ring could not be read \(EIO \(errno 5\)\)$/.test(l));
    assert.equal(markers.length, 1, got.join('\n'));
    assert.ok(!got.includes(lines[Math.floor(lines.length / 2)]!), 'the middle line, whose text was lost, is there');
    // The rest: the clean log with a run of n lines left out where the marker stands.
    const m = got.indexOf(markers[0]!);
    assert.deepEqual(got.slice(0, m), lines.slice(0, m));
    assert.deepEqual(got.slice(m + 1), lines.slice(m + n));
    assert.equal(got.length - 1, lines.length - n);
  }
});
