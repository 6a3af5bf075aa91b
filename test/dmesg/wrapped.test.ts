// dmesg of real 6.1 and 6.12 guests whose printk ring wrapped before the panic
// (test/vmcore/guest-state-vmcore.ts writes 5000 short and 2500 long lines to /dev/kmsg): both the
// descriptor ring (4096 records) and the 128 KiB text ring went round, so the oldest boot lines are
// gone and a live record's text block wraps to the start of the ring. Debian's kernels cannot be
// given a smaller ring: log_buf_len= only ever grows the CONFIG_LOG_BUF_SHIFT=17 default.
// `lastword filter --dump-dmesg` equals makedumpfile 1.7.8 (caller column) byte for byte, and
// without the caller column equals bookworm's 1.7.2.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { extractDmesg } from '../../runtime/dmesg/index.ts';
import { X86_64Memory, openVmcore, requireKey } from '../../runtime/vmcore/index.ts';
import type { Vmcore } from '../../runtime/vmcore/index.ts';
import { repo } from '../support/lab.ts';
import { BOOKWORM_MAKEDUMPFILE, makedumpfileDmesg, newMakedumpfile } from '../filter/reference.ts';
import { tempDir } from '../dumpfile/support.ts';
import { KMSG_LONG, KMSG_SHORT, guestStateVmcore } from '../vmcore/guest-state-vmcore.ts';
import { assertDmesgEquals, firstDifference } from './support.ts';

/** The ring's state, read independently of runtime/dmesg: ids and text block positions. */
function ringState(v: Vmcore): { tailId: bigint; count: number; wrappedBlocks: number; textLaps: bigint } {
  const info = v.vmcoreinfo;
  const off = (n: string) => requireKey(info.offset, 'OFFSET', n, v.file);
  const mem = new X86_64Memory(v);
  const rb = mem.readU64(requireKey(info.symbol, 'SYMBOL', 'prb', v.file));
  const ring = rb + BigInt(off('printk_ringbuffer.desc_ring'));
  const count = 2 ** mem.readU32(ring + BigInt(off('prb_desc_ring.count_bits')));
  const data = rb + BigInt(off('printk_ringbuffer.text_data_ring'));
  const size = 2n ** BigInt(mem.readU32(data + BigInt(off('prb_data_ring.size_bits'))));
  const counter = BigInt(info.offset.get('atomic_long_t.counter') ?? 0);
  const tailId = mem.readU64(ring + BigInt(off('prb_desc_ring.tail_id')) + counter);
  const headId = mem.readU64(ring + BigInt(off('prb_desc_ring.head_id')) + counter);
  const descs = mem.readU64(ring + BigInt(off('prb_desc_ring.descs')));
  const sizeDesc = BigInt(requireKey(info.size, 'SIZE', 'prb_desc', v.file));
  const lpos = BigInt(off('prb_desc.text_blk_lpos'));
  let wrappedBlocks = 0;
  for (let id = tailId; id <= headId; id++) {
    const d = descs + (id % BigInt(count)) * sizeDesc;
    const begin = mem.readU64(d + lpos + BigInt(off('prb_data_blk_lpos.begin')));
    const next = mem.readU64(d + lpos + BigInt(off('prb_data_blk_lpos.next')));
    if (begin % size > next % size) wrappedBlocks++;
  }
  const headLpos = mem.readU64(data + BigInt(off('prb_data_ring.head_lpos')) + counter);
  // The text ring's logical positions start at -size (BLK0_LPOS), so head + size were written.
  return { tailId, count, wrappedBlocks, textLaps: BigInt.asUintN(64, headLpos + size) / size };
}

for (const series of ['6.1', '6.12']) {
  describe(`dmesg of a real ${series} guest whose printk ring wrapped`, () => {
    test('the ring really wrapped: descriptors and text went round, a live text block wraps', () => {
      const v = openVmcore(guestStateVmcore(series).file);
      try {
        const r = ringState(v);
        assert.ok(r.tailId >= BigInt(r.count), `tail id ${r.tailId} of ${r.count} descriptors`);
        assert.ok(r.textLaps >= 2n, `text ring laps ${r.textLaps}`);
        assert.ok(r.wrappedBlocks >= 1, 'a live record whose text block wraps to the ring start');
        const text = extractDmesg(v).toString('latin1');
        assert.doesNotMatch(text, /Linux version/, 'the boot lines were overwritten');
        assert.match(text, /^\[ *\d+\.\d{6}\] \[ +T\d+\] FX-WRAP \d+ /);
        assert.match(text, new RegExp(`FX-WRAP ${KMSG_LONG - 1} `));
        assert.doesNotMatch(text, new RegExp(`\\] w${KMSG_SHORT - 1}\\n`), 'the short lines are gone');
        assert.match(text, /FX-ODD tab\there bell\\x07 high\\xffffffc3\\xffffffa9 two\n {26}lines\n/);
      } finally {
        v.close();
      }
    });

    test('lastword filter --dump-dmesg is byte-identical to makedumpfile 1.7.8 --dump-dmesg', (t) => {
      const file = guestStateVmcore(series).file;
      const dir = tempDir(t, 'lastword-dmesg-wrap-');
      const theirs = makedumpfileDmesg(newMakedumpfile(), file, path.join(dir, 'new.txt'));
      const out = path.join(dir, 'ours.txt');
      const r = spawnSync(process.execPath, [path.join(repo, 'runtime', 'main.ts'), 'filter', '--dump-dmesg', file, out], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const ours = fs.readFileSync(out);
      assert.ok(ours.equals(theirs), firstDifference(ours, theirs));
    });

    test("without the caller column it is byte-identical to bookworm's makedumpfile 1.7.2", (t) => {
      const file = guestStateVmcore(series).file;
      const dir = tempDir(t, 'lastword-dmesg-wrap-');
      assertDmesgEquals(file, makedumpfileDmesg(BOOKWORM_MAKEDUMPFILE, file, path.join(dir, 'old.txt')), { callerId: false });
    });
  });
}
