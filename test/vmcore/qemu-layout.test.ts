// QEMU dump-guest-memory ELF as QEMU writes it (section headers first, a PT_NOTE per CPU, no
// kernel virtual addresses in the PT_LOADs): the reader, the page filter and dmesg work on it as
// makedumpfile does on the lab's header-patched copy of the same file.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { extractDmesg } from '../../runtime/dmesg/index.ts';
import { openKdumpFile } from '../../runtime/dumpfile/kdump-reader.ts';
import { createPageFilter } from '../../runtime/filter/index.ts';
import { X86_64Memory, openVmcore } from '../../runtime/vmcore/index.ts';
import type { Vmcore } from '../../runtime/vmcore/index.ts';
import { BOOKWORM_MAKEDUMPFILE, makedumpfileDmesg, makedumpfileHead } from '../filter/reference.ts';
import { fixedUpCopy, qemuSnapshotVmcore } from './qemu-snapshot.ts';
import { writeSyntheticVmcore } from '../../initramfs/executable/synthetic-vmcore.ts';

describe('a QEMU dump-guest-memory ELF of a 6.1 guest in QEMU layout', () => {
  let dir: string;
  let raw: string;
  let fixed: string;
  let vmcore: Vmcore;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-qemu-'));
    raw = qemuSnapshotVmcore('6.1');
    fixed = fixedUpCopy(raw, dir);
    vmcore = openVmcore(raw);
  });
  after(() => {
    vmcore?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('reads program headers placed after the section headers and one note per CPU', () => {
    const h = execFileSync('readelf', ['-hW', raw], { encoding: 'utf8' });
    assert.ok(Number(/Start of program headers:\s+(\d+)/.exec(h)![1]) > 64, 'QEMU layout kept');
    const notes = execFileSync('readelf', ['-nW', raw], { encoding: 'utf8' });
    assert.equal(vmcore.nrCpus, (notes.match(/NT_PRSTATUS/g) ?? []).length);
    assert.ok(vmcore.nrCpus >= 2);
    assert.equal(vmcore.vmcoreinfo.osrelease, execFileSync('cat', [path.join(path.dirname(raw), 'kver')], { encoding: 'utf8' }).trim());
    // No direct-map p_vaddr: every kernel address goes through the page tables.
    assert.equal(new X86_64Memory(vmcore).pageOffset, undefined);
  });

  test('the level-31 page set equals makedumpfile on the patched copy', async () => {
    const ref = openKdumpFile(await makedumpfileHead('6.1', fixed, 31, path.join(dir, 'd31.kdump')));
    try {
      const filter = createPageFilter(vmcore, 31, { strict: true });
      assert.equal(filter.maxMapnr, ref.maxMapnr);
      const ours = Buffer.alloc(Math.ceil(filter.maxMapnr / 8));
      filter.fillCycle(0, filter.maxMapnr, ours);
      const theirs = Buffer.alloc(ours.length);
      ref.readBitmap(2, 0, theirs);
      assert.ok(ours.equals(theirs), 'same 2nd bitmap');
      assert.equal(filter.counts.dumpable, ref.dumpablePages);
    } finally {
      ref.close();
    }
  });

  test('dmesg equals makedumpfile --dump-dmesg on the patched copy', () => {
    const theirs = makedumpfileDmesg(BOOKWORM_MAKEDUMPFILE, fixed, path.join(dir, 'dmesg.txt'));
    assert.ok(extractDmesg(vmcore, { callerId: false }).equals(theirs));
  });
});

test('reads the program header count from section 0 when e_phnum is PN_XNUM', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-xnum-'));
  try {
    const f = path.join(dir, 'xnum.vmcore');
    const loads = Array.from({ length: 5 }, (_, i) => ({ paddr: 0x100000 * (i + 1), vaddr: 0xffff888000000000n + BigInt(0x100000 * (i + 1)), data: Buffer.alloc(4096, i + 1) }));
    writeSyntheticVmcore(f, 'OSRELEASE=6.1.0\nPAGESIZE=4096\n', loads, 3, true);
    assert.match(execFileSync('readelf', ['-hW', f], { encoding: 'utf8' }), /Number of program headers:\s+65535 \(6\)/);
    const v = openVmcore(f);
    try {
      assert.equal(v.loads.length, 5);
      assert.equal(v.nrCpus, 3);
      assert.equal(v.readPhys(0x300000, 1)[0], 3);
    } finally {
      v.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
