// `lastword filter` writing kdump-compressed dumps of a real 6.1 kdump vmcore, judged by
// makedumpfile on the same vmcore: same pfn sets at dump levels 0, 1, 10, 17 and 31, page contents
// equal the vmcore's (zlib: no larger than makedumpfile's, readable by makedumpfile), flattened
// output reassembles (ours and makedumpfile -R) to the direct file, a full target leaves a valid
// INCOMPLETE dump (a page_desc torn by the full target is zeroed), and the filter falls back to level
// 0 when it must.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { choosePageFilter, dumpHeaderInfo } from '../../runtime/cli/filter.ts';
import { openKdumpFile } from '../../runtime/dumpfile/kdump-reader.ts';
import { DUMP_DH_COMPRESSED_INCOMPLETE, geometry, subHeaderBlocks } from '../../runtime/dumpfile/kdump-layout.ts';
import { writeKdumpCompressed } from '../../runtime/dumpfile/kdump-writer.ts';
import { DumpOutput } from '../../runtime/dumpfile/output.ts';
import { LastwordError } from '../../runtime/errors.ts';
import { FilePositionalSink } from '../../runtime/targets/target.ts';
import type { PositionalSink } from '../../runtime/targets/sink.ts';
import { openVmcore } from '../../runtime/vmcore/index.ts';
import { labVmcore, repo } from '../support/lab.ts';
import { writeSyntheticVmcore } from '../../initramfs/executable/synthetic-vmcore.ts';
import { assertPagesMatchVmcore, assertSamePfnSet, makedumpfile, smallTmpfs, tempDir } from './support.ts';

const node = process.execPath;
const main = path.join(repo, 'runtime', 'main.ts');

/** Runs `lastword filter ARGS` as a user would; stdin/stdout may be files. */
export function lastword(args: string[], io: { stdin?: string; stdout?: string } = {}): { status: number; stderr: string } {
  const stdin = io.stdin ? fs.openSync(io.stdin, 'r') : 'ignore';
  const stdout = io.stdout ? fs.openSync(io.stdout, 'w') : 'ignore';
  try {
    const r = spawnSync(node, [main, ...args], { stdio: [stdin, stdout, 'pipe'], encoding: 'utf8' });
    return { status: r.status ?? -1, stderr: r.stderr };
  } finally {
    if (typeof stdin === 'number') fs.closeSync(stdin);
    if (typeof stdout === 'number') fs.closeSync(stdout);
  }
}

function ok(args: string[], io?: { stdin?: string; stdout?: string }): string {
  const r = lastword(args, io);
  assert.equal(r.status, 0, `lastword ${args.join(' ')} failed: ${r.stderr}`);
  return r.stderr;
}

