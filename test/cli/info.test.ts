// `lastword info` on makedumpfile's dump and ours of a real 6.1 kdump vmcore: release, crash time,
// codec, level, and page counts that agree with makedumpfile's own report and the vmcore; ELF
// dumps and the vmcore itself from their PT_LOADs.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { openVmcore } from '../../runtime/vmcore/index.ts';
import { openKdumpFile } from '../../runtime/dumpfile/kdump-reader.ts';
import { labVmcore, repo } from '../support/lab.ts';
import { tempDir } from '../dumpfile/support.ts';

const main = path.join(repo, 'runtime', 'main.ts');

function info(file: string, json = true): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [main, 'info', ...(json ? ['--json'] : []), file], { encoding: 'utf8' });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('lastword info', () => {
  test('describes makedumpfile -c -d 31 output as makedumpfile reports it', (t) => {
    const vmcoreFile = labVmcore();
    const dir = tempDir(t);
    const out = path.join(dir, 'dump');
    // makedumpfile's own report (--message-level 31) is the reference for the page classes.
    const report = execFileSync('makedumpfile', ['-c', '-d', '31', '--message-level', '31', vmcoreFile, out], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const hex = (label: RegExp) => parseInt(label.exec(report)![1]!, 16);
    const zero = hex(/Pages filled with zero\s*:\s*0x([0-9a-f]+)/);
    const total = hex(/Total pages\s*:\s*0x([0-9a-f]+)/);
    const r = info(out);
    assert.equal(r.status, 0, r.stderr);
    const i = JSON.parse(r.stdout);
    const vmcore = openVmcore(vmcoreFile);
    t.after(() => vmcore.close());
    assert.equal(i.format, 'kdump-compressed');
    assert.equal(i.codec, 'zlib');
    assert.equal(i.dumpLevel, 31);
    assert.equal(i.incomplete, false);
    assert.equal(i.osrelease, vmcore.vmcoreinfo.osrelease);
    assert.equal(i.crashTime, vmcore.vmcoreinfo.crashTime);
    assert.equal(i.pageSize, 4096);
    assert.equal(i.nrCpus, vmcore.nrCpus);
    assert.equal(i.maxMapnr, total);
    assert.equal(i.pages.zero, zero);
    assert.ok(zero > 0);
    assert.equal(i.pages.dumpable, i.pages.zero + i.pages.compressed + i.pages.raw);
    assert.equal(i.pages.excluded, i.pages.ram - i.pages.dumpable);
    assert.equal(i.pages.missing, 0);
    let withData = 0;
    for (let pfn = 0; pfn < vmcore.maxMapnr; pfn++) if (vmcore.pfnHasData(pfn)) withData++;
    assert.equal(i.pages.ram, withData);
  });

  test('describes our own dump the same way it describes makedumpfile\'s, in text', (t) => {
    const vmcoreFile = labVmcore();
    const dir = tempDir(t);
    const ours = path.join(dir, 'ours'), ref = path.join(dir, 'ref');
    assert.equal(spawnSync(process.execPath, [main, 'filter', '-l', '-d', '17', '--message-level', '0', vmcoreFile, ours]).status, 0);
    execFileSync('makedumpfile', ['-l', '-d', '17', vmcoreFile, ref], { stdio: 'ignore' });
    const a = JSON.parse(info(ours).stdout), b = JSON.parse(info(ref).stdout);
    assert.deepEqual({ ...a, file: '' }, { ...b, file: '' });
    const text = info(ours, false);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /compression:\s+lzo/);
    assert.match(text.stdout, /status:\s+complete/);
    assert.match(text.stdout, new RegExp(`release:\\s+${a.osrelease}`));
    assert.match(text.stdout, new RegExp(`dumpable\\s+${a.pages.dumpable} `));
  });

  test('describes an ELF vmcore and ELF dumps (makedumpfile -E, ours): page counts from the PT_LOADs, the kernel as a kdump-compressed dump of it names it, and a cut or flagged one as INCOMPLETE', (t) => {
    const vmcoreFile = labVmcore();
    const dir = tempDir(t);
    const lzo = path.join(dir, 'dump.lzo'), ours = path.join(dir, 'ours.elf'), ref = path.join(dir, 'ref.elf');
    for (const [args, out] of [[['-l'], lzo], [['-E'], ours]] as const) {
      assert.equal(spawnSync(process.execPath, [main, 'filter', ...args, '-d', '31', '--message-level', '0', vmcoreFile, out]).status, 0);
    }
    execFileSync('makedumpfile', ['-E', '-d', '31', vmcoreFile, ref], { stdio: 'ignore' });
    const k = JSON.parse(info(lzo).stdout);
    const v = JSON.parse(info(vmcoreFile).stdout);
    const vmcore = openVmcore(vmcoreFile);
    t.after(() => vmcore.close());
    let withData = 0;
    for (let pfn = 0; pfn < vmcore.maxMapnr; pfn++) if (vmcore.pfnHasData(pfn)) withData++;
    // The vmcore: every page with data is there, nothing excluded.
    assert.equal(v.format, 'ELF');
    assert.equal(v.incomplete, false);
    assert.equal(v.pages.ram, withData);
    assert.equal(v.pages.dumpable, withData);
    assert.equal(v.pages.missing, 0);
    for (const file of [ours, ref]) {
      const e = JSON.parse(info(file).stdout);
      assert.equal(e.format, 'ELF', file);
      assert.equal(e.incomplete, false, file);
      assert.equal(e.dumpLevel, undefined);
      for (const key of ['osrelease', 'utsRelease', 'nodename', 'machine', 'crashTime', 'pageSize', 'nrCpus']) assert.equal(e[key], k[key], `${file}: ${key}`);
      assert.equal(e.pages.ram, v.pages.ram, file);
      // -d 31 left pages out. An ELF dump leaves zero pages out too (the lzo one points them at its one zero
      // page) but keeps short excluded runs (< 256 pages) in its segments.
      assert.ok(e.pages.dumpable < v.pages.ram && e.pages.dumpable >= k.pages.dumpable - k.pages.zero, `${file}: ${e.pages.dumpable} dumpable, lzo ${k.pages.dumpable} - ${k.pages.zero} zero`);
      assert.equal(e.pages.missing, 0);
    }
    // Cut short: the pages past the end are missing; flagged in e_flags: incomplete, nothing missing.
    const whole = fs.readFileSync(ours);
    const cut = path.join(dir, 'cut.elf'), flagged = path.join(dir, 'flagged.elf');
    fs.writeFileSync(cut, whole.subarray(0, whole.length - 10 * 4096));
    const c = JSON.parse(info(cut).stdout);
    assert.equal(c.incomplete, true);
    assert.equal(c.pages.missing, 10);
    assert.equal(c.pages.raw, c.pages.dumpable - 10);
    whole.writeUInt32LE(1, 48);
    fs.writeFileSync(flagged, whole);
    const f = info(flagged, false);
    assert.match(f.stdout, /format:\s+ELF INCOMPLETE/);
    assert.match(f.stdout, /status:\s+incomplete: flagged in e_flags/);
  });

  test('a kdump-compressed file cut short (a copy or transfer that stopped) is incomplete, its pages past the end missing; a damaged sub-header is named', (t) => {
    // found by fuzzing: a file with no page data at all said "status: complete"
    const dir = tempDir(t);
    const out = path.join(dir, 'dump');
    const r = spawnSync(process.execPath, [main, 'filter', '-l', '-d', '31', labVmcore(), out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const whole = fs.readFileSync(out);
    const full = JSON.parse(info(out).stdout);
    assert.equal(full.incomplete, false);
    assert.equal(full.pages.missing, 0);
    const reader = openKdumpFile(out);
    const { blockSize, offsetPageDesc } = { blockSize: reader.pageSize, offsetPageDesc: reader.geometry.offsetPageDesc };
    reader.close();
    for (const [name, length, missing] of [
      ['no-data', offsetPageDesc + full.pages.dumpable * 24, (n: number) => n === full.pages.dumpable],   // the shared zero page's data too
      ['half-descs', offsetPageDesc + Math.floor(full.pages.dumpable / 2) * 24, (n: number) => n >= Math.ceil(full.pages.dumpable / 2)],
      ['one-byte-short', whole.length - 1, (n: number) => n === 1],
    ] as const) {
      const cut = path.join(dir, name);
      fs.writeFileSync(cut, whole.subarray(0, length));
      const c = info(cut, false);
      assert.equal(c.status, 0, c.stderr);
      assert.match(c.stdout, /format:\s+kdump-compressed \(header version \d\) INCOMPLETE/, name);
      const n = Number(/not written +(\d+)/.exec(c.stdout)?.[1]);
      assert.ok(missing(n), `${name}: ${n} missing\n${c.stdout}`);
      assert.match(c.stdout, new RegExp(`status:\\s+incomplete: ${n} pages missing \\(never written, or past the end of the file\\)`));
    }
    // kdump_sub_header's offset_vmcoreinfo / size_note (at block_size + 32 / + 56) damaged
    for (const [at, value, what] of [[32, -1n, 'vmcoreinfo \\(offset -1, size \\d+'], [56, 1n << 40n, 'note \\(offset \\d+, size 1099511627776'], [40, 1n << 39n, 'vmcoreinfo \\(offset \\d+, size 549755813888']] as const) {
      const bad = Buffer.from(whole);
      bad.writeBigInt64LE(value, blockSize + at);
      const f = path.join(dir, `sub-${at}`);
      fs.writeFileSync(f, bad);
      const b = info(f, false);
      assert.equal(b.status, 1);
      assert.match(b.stderr, new RegExp(`^lastword info: EDUMP_HEADER: \\S+sub-${at}: sub-header ${what}\\) at offset 0x${(blockSize + (at < 48 ? 32 : 48)).toString(16)} lies outside the file of ${whole.length} bytes`));
    }
  });

  test('names a file that is not a dump, a directory and a missing file, and an unknown option exits 2', (t) => {
    const r = info(path.join(repo, 'package.json'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /EDUMP_HEADER: .*package\.json: not a kdump-compressed file/);
    const dir = info(path.join(repo, 'test'));
    assert.equal(dir.status, 1);
    assert.match(dir.stderr, /^lastword info: EDUMP_OPEN: \S+\/test: cannot read it: EISDIR\n$/);
    const missing = info(path.join(repo, 'no-such-dump'));
    assert.match(missing.stderr, /EDUMP_OPEN: \S+\/no-such-dump: cannot read it: ENOENT/);
    const u = spawnSync(process.execPath, [main, 'info', '--frobnicate', 'x'], { encoding: 'utf8' });
    assert.equal(u.status, 2);
    assert.match(u.stderr, /unknown option --frobnicate/);
  });
});
