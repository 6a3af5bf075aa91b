// The executable's V8 options stop at the baseline compiler; enableMaglev() (called by the SSH
// targets) must really let V8 optimize with Maglev again. Checked in a child with the executable's
// options and V8's test intrinsics: a function V8 is told to Maglev-compile is Maglev code only after.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { SEA_EXEC_ARGV } from '../../initramfs/executable/build.ts';
import { repo } from '../support/lab.ts';

test('with the executable options Maglev is off, and enableMaglev() turns it on', () => {
  assert.ok(SEA_EXEC_ARGV.includes('--max-opt=1'), `executable options: ${SEA_EXEC_ARGV.join(' ')}`);
  const script = `
    import { enableMaglev } from ${JSON.stringify(path.join(repo, 'runtime', 'targets', 'jit-tier.ts'))};
    const MAGLEVVED = 32;   // V8's OptimizationStatus bit
    function maglevved() {
      const f = new Function('a', 'b', 'return a * b + 1');
      %PrepareFunctionForOptimization(f); f(1, 2); f(3, 4);
      %OptimizeMaglevOnNextCall(f); f(5, 6);
      return (%GetOptimizationStatus(f) & MAGLEVVED) !== 0;
    }
    const before = maglevved();
    enableMaglev();
    console.log(JSON.stringify({ before, after: maglevved() }));
  `;
  const r = spawnSync(process.execPath, [...SEA_EXEC_ARGV, '--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { before: false, after: true });
});