describe('kdump-compressed writer against makedumpfile (6.1 vmcore)', () => {
  for (const level of [0, 1, 10, 17, 31]) {
    test(`dump level ${level}: same pfn set as makedumpfile, and with -l the very same file`, (t) => {
      const vmcore = labVmcore();
      const dir = tempDir(t);
      const ours = path.join(dir, 'ours'), ref = path.join(dir, 'ref');
      // level 31 as on one CPU: compressed and written from the main thread
      ok(['filter', '-l', '-d', String(level), ...(level === 31 ? ['--num-threads', '0'] : []), '--message-level', '0', vmcore, ours]);
      makedumpfile(['-l', '-d', String(level)], vmcore, ref);
      const a = openKdumpFile(ours), b = openKdumpFile(ref);
      t.after(() => { a.close(); b.close(); });
      assertSamePfnSet(a, b);
      assert.equal(a.subHeader.dumpLevel, level);
      // lzo is deterministic and both link Debian's liblzo2: equal pfn sets and contents mean equal bytes.
      assert.ok(fs.readFileSync(ours).equals(fs.readFileSync(ref)), 'files differ although the pfn sets are equal');
    });
  }

  test('zlib (-c -d 31): same pfn set as makedumpfile -c, no larger, every page right, and makedumpfile reads it', (t) => {
    const vmcoreFile = labVmcore();
    const dir = tempDir(t);
    const ours = path.join(dir, 'ours'), ref = path.join(dir, 'ref');
    ok(['filter', '-c', '-d', '31', '--message-level', '0', vmcoreFile, ours]);
    makedumpfile(['-c', '-d', '31'], vmcoreFile, ref);
    const a = openKdumpFile(ours), b = openKdumpFile(ref);
    const vmcore = openVmcore(vmcoreFile);
    t.after(() => { a.close(); b.close(); vmcore.close(); });
    assertSamePfnSet(a, b);
    // libdeflate level 2 writes the pages, not compress2 level 1: other bytes, fewer of them.
    assert.ok(assertPagesMatchVmcore(a, vmcore) > 10000);
    const size = (f: string) => fs.statSync(f).size;
    assert.ok(size(ours) <= size(ref), `ours ${size(ours)} bytes, makedumpfile -c ${size(ref)}`);
    assert.ok(!fs.readFileSync(ours).equals(fs.readFileSync(ref)), 'the same bytes as compress2: libdeflate is not what wrote them');
    // makedumpfile inflates our pages with its own zlib: the log it finds is the vmcore's.
    const fromOurs = path.join(dir, 'dmesg-ours'), fromVmcore = path.join(dir, 'dmesg-vmcore');
    execFileSync('makedumpfile', ['--dump-dmesg', ours, fromOurs], { stdio: 'ignore' });
    execFileSync('makedumpfile', ['--dump-dmesg', vmcoreFile, fromVmcore], { stdio: 'ignore' });
    assert.ok(fs.readFileSync(fromOurs).equals(fs.readFileSync(fromVmcore)), 'makedumpfile --dump-dmesg reads another log from our zlib dump');
  });

  for (const [opt, codec] of [['-c', 'zlib'], ['-p', 'snappy'], ['-z', 'zstd'], [undefined, 'none']] as const) {
    test(`${codec}: every saved page equals the vmcore's page (-d 31)`, (t) => {
      const vmcoreFile = labVmcore();
      const dir = tempDir(t);
      const out = path.join(dir, 'dump');
      ok(['filter', ...(opt ? [opt] : []), '-d', '31', '--message-level', '0', vmcoreFile, out]);
      const dump = openKdumpFile(out);
      const vmcore = openVmcore(vmcoreFile);
      t.after(() => { dump.close(); vmcore.close(); });
      assert.equal(dump.codec, codec);
      assert.equal(dump.incomplete, false);
      assert.ok(assertPagesMatchVmcore(dump, vmcore) > 10000);
    });
  }

  test('-F to stdout reassembles (lastword -R and makedumpfile -R) into the direct file, byte for byte', (t) => {
    const vmcore = labVmcore();
    const dir = tempDir(t);
    const direct = path.join(dir, 'direct'), flat = path.join(dir, 'flat');
    ok(['filter', '-z', '-d', '31', '--message-level', '0', vmcore, direct]);
    ok(['filter', '-F', '-z', '-d', '31', '--message-level', '0', vmcore], { stdout: flat });
    assert.equal(fs.readFileSync(flat).toString('latin1', 0, 12), 'makedumpfile');
    const ours = path.join(dir, 'ours'), ref = path.join(dir, 'ref');
    ok(['filter', '-R', ours], { stdin: flat });
    execFileSync('makedumpfile', ['-R', ref], { stdio: [fs.openSync(flat, 'r'), 'ignore', 'pipe'] });
    const want = fs.readFileSync(direct);
    assert.ok(fs.readFileSync(ours).equals(want), 'lastword -R differs from the direct dump');
    assert.ok(fs.readFileSync(ref).equals(want), 'makedumpfile -R differs from the direct dump');
  });

  // --num-threads 0 (the default on one CPU) compresses and writes from the main thread (writeSync)
  for (const threads of ['0', '2']) test(`a full target leaves an INCOMPLETE dump whose written pages are right, and exits non-zero naming ETARGET_FULL (--num-threads ${threads})`, (t) => {
    const vmcoreFile = labVmcore();
    const out = path.join(smallTmpfs(t), 'dump');
    const r = lastword(['filter', '-l', '-d', '1', '--num-threads', threads, '--message-level', '0', vmcoreFile, out]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /ETARGET_FULL/);
    const dump = openKdumpFile(out);
    const vmcore = openVmcore(vmcoreFile);
    try {
      assert.ok(dump.header.status & DUMP_DH_COMPRESSED_INCOMPLETE);
      assert.equal(dump.incomplete, true);
      // A valid prefix: every page is either not written (undefined) or exactly the vmcore's page.
      const a = Buffer.alloc(dump.pageSize), b = Buffer.alloc(dump.pageSize);
      let written = 0, missing = 0;
      for (let pfn = 0; pfn < dump.maxMapnr; pfn++) {
        if (!dump.isDumpable(pfn)) continue;
        // Data is written before its descs: a written desc never points past the end of the file.
        if (!dump.readPage(pfn, a)) { missing++; continue; }
        vmcore.readPages(pfn, 1, b);
        assert.ok(a.equals(b), `pfn 0x${pfn.toString(16)} is written but wrong`);
        written++;
      }
      assert.ok(written > 1000 && missing > 1000, `written ${written}, missing ${missing}`);
    } finally {
      dump.close();
      vmcore.close();
    }
    const info = spawnSync(node, [main, 'info', out], { encoding: 'utf8' });
    assert.equal(info.status, 0, info.stderr);
    assert.match(info.stdout, /INCOMPLETE/);
  });

  test('when the page filter cannot classify pages it saves every page with a warning', (t) => {
    const dir = tempDir(t);
    const vmcore = path.join(dir, 'vmcore');
    // A vmcore without the mem_map keys a dump level needs.
    const data = Buffer.alloc(64 * 4096);
    for (let i = 0; i < 64; i++) data.write(`page ${i}`, i * 4096);
    writeSyntheticVmcore(vmcore, 'OSRELEASE=6.1.0-test\nPAGESIZE=4096\nCRASHTIME=1700000000\n', [{ paddr: 0x100000, vaddr: 0xffff888000100000n, data }]);
    const out = path.join(dir, 'dump');
    const stderr = ok(['filter', '-c', '-d', '31', vmcore, out]);
    assert.match(stderr, /warning: dump level 31 not possible .*saving every page/);
    const dump = openKdumpFile(out);
    t.after(() => dump.close());
    assert.equal(dump.dumpablePages, 64);
    assert.equal(dump.subHeader.dumpLevel, 0);
    for (let i = 0; i < 64; i++) assert.equal(dump.readPage(0x100 + i)!.toString('latin1', 0, `page ${i}`.length), `page ${i}`);
  });
});

