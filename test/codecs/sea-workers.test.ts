// The single executable compresses on the addon's compression threads, extracted from the SEA
// asset, and its output equals the in-tree run's in the main thread.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildExecutable } from '../../initramfs/executable/build.ts';
import { labVmcore, repo } from '../support/lab.ts';
import { tempDir } from '../dumpfile/support.ts';

test('the built executable compresses with 2 compression threads, byte-identical to the in-tree single-thread run', async (t) => {
  const vmcore = labVmcore();
  const dir = tempDir(t);
  const exe = await buildExecutable({ out: path.join(dir, 'lastword') });
  const viaSea = path.join(dir, 'sea.dump'), inTree = path.join(dir, 'tree.dump');
  // No checkout paths for the executable: it must find its addon inside itself.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'LASTWORD_NATIVE_DIR'));
  const a = spawnSync(exe, ['filter', '-z', '-d', '31', '--num-threads', '2', vmcore, viaSea], { encoding: 'utf8', env, cwd: dir });
  assert.equal(a.status, 0, a.stderr);
  assert.match(a.stderr, /zstd, 2 compression threads/);
  const b = spawnSync(process.execPath, [path.join(repo, 'runtime', 'main.ts'), 'filter', '-z', '-d', '31', '--num-threads', '0', '--message-level', '0', vmcore, inTree], { encoding: 'utf8' });
  assert.equal(b.status, 0, b.stderr);
  assert.ok(fs.readFileSync(viaSea).equals(fs.readFileSync(inTree)), 'the executable wrote a different dump');
});
