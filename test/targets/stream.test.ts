// Stream targets through `lastword save`, run as a user would: Fedora's `raw` (a flattened stream
// straight onto a block device, here a loop device) and stdout; makedumpfile -R reassembles both.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import { labVmcore, repo } from '../support/lab.ts';
import { flaggedIncomplete, missingReference } from './dumps.ts';

const skip = missingReference();

function tempDir(t: TestContext): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-stream-'));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

function save(args: string[], stdout: number | 'pipe' = 'pipe') {
  return spawnSync(process.execPath, [path.join(repo, 'runtime/main.ts'), 'save', ...args], {
    encoding: 'utf8', stdio: ['ignore', stdout, 'pipe'], maxBuffer: 64 << 20, timeout: 240_000,
  });
}

function checkReassembled(flat: string, out: string): void {
  const r = spawnSync('sh', ['-c', `makedumpfile -R '${out}' < '${flat}'`], { encoding: 'utf8' });
  assert.equal(r.status, 0, `makedumpfile -R failed: ${r.stderr}`);
  assert.equal(fs.readFileSync(out).subarray(0, 8).toString('latin1'), 'KDUMP   ');
  assert.equal(flaggedIncomplete(out), false);
}

test('raw target: `lastword save` writes a flattened stream onto the block device, which makedumpfile -R reassembles', { skip, timeout: 300_000 }, (t) => {
  const dir = tempDir(t);
  const img = path.join(dir, 'raw.img');
  fs.writeFileSync(img, '');
  fs.truncateSync(img, 96 << 20);
  const dev = execFileSync('losetup', ['-f', '--show', img], { encoding: 'utf8' }).trim();
  t.after(() => { spawnSync('losetup', ['-d', dev]); });
  const conf = path.join(dir, 'kdump.conf');
  fs.writeFileSync(conf, `raw ${dev}\ncore_collector makedumpfile -l --message-level 7 -d 31\nfinal_action poweroff\n`);
  const r = save(['--config', conf, '--cmdline', '', labVmcore()]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`raw ${dev} \\(${dev}, flattened\\)`));
  assert.match(r.stderr, /dump saved[\s\S]*final action poweroff is left to you/);
  checkReassembled(dev, path.join(dir, 'reassembled'));
});

test('stdout target: `lastword save` with lastword.target=stdout writes the flattened dump to standard output, logs to stderr', { skip, timeout: 300_000 }, (t) => {
  const dir = tempDir(t);
  const flat = path.join(dir, 'dump.flat');
  const conf = path.join(dir, 'kdump.conf');
  fs.writeFileSync(conf, 'core_collector makedumpfile -l -d 31\n');
  const fd = fs.openSync(flat, 'w');
  const r = save(['--config', conf, '--cmdline', 'lastword.target=stdout', labVmcore()], fd);
  fs.closeSync(fd);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /standard output \(flattened\)/);
  assert.equal(fs.readFileSync(flat).subarray(0, 12).toString('latin1'), 'makedumpfile');
  checkReassembled(flat, path.join(dir, 'reassembled'));
});
