// Every field of disk_dump_header and kdump_sub_header that `lastword filter` writes, against
// makedumpfile's on the same real vmcores: the plain 6.1, 6.12 and 7.x lab guests and the guests with a
// DIMM unplugged after kexec -p (test/vmcore/guest-state-vmcore.ts), whose last PT_LOAD has no
// mem_section, so max_mapnr is trimmed to the last section with a mem_map (get_mem_map). Then the
// whole files, byte for byte (-l: lzo is deterministic), on both of makedumpfile's paths:
// - cyclic (--cyclic-buffer given to both): a PT_LOAD's partial last page is left out;
// - one cycle with the bitmaps in a file, which makedumpfile takes by itself when both bitmaps fit
//   exactly in min(4 MiB, 60% of MemFree) (the DIMM guests: max_mapnr 0x108000 before trimming):
//   the partial last page (pfn 0x9f, 0x9f000-0x9fc00) is kept. lastword takes the same path by the
//   same rule. There 1.7.8 is the reference: bookworm's 1.7.2 lists 0x9f in the 1st bitmap but
//   clears it from the 2nd (exclude_nodata_pages rounded down, upstream fix f2c5f76 in 1.7.7).
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeDiskDumpHeader, decodeSubHeader, DISK_DUMP_HEADER_SIZE, KDUMP_SUB_HEADER_SIZE } from '../../runtime/dumpfile/kdump-layout.ts';
import { labVmcore, repo, UNSTABLE_SERIES } from '../support/lab.ts';
import { CYCLIC, newMakedumpfile, referenceMakedumpfile, referenceVmcore } from '../filter/reference.ts';
import { openKdumpFile } from '../../runtime/dumpfile/kdump-reader.ts';
import { makedumpfileOneCycle } from '../../runtime/cli/filter.ts';
import { guestStateVmcore } from '../vmcore/guest-state-vmcore.ts';
import { tempDir } from './support.ts';

