// extractAddon: an embedded addon is written to the first writable directory, atomically, and a
// file there with the same bytes is used as it is (PID 1 and its capture child, repeated runs).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { extractAddon } from '../../runtime/system/native-loader.ts';

test('writes the addon once, reuses identical bytes, replaces different ones by rename', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-extract-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const unwritable = path.join(dir, 'file-not-dir');
  fs.writeFileSync(unwritable, '');
  const target = path.join(dir, 'run');
  const blob = Buffer.from('addon bytes v1');
  // the first directory cannot be made (a file is in the way): the next one is used
  const file = extractAddon('demo', blob, [path.join(unwritable, 'x'), target]);
  assert.equal(file, path.join(target, 'demo.node'));
  assert.ok(fs.readFileSync(file).equals(blob));
  assert.equal(fs.statSync(file).mode & 0o777, 0o500);
  // Each replaced file stays open, as a loaded library stays mapped: its inode cannot be reused,
  // so a new inode number means a new file.
  const held: number[] = [fs.openSync(file, 'r')];
  t.after(() => held.forEach((fd) => fs.closeSync(fd)));
  let ino = fs.statSync(file).ino;
  // same bytes: the same file, not rewritten
  assert.equal(extractAddon('demo', Buffer.from(blob), [target]), file);
  assert.equal(fs.statSync(file).ino, ino);
  // other bytes of the same length, then another length: a new file each time (write + rename),
  // and the old one keeps its bytes for whoever has it open
  for (const next of [Buffer.from('addon bytes v2'), Buffer.from('addon bytes, version three')]) {
    assert.equal(extractAddon('demo', next, [target]), file);
    assert.ok(fs.readFileSync(file).equals(next));
    assert.notEqual(fs.statSync(file).ino, ino);
    ino = fs.statSync(file).ino;
    held.push(fs.openSync(file, 'r'));
  }
  const old = Buffer.alloc(blob.length);
  fs.readSync(held[0]!, old, 0, old.length, 0);
  assert.ok(old.equals(blob));
  assert.deepEqual(fs.readdirSync(target), ['demo.node'], 'no temporary files left');
});
