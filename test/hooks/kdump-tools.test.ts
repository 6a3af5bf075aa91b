// hooks/kdump-tools/makedumpfile, the makedumpfile kdump-config runs, with lastword as its
// fallback: the real makedumpfile when it works, `lastword filter` with the same arguments when it
// fails or is missing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { kernelVersion, labVmcore, repo } from '../support/lab.ts';
import { lastwordCommand } from './support.ts';

const shim = path.join(repo, 'hooks', 'kdump-tools', 'makedumpfile');
const skip = !kernelVersion('6.1') ? 'no Debian 6.1 kernel (bash .ci/setup)' : false;
let tmp = '';
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-kdump-tools-test-')); });
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

const signature = (f: string) => fs.readFileSync(f).subarray(0, 8).toString('latin1');

test('when makedumpfile fails, the same command line runs with lastword filter and the dump is written', { skip }, () => {
  const vmcore = labVmcore();
  // a makedumpfile that fails after leaving part of its output, as a crash half-way would
  const failing = path.join(tmp, 'makedumpfile.distrib');
  fs.writeFileSync(failing, '#!/bin/sh\neval "last=\\${$#}"\necho partial > "$last"\nexit 1\n', { mode: 0o755 });
  const out = path.join(tmp, 'dump-incomplete');
  const r = spawnSync(shim, ['-c', '-d', '31', vmcore, out], {
    encoding: 'utf8', env: { ...process.env, LASTWORD_MAKEDUMPFILE: failing, LASTWORD: lastwordCommand(tmp) },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /makedumpfile\.distrib exited 1; lastword filter takes over/);
  assert.equal(signature(out), 'KDUMP   ');
});

test('when makedumpfile works, its own output stands and lastword is not run', { skip }, () => {
  const real = spawnSync('sh', ['-c', 'command -v makedumpfile'], { encoding: 'utf8' }).stdout.trim();
  if (!real) return;
  const out = path.join(tmp, 'by-makedumpfile');
  const r = spawnSync(shim, ['-c', '-d', '31', labVmcore(), out], {
    encoding: 'utf8', env: { ...process.env, LASTWORD_MAKEDUMPFILE: real, LASTWORD: '/nonexistent/lastword' },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /lastword filter takes over/);
  assert.equal(signature(out), 'KDUMP   ');
});