function lastwordFilter(args: string[]): { status: number | null; stderr: string } {
  return spawnSync(process.execPath, [path.join(repo, 'runtime', 'main.ts'), 'filter', ...args], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
}

interface Headers {
  header: Record<string, unknown>;
  sub: Record<string, unknown>;
  /** Block 0 and the sub-header blocks (sub-header + ELF notes), as written. */
  blocks: Buffer;
}

function readHeaders(file: string): Headers {
  const fd = fs.openSync(file, 'r');
  try {
    const first = Buffer.alloc(DISK_DUMP_HEADER_SIZE);
    fs.readSync(fd, first, 0, first.length, 0);
    const h = decodeDiskDumpHeader(first, file);
    const blocks = Buffer.alloc((1 + h.subHdrSize) * h.blockSize);
    fs.readSync(fd, blocks, 0, blocks.length, 0);
    const sub = decodeSubHeader(blocks.subarray(h.blockSize, h.blockSize + KDUMP_SUB_HEADER_SIZE), h.headerVersion);
    const { utsname, ...fields } = h;
    return { header: { ...fields, utsname: utsname.toString('latin1').replace(/\0+/g, '|') }, sub: { ...sub }, blocks };
  } finally {
    fs.closeSync(fd);
  }
}

const CASES: { name: string; series: string; vmcore: () => string; levels: number[]; trimmed: boolean }[] = [
  { name: 'plain 6.1 guest', series: '6.1', vmcore: () => labVmcore({ series: '6.1' }), levels: [31], trimmed: false },
  { name: 'plain 6.12 guest', series: '6.12', vmcore: () => labVmcore({ series: '6.12' }), levels: [31], trimmed: false },
  { name: '6.1 guest with an unplugged DIMM', series: '6.1', vmcore: () => guestStateVmcore('6.1').file, levels: [1, 31], trimmed: true },
  { name: '6.12 guest with an unplugged DIMM', series: '6.12', vmcore: () => guestStateVmcore('6.12').file, levels: [31], trimmed: true },
  // Both tools read the reference copy (tail-page key named the pre-7.1 way, see referenceVmcore):
  // makedumpfile 1.7.8 misreads the original, and its notes go into the file whole.
  { name: `plain ${UNSTABLE_SERIES}.x guest (the reference copy)`, series: UNSTABLE_SERIES, vmcore: () => referenceVmcore(labVmcore({ series: UNSTABLE_SERIES })), levels: [8, 31], trimmed: false },
];

describe('kdump-compressed header fields equal makedumpfile\'s', () => {
  for (const c of CASES) {
    for (const level of c.levels) {
      test(`${c.name}, -l -d ${level}: disk_dump_header and kdump_sub_header field by field, then the whole file`, (t) => {
        const vmcore = c.vmcore();
        const dir = tempDir(t, 'lastword-header-');
        const ours = path.join(dir, 'ours'), ref = path.join(dir, 'ref');
        const r = lastwordFilter([...CYCLIC, '-l', '-d', String(level), '--message-level', '0', vmcore, ours]);
        assert.equal(r.status, 0, r.stderr);
        execFileSync(referenceMakedumpfile(c.series), [...CYCLIC, '-l', '-d', String(level), vmcore, ref], { stdio: ['ignore', 'ignore', 'pipe'] });
        const a = readHeaders(ours), b = readHeaders(ref);
        for (const k of Object.keys(b.header)) assert.deepEqual(a.header[k], b.header[k], `disk_dump_header.${k}`);
        for (const k of Object.keys(b.sub)) assert.deepEqual(a.sub[k], b.sub[k], `kdump_sub_header.${k}`);
        assert.ok(a.blocks.equals(b.blocks), 'header blocks (with padding and ELF notes) differ');
        const mapnr = Number(b.sub.maxMapnr64);
        const ptLoadEnd = Number(execFileSync('readelf', ['-lW', vmcore], { encoding: 'utf8' })
          .split('\n').filter((l) => /^\s+LOAD/.test(l))
          .map((l) => { const f = l.trim().split(/\s+/); return Number(f[3]) + Number(f[5]); })
          .reduce((x, y) => Math.max(x, y), 0));
        const untrimmed = Math.ceil(ptLoadEnd / 4096);
        if (c.trimmed) assert.ok(mapnr < untrimmed, `max_mapnr ${mapnr} trimmed below the PT_LOADs' ${untrimmed}`);
        else assert.equal(mapnr, untrimmed);
        assert.ok(fs.readFileSync(ours).equals(fs.readFileSync(ref)), 'the files differ after equal headers');
      });
    }
  }

  for (const series of ['6.1', '6.12']) {
    test(`${series} guest with an unplugged DIMM, one cycle (no --cyclic-buffer): the same file as makedumpfile 1.7.8, partial page 0x9f kept`, (t) => {
      const vmcore = guestStateVmcore(series).file;
      const dir = tempDir(t, 'lastword-header-');
      const ours = path.join(dir, 'ours'), ref = path.join(dir, 'ref');
      const r = lastwordFilter(['-l', '-d', '31', '--message-level', '0', vmcore, ours]);
      assert.equal(r.status, 0, r.stderr);
      execFileSync(newMakedumpfile(), ['-l', '-d', '31', vmcore, ref], { stdio: ['ignore', 'ignore', 'pipe'] });
      const a = readHeaders(ours), b = readHeaders(ref);
      for (const k of Object.keys(b.header)) assert.deepEqual(a.header[k], b.header[k], `disk_dump_header.${k}`);
      for (const k of Object.keys(b.sub)) assert.deepEqual(a.sub[k], b.sub[k], `kdump_sub_header.${k}`);
      const dump = openKdumpFile(ours);
      try {
        assert.ok(dump.hasRam(0x9f) && dump.isDumpable(0x9f), 'the partial page 0x9f is in both bitmaps');
      } finally {
        dump.close();
      }
      assert.ok(fs.readFileSync(ours).equals(fs.readFileSync(ref)), 'the files differ');
    });
  }
});

/**
 * The capture's dump has makedumpfile's bytes up to the page_descs (headers, notes, both bitmaps) and
 * the same page data; only where each page's data lies differs (the capture writes crash-first).
 */
function assertSameDump(capture: string, ref: string): void {
  const a = openKdumpFile(capture), b = openKdumpFile(ref);
  try {
    const upToDescs = a.offsetPageData - a.dumpablePages * 24;      // 24: sizeof(struct page_desc)
    const fa = fs.readFileSync(capture), fb = fs.readFileSync(ref);
    assert.ok(fa.subarray(0, upToDescs).equals(fb.subarray(0, upToDescs)), 'headers, notes or bitmaps differ from makedumpfile --cyclic-buffer\'s');
    assert.equal(a.dumpablePages, b.dumpablePages);
    const pa = Buffer.alloc(a.pageSize), pb = Buffer.alloc(b.pageSize);
    for (let pfn = 0; pfn < a.maxMapnr; pfn++) {
      if (!a.isDumpable(pfn)) continue;
      assert.ok(a.readPage(pfn, pa) && b.readPage(pfn, pb) && pa.equals(pb), `pfn 0x${pfn.toString(16)} differs`);
    }
  } finally {
    a.close();
    b.close();
  }
}

test('the capture honours --cyclic-buffer in core_collector: the partial page goes as with makedumpfile --cyclic-buffer, the same bitmaps and pages', (t) => {
  const vmcore = guestStateVmcore('6.1').file;
  const dir = tempDir(t, 'lastword-save-cyclic-');
  const save = (name: string, collector: string): string => {
    const root = path.join(dir, name);
    fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(root, 'etc', 'kdump.conf'), `path /var/crash\ncore_collector ${collector}\n`);
    const r = spawnSync(process.execPath, [path.join(repo, 'runtime', 'main.ts'), 'save', '--root', root, '--cmdline', '', vmcore], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const crashDir = path.join(root, 'var', 'crash');
    const [stamp] = fs.readdirSync(crashDir);
    return path.join(crashDir, stamp!, 'vmcore');
  };
  const hasPartialPage = (file: string): boolean => {
    const dump = openKdumpFile(file);
    try { return dump.isDumpable(0x9f); } finally { dump.close(); }
  };
  const cyclic = save('cyclic', `makedumpfile -l -d 31 ${CYCLIC.join(' ')}`);
  const ref = path.join(dir, 'ref');
  execFileSync(newMakedumpfile(), [...CYCLIC, '-l', '-d', '31', vmcore, ref], { stdio: ['ignore', 'ignore', 'pipe'] });
  assert.equal(hasPartialPage(cyclic), false, 'the partial page 0x9f was saved on the cyclic path');
  assertSameDump(cyclic, ref);
  // without it, makedumpfile's one-cycle path as in the test above: the partial page is kept
  assert.equal(hasPartialPage(save('one-cycle', 'makedumpfile -l -d 31')), true, 'the partial page 0x9f was left out without --cyclic-buffer');
});

test("makedumpfile's choice of one cycle: both bitmaps exactly in min(4 MiB, 60% of MemFree)", () => {
  const GiB = 2 ** 30;
  assert.equal(makedumpfileOneCycle(0x3ffdd, GiB), false, 'max_mapnr * 2 / 8 has a remainder');
  assert.equal(makedumpfileOneCycle(0x40000, GiB), true);
  assert.equal(makedumpfileOneCycle(0x1000000, GiB), true, '64 GiB: 4 MiB of bitmaps');
  assert.equal(makedumpfileOneCycle(0x1000004, GiB), false, 'over 4 MiB');
  assert.equal(makedumpfileOneCycle(0x40000, 100 * 1024), false, 'little free memory: 60% of 100 KiB < 64 KiB of bitmaps');
  assert.equal(makedumpfileOneCycle(0x40000, 0), false, 'MemFree unknown');
});
