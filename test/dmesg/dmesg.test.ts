// dmesg from real kdump vmcores of Debian 6.1, 6.12 and 7.x guests, byte-compared with
// `makedumpfile --dump-dmesg`: 1.7.8 (caller column, as every makedumpfile since 1.7.5) and
// bookworm's 1.7.2 (no caller column). Legacy log_buf and bad input on synthetic cores.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { extractDmesg, printkRecords } from '../../runtime/dmesg/index.ts';
import { LastwordError } from '../../runtime/errors.ts';
import { openVmcore, X86_64Memory } from '../../runtime/vmcore/index.ts';
import { KERNEL_SERIES, labVmcore } from '../support/lab.ts';
import { BOOKWORM_MAKEDUMPFILE, makedumpfileDmesg, newMakedumpfile } from '../filter/reference.ts';
import { writeSyntheticVmcore } from '../../initramfs/executable/synthetic-vmcore.ts';
import { writeLegacyVmcore } from './legacy-log-buf.ts';
import { assertDmesgEquals, firstDifference } from './support.ts';

for (const series of KERNEL_SERIES) {
  describe(`dmesg of a real ${series} kdump vmcore`, () => {
    let dir: string;
    let file: string;
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-dmesg-'));
      file = labVmcore({ series });
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    test('is byte-identical to makedumpfile 1.7.8 --dump-dmesg (caller column)', () => {
      const theirs = makedumpfileDmesg(newMakedumpfile(), file, path.join(dir, 'new.txt'));
      const ours = assertDmesgEquals(file, theirs);
      assert.match(ours.toString('latin1'), /^\[ +0\.000000\] \[ +T0\] Linux version /);
      assert.match(ours.toString('latin1'), /LAB-MARKER/);
    });

    test("is byte-identical to bookworm's makedumpfile 1.7.2 --dump-dmesg without the caller column", () => {
      assertDmesgEquals(file, makedumpfileDmesg(BOOKWORM_MAKEDUMPFILE, file, path.join(dir, 'old.txt')), { callerId: false });
    });
  });
}

describe('dmesg on synthetic cores', () => {
  let dir: string;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-dmesg-syn-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('a wrapped legacy log_buf (3.5..5.9) prints like makedumpfile 1.7.2 and 1.7.8, escapes included', () => {
    // The real 6.1 guest's first 200 records, plus one with a newline, control and non-ASCII bytes.
    const real = openVmcore(labVmcore({ series: '6.1' }));
    let records;
    try {
      records = printkRecords(real).slice(0, 200);
    } finally {
      real.close();
    }
    records.push({ tsNsec: 123456789012n, callerId: 0x80000001, text: Buffer.from('two\nlines \x01 tab\t \xc3\xa9 \x7f end', 'latin1') });
    const f = path.join(dir, 'legacy.vmcore');
    writeLegacyVmcore(f, records);
    const v = openVmcore(f);
    try {
      for (const [binary, callerId] of [[BOOKWORM_MAKEDUMPFILE, false], [newMakedumpfile(), true]] as const) {
        const theirs = makedumpfileDmesg(binary, f, path.join(dir, 'legacy.txt'));
        const ours = extractDmesg(v, { callerId });
        assert.ok(ours.equals(theirs), `${binary}: ${firstDifference(ours, theirs)}`);
        assert.match(ours.toString('latin1'), /two\n {14,}lines \\x01/);
      }
    } finally {
      v.close();
    }
  });

  test('a vmcore without printk symbols says which ones are missing', () => {
    const f = path.join(dir, 'noprintk.vmcore');
    writeSyntheticVmcore(f, 'OSRELEASE=6.1.0\nPAGESIZE=4096\nNUMBER(phys_base)=0\nSYMBOL(init_top_pgt)=ffffffff81000000\n', [{ paddr: 0x1000, vaddr: 0xffff888000001000n, data: Buffer.alloc(4096) }]);
    const v = openVmcore(f);
    try {
      assert.throws(() => extractDmesg(v), (e: unknown) => e instanceof LastwordError && e.code === 'EDMESG_UNSUPPORTED'
        && /noprintk\.vmcore: VMCOREINFO has neither SYMBOL\(prb\)/.test(e.oneLine()));
    } finally {
      v.close();
    }
  });
});

describe('dmesg of a real 6.1 vmcore whose printk ring has a damaged head_id or tail_id', () => {
  // makedumpfile reads the whole log of such a ring; walking ids from tail to head took up to 2^62
  // steps (the capture hung before writing any dump). The damage is applied to what the reader sees
  // of the real vmcore (its readPhys), the rest is the real memory.
  const damaged = (field: 'head_id' | 'tail_id', value: (real: bigint) => bigint) => {
    const v = openVmcore(labVmcore({ series: '6.1' }));
    const info = v.vmcoreinfo;
    const mem = new X86_64Memory(v);
    const at = mem.readU64(info.symbol.get('prb')!)
      + BigInt(info.offset.get('printk_ringbuffer.desc_ring')! + info.offset.get(`prb_desc_ring.${field}`)! + (info.offset.get('atomic_long_t.counter') ?? 0));
    const pa = mem.vtop(at);
    const bytes = Buffer.alloc(8);
    bytes.writeBigUInt64LE(BigInt.asUintN(64, value(mem.readU64(at))));
    const read = v.readPhys.bind(v);
    v.readPhys = (paddr: number, length: number, into?: Buffer) => {
      const b = read(paddr, length, into);
      for (let i = 0; i < 8; i++) if (pa + i >= paddr && pa + i < paddr + length) b[pa + i - paddr] = bytes[i]!;
      return b;
    };
    return v;
  };
  const pristine = () => {
    const v = openVmcore(labVmcore({ series: '6.1' }));
    try { return extractDmesg(v); } finally { v.close(); }
  };

  for (const [what, field, value] of [
    ['head_id with a flag bit set', 'head_id', (h: bigint) => h | (1n << 63n)],
    ['head_id behind tail_id', 'head_id', () => 5n],
    ['tail_id ahead of head_id', 'tail_id', (t: bigint) => t + (1n << 40n)],
  ] as const) {
    test(`${what}: every record is read, none twice`, () => {
      const v = damaged(field, value);
      try {
        const ours = extractDmesg(v);
        const want = pristine();
        assert.ok(ours.equals(want), firstDifference(ours, want));
      } finally {
        v.close();
      }
    });
  }
});
