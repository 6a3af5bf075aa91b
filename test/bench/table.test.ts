// The bench's arithmetic on fixed inputs: medians, MB/s over the vmcore size, ratios to the
// reference tool, CPU seconds, and the goal verdicts the README quotes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatCase, formatGoals, median, summarizeCase, type ToolRuns } from '../support/bench-table.ts';

const run = (wallS: number, maxRssKib: number, outBytes: number) => ({ wallS, maxRssKib, outBytes });

test('median of an odd count is the middle value, of an even count the mean of the two middle ones', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
});

test('throughput is vmcore MB per median second, and every figure is a ratio to the reference', () => {
  const mdf: ToolRuns = { tool: 'makedumpfile', runs: [run(2.0, 36_000, 100), run(4.0, 36_000, 100), run(3.0, 36_000, 100)] };
  const lw: ToolRuns = { tool: 'lastword', runs: [run(1.0, 54_000, 90), run(1.5, 54_000, 90), run(9.0, 54_000, 90)] };
  const [ref, other] = summarizeCase(6e9, mdf, [lw]);
  assert.equal(ref!.wallS, 3.0);
  assert.equal(ref!.mbps, 2000);
  assert.equal(ref!.mbpsRatio, undefined);
  assert.equal(other!.wallS, 1.5);
  assert.equal(other!.mbps, 4000);
  assert.equal(other!.mbpsRatio, 2);
  assert.equal(other!.outRatio, 0.9);
  assert.equal(other!.rssRatio, 1.5);
});

test('a case without the reference tool has no ratios, and a failed tool shows its error instead of figures', () => {
  const rows = summarizeCase(1e9, undefined, [{ tool: 'lastword', runs: [run(1, 1024, 10)] }]);
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!.mbpsRatio, undefined);
  const failed = summarizeCase(1e9, { tool: 'makedumpfile', runs: [run(1, 1024, 10)] }, [{ tool: 'lastword', runs: [], error: 'exit 1: ENOTIMPL | x' }]);
  assert.equal(failed[1]!.mbpsRatio, undefined);
  const table = formatCase('t', failed);
  assert.match(table, /\| lastword \| 0 \| failed: exit 1: ENOTIMPL \/ x \|/);
  assert.match(table, /\| makedumpfile \| 1 \| 1\.00 \| 1000 \| {2}\| 10 \| {2}\| 1\.0 \| {2}\|/);
});

test('CPU seconds are the median of user + system time, shown in the last column', () => {
  const lw: ToolRuns = { tool: 'lastword', runs: [{ ...run(1, 1024, 10), cpuS: 0.5 }, { ...run(1, 1024, 10), cpuS: 2.5 }, { ...run(1, 1024, 10), cpuS: 0.7 }] };
  const [row] = summarizeCase(1e9, undefined, [lw]);
  assert.equal(row!.cpuS, 0.7);
  assert.match(formatCase('t', [row!]), /\| 1\.0 \| {2}\| 0\.70 \|$/m);
  const [unknown] = summarizeCase(1e9, undefined, [{ tool: 'x', runs: [run(1, 1024, 10)] }]);
  assert.ok(Number.isNaN(unknown!.cpuS), 'no CPU figure when a run lacks one');
});

test('goals are met at the limit, not met past it, and unmeasured goals say so', () => {
  const text = formatGoals([
    { name: 'speed', value: 1.0, limit: 1.0, atMost: false },
    { name: 'slow', value: 0.99, limit: 1.0, atMost: false },
    { name: 'rss', value: 1.51, limit: 1.5, atMost: true },
    { name: 'bytes', value: 1.0, limit: 1.0, atMost: true },
    { name: 'ssh', value: undefined, limit: 0.9, atMost: false },
  ]).split('\n');
  assert.match(text[2]!, /speed .* \| 1\.00x \| met \|/);
  assert.match(text[3]!, /slow .* \| 0\.99x \| NOT met \|/);
  assert.match(text[4]!, /rss .* \| 1\.51x \| NOT met \|/);
  assert.match(text[5]!, /bytes .* \| 1\.00x \| met \|/);
  assert.match(text[6]!, /ssh .* \| – \| not measured \|/);
});

test('a tool name with a pipe does not split its table row, and a goal shows the detail behind a rounded ratio', () => {
  const table = formatCase('t', summarizeCase(1e9, { tool: "cat | ssh 'cat > f'", runs: [run(1, 1024, 10)] }, []));
  assert.match(table, /\| cat \\\| ssh 'cat > f' \| 1 \|/);
  const goals = formatGoals([{ name: 'bytes', value: 1.0000017, limit: 1.0, atMost: true, detail: '+6,828 bytes' }]);
  assert.match(goals, /\| 1\.00x \(\+6,828 bytes\) \| NOT met \|/);
});
