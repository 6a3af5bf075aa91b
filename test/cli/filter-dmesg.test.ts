// `lastword filter --dump-dmesg VMCORE FILE` (makedumpfile's option) writes the kernel log of a
// real 6.1 vmcore: the same lines as Debian's makedumpfile --dump-dmesg, plus the caller column
// that makedumpfile >= 1.7.5 prints and bookworm's 1.7.2 does not.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labVmcore, repo } from '../support/lab.ts';
import { tempDir } from '../dumpfile/support.ts';

test('--dump-dmesg writes the log makedumpfile --dump-dmesg writes, LAB-MARKER and panic included', (t) => {
  const vmcore = labVmcore();
  const dir = tempDir(t);
  const ours = path.join(dir, 'ours'), ref = path.join(dir, 'ref');
  const r = spawnSync(process.execPath, [path.join(repo, 'runtime', 'main.ts'), 'filter', '--dump-dmesg', vmcore, ours], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  execFileSync('makedumpfile', ['--dump-dmesg', vmcore, ref], { stdio: 'ignore' });
  const got = fs.readFileSync(ours, 'latin1');
  const want = fs.readFileSync(ref, 'latin1');
  // Without the caller column; continuation lines are indented by the prefix width, so compare
  // their text only.
  const norm = (s: string) => s.replace(/^(\[[ \d.]+\]) \[ *[TC]\d+\] /gm, '$1 ').replace(/^ +/gm, '  ');
  assert.equal(norm(got), norm(want));
  assert.match(got, /LAB-MARKER/);
  assert.match(got, /Kernel panic - not syncing/);
});
