// ssh2 runs its native ciphers (sshcrypto.node, built from ssh2's source by build:native) both in
// a checkout and in the single executable, where the addon is a SEA asset; without it ssh2 falls
// back to JavaScript that costs about twice OpenSSH's CPU.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildExecutable } from '../../initramfs/executable/build.ts';
import { repo } from '../support/lab.ts';
import { tempDir } from '../dumpfile/support.ts';

const NATIVE = /^ssh2 ciphers: native \(sshcrypto\.node, OpenSSL\)$/m;
const withoutNativeDir = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'LASTWORD_NATIVE_DIR'));

test('in a checkout ssh2 picks build/native/sshcrypto.node, and reports the fallback when it is absent', (t) => {
  const main = path.join(repo, 'runtime', 'main.ts');
  const a = spawnSync(process.execPath, [main, '--version', '--verbose'], { encoding: 'utf8', env: withoutNativeDir() });
  assert.equal(a.status, 0, a.stderr);
  assert.match(a.stdout, NATIVE);
  // an addon directory without sshcrypto.node: ssh2's own try/catch falls back to JavaScript
  const empty = tempDir(t);
  const b = spawnSync(process.execPath, [main, '--version', '--verbose'], { encoding: 'utf8', env: { ...withoutNativeDir(), LASTWORD_NATIVE_DIR: empty } });
  assert.equal(b.status, 0, b.stderr);
  assert.match(b.stdout, /^ssh2 ciphers: JavaScript fallback/m);
});

test('the built executable carries sshcrypto.node and ssh2 inside it uses it', async (t) => {
  const dir = tempDir(t);
  const exe = await buildExecutable({ out: path.join(dir, 'lastword') });
  // run from an empty directory, no checkout paths: the addon must come out of the executable
  const r = spawnSync(exe, ['--version', '--verbose'], { encoding: 'utf8', env: withoutNativeDir(), cwd: dir });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, NATIVE);
});

test('without sshcrypto.node the SSH target says so in its log (the line the E2E test looks for)', (t) => {
  const script = `
    const { openSshTarget } = await import(${JSON.stringify(path.join(repo, 'runtime', 'targets', 'ssh.ts'))});
    const log = (l) => console.log(l);
    const target = { kind: 'ssh', user: 'root', host: '127.0.0.1', port: 1, key: '/nonexistent', knownHosts: '/nonexistent', transport: 'sftp', source: { file: 'test' } };
    await openSshTarget(target, { log }).catch((err) => console.log('refused:', err.message));`;
  const run = (env: NodeJS.ProcessEnv) => spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env });
  const a = run({ ...withoutNativeDir(), LASTWORD_NATIVE_DIR: tempDir(t) });
  assert.equal(a.status, 0, a.stderr);
  assert.match(a.stdout, /ssh2 runs its JavaScript ciphers \(sshcrypto\.node not loaded\)/);
  assert.match(a.stdout, /refused: ssh key \/nonexistent cannot be read/);
  const b = run(withoutNativeDir());
  assert.equal(b.status, 0, b.stderr);
  assert.doesNotMatch(b.stdout, /JavaScript ciphers/);
  assert.match(b.stdout, /refused: ssh key \/nonexistent cannot be read/);
});
