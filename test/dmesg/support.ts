// Shared by the dmesg tests: byte comparison against makedumpfile --dump-dmesg output.
import assert from 'node:assert/strict';
import { extractDmesg } from '../../runtime/dmesg/index.ts';
import { openVmcore } from '../../runtime/vmcore/index.ts';

/** Where two outputs first differ, with 60 bytes of each from there. */
export function firstDifference(a: Buffer, b: Buffer): string {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return `byte ${i}: ours ${JSON.stringify(a.toString('latin1', i, i + 60))} theirs ${JSON.stringify(b.toString('latin1', i, i + 60))}`;
  }
  return `lengths ${a.length} vs ${b.length}`;
}

/** extractDmesg of the vmcore file equals `theirs` byte for byte; returns ours. */
export function assertDmesgEquals(file: string, theirs: Buffer, opts: { callerId?: boolean } = {}): Buffer {
  const v = openVmcore(file);
  try {
    const ours = extractDmesg(v, opts);
    assert.ok(ours.equals(theirs), firstDifference(ours, theirs));
    return ours;
  } finally {
    v.close();
  }
}
