// The crash-first order's pfn sets (runtime/filter/pfn-lists.ts): the bounds that keep it small on
// a large machine must not cost it the pages it exists for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PfnList, PfnRanges, ShortRuns, forEachRun, without } from '../../runtime/filter/pfn-lists.ts';

test('a bounded pfn list keeps the first pfns up to its bound, sorted and each once', () => {
  const list = new PfnList(5);
  for (const p of [9, 3, 3, 7, 1, 2, 0]) list.push(p);
  assert.deepEqual(Array.from(list.sorted()), [1, 3, 7, 9]);
  list.push(2 ** 32);      // past 16 TiB: not taken
  assert.equal(list.length, 5);
});

test('short runs: a run longer than the limit is dropped when it ends and leaves room for what comes after', () => {
  // A large machine: 70 Ki pages of hash tables and the swiotlb buffer below a per-CPU area.
  const runs = new ShortRuns(1 << 16, 1024);
  for (let p = 1000; p < 1000 + 70_000; p++) runs.push(p);
  for (let p = 100_000; p < 100_000 + 600; p++) runs.push(p);      // the per-CPU area
  runs.push(200_000);
  for (let p = 300_000; p < 300_000 + 1025; p++) runs.push(p);      // one over the limit: dropped too
  const got = runs.sorted();
  assert.equal(got.length, 601);
  assert.equal(got[0], 100_000);
  assert.equal(got[599], 100_599);
  assert.equal(got[600], 200_000);
  // A run of exactly the limit stays.
  const exact = new ShortRuns(1 << 16, 4);
  for (const p of [1, 2, 3, 4, 10, 11, 12, 13, 14]) exact.push(p);
  assert.deepEqual(Array.from(exact.sorted()), [1, 2, 3, 4]);
});

test('pfn ranges merge, answer membership, and jump over a range or to the next one', () => {
  const r = new PfnRanges([[50, 60], [10, 20], [20, 25], [40, 45]]);
  for (const [p, inside] of [[9, false], [10, true], [24, true], [25, false], [44, true], [45, false], [59, true], [60, false]] as const) {
    assert.equal(r.has(p), inside, `pfn ${p}`);
  }
  assert.equal(r.skip(12), 25);      // [10, 20) and [20, 25) are one range
  assert.equal(r.skip(30), 30);
  assert.equal(r.nextStart(30), 40);
  assert.equal(r.nextStart(61), Infinity);
});

test('runs of consecutive pfns, top down on request; the pfns of one list not in another', () => {
  const seen: [number, number][] = [];
  forEachRun(Uint32Array.from([1, 2, 3, 7, 9, 10]), (first, n) => seen.push([first, n]), true);
  assert.deepEqual(seen, [[9, 2], [7, 1], [1, 3]]);
  assert.deepEqual(Array.from(without(Uint32Array.from([1, 2, 3, 7, 9]), Uint32Array.from([2, 7, 8]))), [1, 3, 9]);
});
