// The real System, for real: each scenario runs in a child node process inside namespaces made
// with unshare (mount, UTS, PID), so the syscalls act without touching this machine.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { realSystem } from '../../runtime/system/real.ts';

const child = path.join(import.meta.dirname, 'syscall-child.ts');
let tmp = '';
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-system-')); });
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

function inNamespace(unshareArgs: string[], scenario: string, arg = ''): { json: any; status: number | null; signal: NodeJS.Signals | null; stderr: string } {
  const r = spawnSync('unshare', [...unshareArgs, '--', process.execPath, child, scenario, arg], { encoding: 'utf8', timeout: 60_000 });
  const line = r.stdout.trim().split('\n').filter(Boolean).pop();
  return { json: line ? JSON.parse(line) : undefined, status: r.status, signal: r.signal, stderr: r.stderr };
}

describe('real System', () => {
  it('mounts a tmpfs and unmounts it in a private mount namespace', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'mnt-'));
    const r = inNamespace(['-m', '--propagation', 'private'], 'mount', dir);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.json.line, / - tmpfs lw-test rw,.*size=1024k/);
    assert.equal(r.json.after, null);
    assert.equal(r.json.probeAfter, false, 'the file written on the tmpfs must vanish with it');
    assert.deepEqual(fs.readdirSync(dir), [], 'the mount never reached the host namespace');
  });

  it('throws Errors carrying the errno name, errno and syscall', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'err-'));
    const r = inNamespace(['-m', '--propagation', 'private'], 'errors', dir);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual({ ...r.json.badFstype, message: undefined, described: undefined }, { isError: true, code: 'ENODEV', errno: -19, syscall: 'mount', message: undefined, described: undefined });
    assert.match(r.json.badFstype.message, /^ENODEV: .*mount 'none on .* \(lw-no-such-fs\)'/);
    assert.equal(r.json.badFstype.described, r.json.badFstype.message, 'the one-line description says the errno name twice');
    assert.equal(r.json.notMounted.code, 'EINVAL');
    assert.equal(r.json.notMounted.syscall, 'umount2');
    assert.equal(r.json.finitJunk.syscall, 'finit_module');
    assert.match(r.json.finitJunk.code, /^E[A-Z]+$/);
    assert.equal(r.json.badReboot.isError, true);
    assert.match(r.json.badReboot.message, /RB_AUTOBOOT/);
  });

  it('sets the hostname inside its own UTS namespace only', () => {
    const before = os.hostname();
    const r = inNamespace(['-u'], 'hostname', 'lw-capture-test');
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.json, { hostname: 'lw-capture-test', uname: 'lw-capture-test' });
    assert.equal(os.hostname(), before);
  });

  it('makes a terminal the controlling terminal of a new session (setsid + TIOCSCTTY)', () => {
    const cmd = `setsid --wait ${process.execPath} ${child} ctty`;
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const line = r.stdout.split(/\r?\n/).find((l) => l.startsWith('{'));
    assert.ok(line, r.stdout);
    const seen = JSON.parse(line);
    assert.equal(seen.before, 0, 'setsid left the child without a controlling terminal');
    assert.equal(seen.after, seen.stdinRdev, 'the pty on fd 0 became the controlling terminal');
  });

  it('reaps orphans as PID 1 without taking the children libuv waits for', () => {
    const r = inNamespace(['-fp'], 'reap');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.json.pid1, 1);
    assert.equal(r.json.orphans.length, 2);
    assert.deepEqual(r.json.reaped, [...r.json.orphans].sort((a: number, b: number) => a - b));
    assert.equal(r.json.libuvExit, 7, 'the exec child kept its exit status');
  });

  for (const [cmd, signal] of [['restart', 'SIGHUP'], ['power-off', 'SIGINT'], ['halt', 'SIGINT']] as const) {
    it(`reboot(2) ${cmd} ends the PID namespace's init with ${signal}`, () => {
      const r = inNamespace(['-fp'], 'reboot', `${cmd},${fs.readlinkSync('/proc/self/ns/pid')}`);
      assert.equal(r.json, undefined, `reboot returned: ${JSON.stringify(r.json)} ${r.stderr}`);
      assert.equal(r.signal, signal, `unshare ended with status ${r.status} signal ${r.signal}: ${r.stderr}`);
    });
  }

  it('runs programs with input, captures output, and kills them at the timeout', async () => {
    const system = realSystem();
    const cat = await system.exec('cat', [], { input: 'last words\n' });
    assert.deepEqual(cat, { exitCode: 0, signal: undefined, stdout: 'last words\n', stderr: '', timedOut: false });
    const slow = await system.exec('sleep', ['30'], { timeoutMs: 100 });
    assert.equal(slow.timedOut, true);
    assert.equal(slow.signal, 'SIGTERM');
    const fail = await system.exec('sh', ['-c', 'echo oops >&2; exit 3']);
    assert.equal(fail.exitCode, 3);
    assert.equal(fail.stderr, 'oops\n');
    await assert.rejects(system.exec(path.join(tmp, 'no-such-program'), []), { code: 'EEXEC', message: /ENOENT/ });
  });
});
