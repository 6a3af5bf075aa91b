// The stall guard around every dump sink: a target that stops taking bytes fails the dump with
// ETARGET_STALLED after the time limit instead of holding the capture (and the machine) forever;
// a slow target that keeps taking bytes is left alone. Timers run 1000x faster here.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LastwordError } from '../../runtime/errors.ts';
import type { PositionalSink, StreamSink } from '../../runtime/targets/sink.ts';
import { stallGuard, stallGuardTarget, type Timers } from '../../runtime/targets/stall.ts';

const fast: Timers = { setTimeout: (fn, ms) => setTimeout(fn, ms / 1000), clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout) };
const never = () => new Promise<void>(() => {});
const after = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const isStall = (err: unknown) => err instanceof LastwordError && err.code === 'ETARGET_STALLED' && /ssh root@h accepted nothing for 300 s/.test(err.message);

test('a write the target never takes fails with ETARGET_STALLED after the limit; later writes fail at once; abort does not wait for a dead target', async () => {
  let aborts = 0;
  const inner: PositionalSink = { kind: 'positional', pwrite: never, close: never, abort: () => { aborts++; return never(); } };
  const sink = stallGuard(inner, 300_000, 'ssh root@h', fast);
  assert.equal(sink.kind, 'positional');
  const t0 = Date.now();
  await assert.rejects((sink as PositionalSink).pwrite(Buffer.alloc(8), 0), isStall);
  assert.ok(Date.now() - t0 >= 250, 'gave up before the limit');
  await assert.rejects((sink as PositionalSink).pwrite(Buffer.alloc(8), 8), isStall);
  const a0 = Date.now();
  await sink.abort();   // STALLED_CLEANUP_MS (10 s) on this clock: 10 ms
  assert.equal(aborts, 1);
  assert.ok(Date.now() - a0 < 250, 'abort waited as long as a write');
});

test('a slow target that keeps taking bytes, and a close that takes its time, are left alone; 0 means no limit', async () => {
  const taken: number[] = [];
  const inner: StreamSink = {
    kind: 'stream',
    write: async (b) => { await after(100); taken.push(b.length); },   // 100 s each on this clock, under 300 s
    close: () => after(150),
    abort: async () => undefined,
  };
  const sink = stallGuard(inner, 300_000, 'ssh root@h', fast) as StreamSink;
  for (let i = 0; i < 3; i++) await sink.write(Buffer.alloc(10 + i));
  await sink.close();
  assert.deepEqual(taken, [10, 11, 12]);
  assert.equal(stallGuard(inner, 0, 'x', fast), inner);
});

test('a close that never ends (a stuck flush) fails with ETARGET_STALLED too', async () => {
  const inner: StreamSink = { kind: 'stream', write: async () => undefined, close: never, abort: async () => undefined };
  const sink = stallGuard(inner, 300_000, 'ssh root@h', fast) as StreamSink;
  await sink.write(Buffer.alloc(1));
  await assert.rejects(sink.close(), isStall);
});

test('the target itself: a request it never answers (mkdir on a silent server) stalls it; later requests fail at once, close does not hang', async () => {
  const calls: string[] = [];
  const hang = (what: string) => () => { calls.push(what); return never(); };
  const target = stallGuardTarget({
    description: 'ssh root@h', hasFiles: true, streamOnly: false, network: true,
    mkdirs: hang('mkdirs'), openDump: hang('openDump') as never, writeFile: hang('writeFile'), rename: hang('rename'),
    list: hang('list') as never, removeDump: hang('removeDump'), close: hang('close'),
  }, 300_000, fast);
  await assert.rejects(target.mkdirs('/var/crash/x'), isStall);
  await assert.rejects(target.writeFile('/var/crash/x', 'log', 'text'), isStall);
  await assert.rejects(target.openDump('/var/crash/x', 'vmcore-incomplete', 'positional'), isStall);
  const c0 = Date.now();
  await target.close();
  assert.ok(Date.now() - c0 < 250, 'close waited as long as a request');
  // nothing but the stalled request and the close reached the target
  assert.deepEqual(calls, ['mkdirs', 'close']);
});

test('a sink opened from a guarded target shares its limit: a stalled dump write stalls the target, so the run log is not sent after it', async () => {
  const sentFiles: string[] = [];
  const target = stallGuardTarget({
    description: 'ssh root@h', hasFiles: true, streamOnly: false, network: true,
    mkdirs: async () => undefined, rename: async () => undefined, list: async () => [], removeDump: async () => undefined, close: async () => undefined,
    writeFile: async (_d, name) => { sentFiles.push(name); },
    openDump: async () => ({ kind: 'positional', pwrite: never, close: async () => undefined, abort: async () => undefined }),
  }, 300_000, fast);
  await target.writeFile('/d', 'dmesg', 'x');
  const sink = await target.openDump('/d', 'vmcore-incomplete', 'positional') as PositionalSink;
  await assert.rejects(sink.pwrite(Buffer.alloc(8), 0), isStall);
  await assert.rejects(target.writeFile('/d', 'kexec-dmesg.log', 'x'), isStall);
  assert.deepEqual(sentFiles, ['dmesg']);
});