describe('lastword filter command line', () => {
  test('an unknown option is a usage error with exit code 2', () => {
    const r = lastword(['filter', '--cyclic-buffer-of-doom', '1', 'a', 'b']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown option --cyclic-buffer-of-doom/);
  });

  test('makedumpfile options that change nothing here are accepted (kdump-tools passes MAKEDUMP_ARGS through), --non-mmap included', (t) => {
    const vmcoreFile = labVmcore();
    const dir = tempDir(t);
    const plain = path.join(dir, 'plain'), extra = path.join(dir, 'extra');
    ok(['filter', '-l', '-d', '31', '--message-level', '0', vmcoreFile, plain]);
    ok(['filter', '--non-mmap', '--non-cyclic', '--work-dir', dir, '--splitblock-size', '1024', '-b', '8', '-D', '-l', '-d', '31', '--message-level', '0', vmcoreFile, extra]);
    assert.ok(fs.readFileSync(extra).equals(fs.readFileSync(plain)));
  });

  test('--message-level 16 reports how long each step took, as makedumpfile\'s STEP lines', (t) => {
    const vmcoreFile = labVmcore();
    const dir = tempDir(t);
    for (const format of ['-l', '-E']) {
      const stderr = ok(['filter', format, '-d', '31', '--message-level', '16', vmcoreFile, path.join(dir, `out${format}`)]);
      const steps = [...stderr.matchAll(/^STEP \[(.+?) *\] : (\d+\.\d{6}) seconds$/gm)].map((m) => m[1]);
      assert.deepEqual(steps, ['Start-up (to the vmcore)', 'Excluding unnecessary pages', 'Copying data'], stderr);
    }
  });

  test('two compressions or a bad level are usage errors', () => {
    assert.equal(lastword(['filter', '-c', '-l', 'a', 'b']).status, 2);
    const r = lastword(['filter', '-d', '32', 'a', 'b']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /-d wants a number 0\.\.31/);
  });

  test('refuses to replace an existing dump file unless -f', (t) => {
    const dir = tempDir(t);
    const vmcore = path.join(dir, 'vmcore');
    writeSyntheticVmcore(vmcore, 'OSRELEASE=6.1.0-test\nPAGESIZE=4096\n', [{ paddr: 0, vaddr: 0xffff888000000000n, data: Buffer.alloc(8 * 4096, 7) }]);
    const out = path.join(dir, 'dump');
    fs.writeFileSync(out, 'precious');
    const r = lastword(['filter', '-d', '0', vmcore, out]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /already exists \(use -f/);
    assert.equal(fs.readFileSync(out, 'utf8'), 'precious');
    ok(['filter', '-f', '-d', '0', '--message-level', '0', vmcore, out]);
    const dump = openKdumpFile(out);
    t.after(() => dump.close());
    assert.equal(dump.dumpablePages, 8);
  });
});

describe('a target that fills up in the middle of a write', () => {
  test('the file sink names, as where.offset, the first byte a write cut short did not put in the file', async (t) => {
    const file = path.join(smallTmpfs(t, 64), 'dump');
    const sink = new FilePositionalSink(fs.openSync(file, 'w'), file, { fsync: false, sync: true });
    const err = await sink.pwrite(Buffer.alloc(256 << 10, 1), 100).then(() => undefined, (e: unknown) => e);
    await sink.abort();
    assert.ok(err instanceof LastwordError && err.code === 'ETARGET_FULL', String(err));
    const size = fs.statSync(file).size;
    assert.ok(size > 100 && size < 100 + (256 << 10), `the write put some of its bytes in the file (size ${size})`);
    assert.equal(err.where.offset, size);
  });

  test('page_descs cut short inside a desc: the torn desc is zeroed, the ones before it point at their pages', async (t) => {
    const vmcoreFile = labVmcore();
    const out = path.join(tempDir(t), 'dump');
    const vmcore = openVmcore(vmcoreFile);
    t.after(() => vmcore.close());
    const filter = await choosePageFilter(vmcore, 31, () => {});
    const geo = geometry(vmcore.pageSize, subHeaderBlocks(vmcore.pageSize, vmcore.notes.length), filter.maxMapnr);
    // A real file whose target gives out in the first write of descs, after 100 of its bytes (4
    // descs and 4 bytes of the 5th): the bytes before stay, as a full filesystem leaves them.
    const file = new FilePositionalSink(fs.openSync(out, 'w'), out, { fsync: false });
    let dataStart = -1, cutAt = -1;
    const sink: PositionalSink = {
      kind: 'positional',
      pwrite: async (buf, offset) => {
        if (dataStart < 0 && offset >= geo.offsetPageDesc) dataStart = offset;      // the shared zero page, the first data
        else if (cutAt < 0 && offset >= geo.offsetPageDesc && offset < dataStart) {
          cutAt = offset;
          await file.pwrite(buf.subarray(0, 100), offset);
          throw new LastwordError('ETARGET_FULL', 'no space left on the target (ENOSPC)', { where: { file: out, offset: offset + 100 } });
        }
        await file.pwrite(buf, offset);
      },
      close: () => file.close(),
      abort: () => file.abort(),
    };
    await assert.rejects(writeKdumpCompressed({ vmcore, filter, output: new DumpOutput(sink), codec: 'lzo', headerInfo: dumpHeaderInfo(vmcore, () => {}), workers: 1 }), /ETARGET_FULL|no space/);
    assert.ok(cutAt >= geo.offsetPageDesc, 'the descs were cut');
    const dump = openKdumpFile(out);
    t.after(() => dump.close());
    assert.equal(dump.incomplete, true);
    const descs = fs.readFileSync(out).subarray(cutAt, cutAt + 120);
    assert.ok(descs.subarray(96, 120).equals(Buffer.alloc(24)), 'the torn desc is all zeros');
    for (let k = 0; k < 4; k++) assert.notEqual(descs.readUInt32LE(24 * k + 8), 0, `desc ${k} has its size`);
    // Every dumpable page reads as the vmcore's, or as not written.
    const a = Buffer.alloc(dump.pageSize), b = Buffer.alloc(dump.pageSize);
    let written = 0;
    for (let pfn = 0; pfn < dump.maxMapnr; pfn++) {
      if (!dump.isDumpable(pfn) || !dump.readPage(pfn, a)) continue;
      vmcore.readPages(pfn, 1, b);
      assert.ok(a.equals(b), `pfn 0x${pfn.toString(16)} is written but wrong`);
      written++;
    }
    assert.ok(written >= 4, `pages written: ${written}`);
  });
});
