import assert from 'node:assert/strict';
import { test } from 'node:test';
import { v8Gc, YoungGc } from '../../runtime/targets/young-gc.ts';

test('collects once per `every` bytes handed to ssh2, counting across uneven writes', () => {
  const calls: unknown[] = [];
  const young = new YoungGc(2 << 20, (o) => calls.push(o));
  for (let i = 0; i < 7; i++) young.sent(700 << 10); // collects after the 3rd and the 6th
  assert.deepEqual(calls, [{ type: 'minor' }, { type: 'minor' }]);
  young.sent(1 << 20); // 1.7 MiB since the last
  assert.equal(calls.length, 2);
  young.sent(400 << 10);
  assert.equal(calls.length, 3);
});

test('without a gc function it only counts', () => {
  const young = new YoungGc(1, null);
  young.sent(10);
});

test("V8's gc is reachable at run time, and a minor collection frees dead young packet buffers", async () => {
  const gc = v8Gc();
  assert.equal(typeof gc, 'function', 'v8Gc() could not expose gc');
  const before = process.memoryUsage().arrayBuffers;
  // 32 MiB in 32 KiB buffers, the size of ssh2's packets; dead at once
  let packets: Buffer[] = [];
  for (let i = 0; i < 1024; i++) packets.push(Buffer.allocUnsafe(32 << 10).fill(i));
  assert.ok(process.memoryUsage().arrayBuffers >= before + (30 << 20));
  packets = [];
  gc!({ type: 'minor' });
  // V8 sweeps array buffers on a background task after the collection: wait for it to finish.
  let now = process.memoryUsage().arrayBuffers;
  for (let i = 0; i < 500 && now > before + (8 << 20); i++) {
    await new Promise((r) => setTimeout(r, 10));
    now = process.memoryUsage().arrayBuffers;
  }
  assert.ok(now <= before + (8 << 20), `array buffers still ${now} bytes after the collection (${before} before)`);
  assert.equal(packets.length, 0);
});
