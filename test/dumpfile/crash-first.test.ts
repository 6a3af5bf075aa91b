// A kdump-compressed dump written crash-first (lastword save always; lastword filter --crash-first):
// the same pages as in pfn order, tier by tier in the file, and a dump cut short by a full target
// right after the tiers opens in crash. On the real 6.1 and 6.12 lab vmcores; KASLR often puts the
// kernel image, the per-CPU areas or modules near the top of RAM, and then in pfn order a dump cut
// at 85% of its bytes does not open.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KdumpReader } from '../../runtime/dumpfile/kdump-reader.ts';
import { writeKdumpCompressed } from '../../runtime/dumpfile/kdump-writer.ts';
import { DumpOutput } from '../../runtime/dumpfile/output.ts';
import { createPageFilter } from '../../runtime/filter/index.ts';
import { FilePositionalSink } from '../../runtime/targets/target.ts';
import { openVmcore } from '../../runtime/vmcore/index.ts';
import { writeSyntheticVmcore } from '../../initramfs/executable/synthetic-vmcore.ts';
import { crashBinary, debugVmlinux, kernelVersion, labVmcore, repo } from '../support/lab.ts';
import { crashFirstTiers } from '../filter/bitmaps.ts';
import { assertPagesMatchVmcore, assertSamePfnSet, assertTextInsideOneRamLoad, elfLoads, smallTmpfs, tempDir } from './support.ts';

const main = path.join(repo, 'runtime', 'main.ts');
const skip = kernelVersion('6.1') ? undefined : 'no 6.1 kernel (bash .ci/setup)';

function lastword(args: string[], stdout?: string) {
  const fd = stdout ? fs.openSync(stdout, 'w') : 'pipe';
  try {
    return spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', stdio: ['ignore', fd, 'pipe'] });
  } finally {
    if (typeof fd === 'number') fs.closeSync(fd);
  }
}

/** crash's sys, bt, log and ps on `dump`, with `opts`; the output. `dir`: where its command file can go. */
function crashOn(dump: string, dir: string, opts: string[] = [], series = '6.1'): string {
  const cmds = path.join(dir, 'crash-cmds');
  fs.writeFileSync(cmds, 'sys\nbt\nlog\nps\nquit\n');
  const r = spawnSync(crashBinary(), [...opts, '-s', '-i', cmds, debugVmlinux(kernelVersion(series)!), dump], { encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20 });
  return `${r.stdout}\n--stderr--\n${r.stderr}`;
}

