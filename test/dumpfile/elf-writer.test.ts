// `lastword filter -E` against makedumpfile -E on the same real 6.1 kdump vmcore: at dump level 0
// the very same file (program headers, notes right after them, page data), and at 31 no more bytes
// than makedumpfile's; a dump cut short by a full target is flagged in e_flags. That crash and drgn open the ELF output is test/dumpfile/readers.test.ts's job.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DUMP_ELF_INCOMPLETE } from '../../runtime/dumpfile/elf-writer.ts';
import { writeMemMapVmcore } from '../../initramfs/executable/synthetic-memmap.ts';
import { labVmcore, repo } from '../support/lab.ts';
import { makedumpfile, smallTmpfs, tempDir } from './support.ts';

function lastwordFilter(args: string[]): void {
  const r = spawnSync(process.execPath, [path.join(repo, 'runtime', 'main.ts'), 'filter', ...args], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

/** Offset of the first differing byte of two files, or -1; read in pieces (the files are ~1 GB). */
function firstDifference(a: string, b: string): number {
  const sa = fs.statSync(a).size, sb = fs.statSync(b).size;
  const fa = fs.openSync(a, 'r'), fb = fs.openSync(b, 'r');
  try {
    const x = Buffer.alloc(4 << 20), y = Buffer.alloc(4 << 20);
    for (let off = 0; off < Math.min(sa, sb); off += x.length) {
      const n = fs.readSync(fa, x, 0, x.length, off);
      fs.readSync(fb, y, 0, n, off);
      if (!x.subarray(0, n).equals(y.subarray(0, n))) return off + x.subarray(0, n).findIndex((v, i) => v !== y[i]);
    }
    return sa === sb ? -1 : Math.min(sa, sb);
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

/** `lastword filter -E -d level` and `makedumpfile -E -d level` of the 6.1 lab vmcore, in a temp dir of `t`. */
function bothElf(t: { after(fn: () => void): void }, level: number): { ours: string; ref: string } {
  const vmcore = labVmcore();
  const dir = tempDir(t);
  const ours = path.join(dir, 'ours'), ref = path.join(dir, 'ref');
  lastwordFilter(['-E', '-d', String(level), '--message-level', '0', vmcore, ours]);
  makedumpfile(['-E', '-d', String(level)], vmcore, ref);
  return { ours, ref };
}

test('-E -d 0: the very same file as makedumpfile -E, the partial page of the low 640K load left out as on its cyclic path', { timeout: 300_000 }, (t) => {
  const { ours, ref } = bothElf(t, 0);
  assert.equal(firstDifference(ours, ref), -1, 'the ELF dumps differ');
});

test('-E -d 31: no more bytes than makedumpfile -E', { timeout: 300_000 }, (t) => {
  const { ours, ref } = bothElf(t, 31);
  const a = fs.statSync(ours).size, b = fs.statSync(ref).size;
  assert.ok(a <= b, `lastword wrote ${a} bytes, makedumpfile ${b}`);
});

test('a full target leaves the ELF dump cut short with e_flags DUMP_ELF_INCOMPLETE, as makedumpfile marks it, the rest a prefix of the whole dump', { timeout: 300_000 }, (t) => {
  const vmcore = labVmcore();
  const dir = tempDir(t);
  const whole = path.join(dir, 'whole');
  lastwordFilter(['-E', '-d', '31', '--message-level', '0', vmcore, whole]);
  const cut = path.join(smallTmpfs(t), 'dump');
  const r = spawnSync(process.execPath, [path.join(repo, 'runtime', 'main.ts'), 'filter', '-E', '-d', '31', '--message-level', '0', vmcore, cut], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /ETARGET_FULL/);
  const got = fs.readFileSync(cut);
  assert.ok(got.length > 8 << 20, `only ${got.length} bytes written`);
  assert.equal(got.readUInt32LE(48) & DUMP_ELF_INCOMPLETE, DUMP_ELF_INCOMPLETE, 'e_flags');
  got.writeUInt32LE(got.readUInt32LE(48) & ~DUMP_ELF_INCOMPLETE, 48);
  const want = Buffer.alloc(got.length);
  const fd = fs.openSync(whole, 'r');
  fs.readSync(fd, want, 0, want.length, 0);
  fs.closeSync(fd);
  assert.ok(got.equals(want), 'the cut dump is not a prefix of the whole one');
});

test('a vmcore with e_phnum = PN_XNUM (QEMU, more than 65534 segments): -E keeps its kernel-text PT_LOAD, as it does when the count is in e_phnum (it was dropped)', (t) => {
  const dir = tempDir(t);
  // The kernel image's PT_LOAD repeats pages 8-9 of RAM at __START_KERNEL_map.
  const text = { paddr: 0x8000, vaddr: 0xffffffff81000000n, data: Buffer.alloc(8192, 0x5a) };
  const loadsOf = (file: string) => spawnSync('readelf', ['-lW', file], { encoding: 'utf8' }).stdout.split('\n').filter((l) => /^\s+LOAD\s/.test(l)).map((l) => l.trim().split(/\s+/).slice(1, 6).join(' '));
  const outputs = [false, true].map((qemuXnum) => {
    const vmcore = path.join(dir, `vmcore-${qemuXnum}`), out = path.join(dir, `elf-${qemuXnum}`);
    writeMemMapVmcore(vmcore, new Map(), { extraLoads: [text], qemuXnum });
    lastwordFilter(['-E', '-d', '0', vmcore, out]);
    return loadsOf(out);
  });
  assert.ok(outputs[0]!.some((l) => / 0xffffffff81000000 0x0*8000 /.test(l)), `no kernel-text PT_LOAD in the dump of the plain vmcore:\n${outputs[0]!.join('\n')}`);
  assert.deepEqual(outputs[1], outputs[0]);
});