function assertCrashOpens(out: string, what: string, series = '6.1'): void {
  const where = `crash on ${what}:\n${out.slice(0, 3000)}`;
  assert.match(out, new RegExp(`RELEASE: ${series.replace('.', '\\.')}\\.`), where);
  assert.match(out, /PANIC: "Kernel panic/, where);
  assert.match(out, /#1 \[[0-9a-f]+\] __crash_kexec at/, where);      // the panic task's backtrace
  assert.match(out, /sysrq: Trigger a crash/, where);                  // log
  assert.match(out, /^>?\s+1\s+0\s+\d+\s+[0-9a-f]+\s+RU\s+[\d.]+\s+\d+\s+\d+\s+init$/m, where);      // ps: pid 1, running
  assert.match(out, /^>?\s+0\s+0\s+0\s+[0-9a-f]+\s+RU\s.*\[swapper\/0\]$/m, where);
}

/**
 * `lastword filter -d 31` of `vmcoreFile` in `format` (-l, -E) crash-first and in pfn order, in a
 * temporary directory; asserts that the crash-first -F stream (an SSH target's) reassembled by
 * makedumpfile -R is the crash-first file, and that the two orders differ.
 */
function filterBothOrders(t: { after(fn: () => void): void }, vmcoreFile: string, format: string): { first: string; plain: string } {
  const dir = tempDir(t);
  const first = path.join(dir, 'first'), plain = path.join(dir, 'plain'), flat = path.join(dir, 'flat'), reassembled = path.join(dir, 'reassembled');
  for (const [args, out] of [[['--crash-first'], first], [[], plain]] as const) {
    const r = lastword(['filter', ...args, format, '-d', '31', '--message-level', '0', vmcoreFile, out]);
    assert.equal(r.status, 0, r.stderr);
  }
  const r = lastword(['filter', '--crash-first', '-F', format, '-d', '31', '--message-level', '0', vmcoreFile], flat);
  assert.equal(r.status, 0, r.stderr);
  execFileSync('makedumpfile', ['-R', reassembled], { stdio: [fs.openSync(flat, 'r'), 'ignore', 'pipe'] });
  assert.ok(fs.readFileSync(reassembled).equals(fs.readFileSync(first)), 'makedumpfile -R of the flattened form differs from the file');
  assert.ok(!fs.readFileSync(first).equals(fs.readFileSync(plain)), 'the crash-first dump is the pfn-order dump');
  return { first, plain };
}

test('--crash-first writes the same pages as pfn order, tier 0 first, then the text, then slab, then the rest; its flattened form reassembles to the same file', { skip, timeout: 300_000 }, (t) => {
  const vmcoreFile = labVmcore({ series: '6.1' });
  const { first, plain } = filterBothOrders(t, vmcoreFile, '-l');

  const ours = new KdumpReader(first), ref = new KdumpReader(plain);
  const vmcore = openVmcore(vmcoreFile);
  try {
    assertSamePfnSet(ours, ref);
    assertPagesMatchVmcore(ours, vmcore);
    // Where each tier's data lies in the file: each tier's pages come after all of the tier before.
    const tiers = crashFirstTiers(vmcoreFile);
    const inTier = new Map<number, number>();
    tiers.forEach((tier, i) => { for (const p of tier) inTier.set(p, i); });
    const span = tiers.map(() => ({ lo: Infinity, hi: -1 })).concat({ lo: Infinity, hi: -1 });      // + the rest
    let zeroOffset = -1;
    for (let pfn = 0; pfn < ours.maxMapnr; pfn++) {
      if (!ours.isDumpable(pfn)) continue;
      const d = ours.pageDesc(pfn)!;
      if (d.size === ours.pageSize && d.offset === ours.offsetPageData) { zeroOffset = d.offset; continue; }      // the shared zero page
      const s = span[inTier.get(pfn) ?? tiers.length]!;
      s.lo = Math.min(s.lo, d.offset);
      s.hi = Math.max(s.hi, d.offset);
    }
    assert.ok(zeroOffset >= 0, 'no zero page');
    for (let i = 1; i < span.length; i++) {
      assert.ok(span[i]!.lo > span[i - 1]!.hi, `tier ${i} starts at ${span[i]!.lo}, before tier ${i - 1} ends at ${span[i - 1]!.hi}`);
    }
  } finally {
    ours.close();
    ref.close();
    vmcore.close();
  }
});

/** Where each tier's page data ends in the crash-first dump `file` of `vmcoreFile` (bytes from the start). */
function tierEnds(file: string, vmcoreFile: string): number[] {
  const dump = new KdumpReader(file);
  try {
    return crashFirstTiers(vmcoreFile).map((tier) => {
      let end = 0;
      for (const pfn of tier) {
        const d = dump.isDumpable(pfn) ? dump.pageDesc(pfn) : undefined;
        if (d) end = Math.max(end, d.offset + d.size);
      }
      return end;
    });
  } finally {
    dump.close();
  }
}

/**
 * The same for an ELF dump: a page's data is where the first PT_LOAD that holds it (in header
 * order, p_memsz included, as crash looks) puts it; past that PT_LOAD's p_filesz it reads as zeros
 * and needs no data. (The tiers are made before zero pages are found: a zero page at the image's
 * end is in the text PT_LOAD's p_memsz tail, and RAM's merged copy of it may come anywhere.)
 */
function elfTierEnds(file: string, vmcoreFile: string, pageSize = 4096): number[] {
  const loads = elfLoads(file);
  return crashFirstTiers(vmcoreFile).map((tier) => {
    let end = 0;
    for (const pfn of tier) {
      const pa = pfn * pageSize;
      const l = loads.find((x) => pa >= x.paddr && pa < x.paddr + x.memSize);
      if (l && pa + pageSize <= l.paddr + l.fileSize) end = Math.max(end, l.offset + (pa - l.paddr) + pageSize);
    }
    return end;
  });
}

// On the 6.1 and the 6.12 vmcore: two KASLR layouts in each run. Both formats: kdump-compressed
// (the capture's default) and ELF (core_collector makedumpfile -E).
for (const series of ['6.1', '6.12']) {
  for (const elf of [false, true]) {
    const format = elf ? 'ELF' : 'kdump-compressed';
    test(`lastword save onto a target that fills up (${series}, ${format}): the incomplete dump opens in crash, cut right after the tiers as it is${elf ? '' : ', right after the text and modules with --zero_excluded'}`, { skip: kernelVersion(series) ? undefined : `no ${series} kernel (bash .ci/setup)`, timeout: 600_000 }, (t) => {
      const vmcoreFile = labVmcore({ series });
      const conf = path.join(tempDir(t), 'kdump.conf');
      fs.writeFileSync(conf, `path /var/crash\ncore_collector makedumpfile ${elf ? '-E' : '-l'} -d 31\n`);
      const full = path.join(tempDir(t), 'full');
      const whole = lastword(['filter', '--crash-first', elf ? '-E' : '-l', '-d', '31', '--message-level', '0', vmcoreFile, full]);
      assert.equal(whole.status, 0, whole.stderr);
      const size = fs.statSync(full).size;
      // The cuts follow where the tiers end in this vmcore (KASLR places the image and the modules
      // anew each boot), not a fixed share: any cut after them must open.
      // In ELF output a PT_LOAD piece takes the first tier among its pages, so a tier's last page
      // may come after the next tier's: the cut is after all of them.
      const ends = elf ? elfTierEnds(full, vmcoreFile) : tierEnds(full, vmcoreFile);
      const cuts: [number, string[]][] = [[Math.max(...ends), []]];
      if (!elf) cuts.push([ends[1]!, ['--zero_excluded']]);

      for (const [needed, crashOpts] of cuts) {
        // The target: a tmpfs holding the tiers' bytes and 64 KiB more (the kernel log, the run log, the last page written).
        const root = tempDir(t);
        const target = smallTmpfs(t, Math.ceil(needed / 4096) * 4 + 64);
        fs.mkdirSync(path.join(root, 'var'));
        fs.symlinkSync(target, path.join(root, 'var', 'crash'));
        const r = lastword(['save', '--config', conf, '--root', root, vmcoreFile]);
        assert.equal(r.status, 1, `${r.stdout}${r.stderr}`);
        assert.match(r.stderr, /ETARGET_FULL/);
        const [dir] = fs.readdirSync(target);
        const cut = path.join(target, dir!, 'vmcore-incomplete');
        const written = fs.statSync(cut).size;
        assert.ok(written >= needed && written < size, `the cut dump has ${written} of ${size} bytes, the tiers ${needed}`);
        assertCrashOpens(crashOn(cut, root, [...crashOpts], series), `a ${format} dump cut at ${Math.round((100 * written) / size)}% ${crashOpts.join(' ')}`, series);
      }
    });
  }
}

test('ELF --crash-first: every address holds the bytes it holds in pfn order; more PT_LOADs, the tiers\' data first; its flattened form reassembles to the same file', { skip, timeout: 300_000 }, (t) => {
  const vmcoreFile = labVmcore({ series: '6.1' });
  // The -F stream too: the pieces go out in file order, and makedumpfile -R puts them back.
  const { first, plain } = filterBothOrders(t, vmcoreFile, '-E');
  const a = openVmcore(first), b = openVmcore(plain);
  try {
    assert.ok(a.loads.length > b.loads.length, `${a.loads.length} PT_LOADs crash-first, ${b.loads.length} in pfn order`);
    assertTextInsideOneRamLoad(first);
    assertTextInsideOneRamLoad(plain);
    const pa = Buffer.alloc(a.pageSize), pb = Buffer.alloc(b.pageSize);
    let pages = 0;
    for (let pfn = 0; pfn < b.maxMapnr; pfn++) {
      assert.equal(a.pfnHasData(pfn), b.pfnHasData(pfn), `pfn 0x${pfn.toString(16)}: data crash-first ${a.pfnHasData(pfn)}, in pfn order ${b.pfnHasData(pfn)}`);
      if (!b.pfnHasData(pfn)) continue;
      a.readPages(pfn, 1, pa);
      b.readPages(pfn, 1, pb);
      assert.ok(pa.equals(pb), `pfn 0x${pfn.toString(16)} differs`);
      pages++;
    }
    assert.ok(pages > 10_000, `only ${pages} pages compared`);
  } finally {
    a.close();
    b.close();
  }
  // The tiers end well before the data does.
  const size = fs.statSync(first).size;
  const ends = elfTierEnds(first, vmcoreFile);
  assert.ok(Math.max(...ends) < 0.75 * size, `the tiers end at ${Math.max(...ends)} of ${size} bytes`);
});

// The writer's part alone, on a synthetic vmcore and tiers given by hand: 64 pages at 1 MiB and, in
// the second case, 64 at 200 GiB, whose bitmaps (6.4 MiB) are past what pass 1 keeps, so pass 2
// makes them again.
for (const high of [false, true]) {
  test(`the writer puts each tier's pages first, in the tier's order, and every page is right (${high ? 'bitmaps made again: over 128 GiB' : 'bitmaps kept'})`, async (t) => {
    const dir = tempDir(t);
    const vmcoreFile = path.join(dir, 'vmcore');
    const page = (tag: string) => { const b = Buffer.alloc(64 * 4096); for (let i = 0; i < 64; i++) b.write(`${tag} ${i}`, i * 4096); return b; };
    const loads = [{ paddr: 0x100000, vaddr: 0xffff888000100000n, data: page('low') }];
    if (high) loads.push({ paddr: 200 * 2 ** 30, vaddr: 0xffff888000000000n + BigInt(200 * 2 ** 30), data: page('high') });
    writeSyntheticVmcore(vmcoreFile, 'OSRELEASE=6.1.0-test\nPAGESIZE=4096\nCRASHTIME=1700000000\n', loads);
    const lowPfn = 0x100, highPfn = (200 * 2 ** 30) / 4096;
    // Tier 0: two runs, one of them cut by a pfn with no data (not dumped); tier 1: what is left of the high load.
    const tiers = high
      ? [Uint32Array.from([lowPfn + 10, lowPfn + 11, lowPfn + 12, highPfn - 1, highPfn, highPfn + 1, highPfn + 2]), Uint32Array.from({ length: 61 }, (_, i) => highPfn + 3 + i)]
      : [Uint32Array.from([lowPfn + 10, lowPfn + 11, lowPfn + 12, lowPfn + 40]), Uint32Array.from([lowPfn + 63])];
    const vmcore = openVmcore(vmcoreFile);
    const out = path.join(dir, 'dump');
    try {
      const filter = createPageFilter(vmcore, 0);
      const output = new DumpOutput(new FilePositionalSink(fs.openSync(out, 'w'), out));
      const headerInfo = { utsname: Buffer.alloc(390), crashTime: 1700000000, physBase: 0n };
      const order = { observe: () => {}, tiers: () => tiers.map((x) => Uint32Array.from(x)) };
      const summary = await writeKdumpCompressed({ vmcore, filter, output, codec: 'lzo', headerInfo, workers: 0, order });
      assert.equal(summary.dumpablePages, high ? 128 : 64);
    } finally {
      vmcore.close();
    }
    const dump = new KdumpReader(out);
    try {
      const regions: [string, number][] = high ? [['low', lowPfn], ['high', highPfn]] : [['low', lowPfn]];
      for (const [tag, base] of regions) {
        for (let i = 0; i < 64; i++) assert.equal(dump.readPage(base + i)!.toString('latin1', 0, `${tag} ${i}`.length), `${tag} ${i}`);
      }
      // Data offsets: the tiers in order, each in pfn order, then the rest in pfn order.
      const written = tiers.flatMap((x) => [...x]).filter((p) => dump.isDumpable(p));
      for (let pfn = 0; pfn < dump.maxMapnr; pfn++) if (dump.isDumpable(pfn) && !written.includes(pfn)) written.push(pfn);
      const offsets = written.map((p) => dump.pageDesc(p)!.offset);
      for (let k = 1; k < offsets.length; k++) assert.ok(offsets[k]! > offsets[k - 1]!, `pfn 0x${written[k]!.toString(16)} is not written after pfn 0x${written[k - 1]!.toString(16)}`);
    } finally {
      dump.close();
    }
  });
}

