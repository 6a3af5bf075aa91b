// PID 1's logic through a recording System: mounts, console, supervision of the capture child,
// the outcome file, failure actions from the kernel command line, the rescue shell loop, and a
// reboot(2) that fails. The real syscalls are tested in test/system and as PID 1 in QEMU
// (test/e2e/pid1.ci.test.ts).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { runInit, type InitPhase } from '../../runtime/pid1/init.ts';
import { cmdlineFailureAction, cmdlineFlag, parseOutcome } from '../../runtime/pid1/outcome.ts';
import { fakeSystem, ok, type FakeSystem } from '../support/fake-system.ts';

let root = '';
let sys: FakeSystem;
const capture = { file: '/lastword', args: ['save', '--capture'] };
const eperm = (): Error => Object.assign(new Error('EPERM: Operation not permitted, reboot'), { code: 'EPERM', errno: -1, syscall: 'reboot' });

function setCmdline(text: string): void {
  fs.mkdirSync(path.join(root, 'proc'), { recursive: true });
  fs.writeFileSync(path.join(root, 'proc/cmdline'), text + '\n');
}
function writeOutcome(v: unknown): void {
  fs.mkdirSync(path.join(root, 'run/lastword'), { recursive: true });
  fs.writeFileSync(path.join(root, 'run/lastword/outcome.json'), typeof v === 'string' ? v : JSON.stringify(v));
}
/** The capture child's part: optionally write an outcome, then end like `result`. */
function captureDoes(outcome: unknown, result = ok()): void {
  sys.onExec = (file) => {
    if (file === capture.file && outcome !== undefined) writeOutcome(outcome);
    return result;
  };
}

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-pid1-'));
  fs.mkdirSync(path.join(root, 'dev'));
  fs.writeFileSync(path.join(root, 'dev/console'), '');
  setCmdline('console=ttyS0 panic=-1');
  sys = fakeSystem();
});
afterEach(() => { fs.rmSync(root, { recursive: true, force: true }); });

describe('PID 1', () => {
  it('mounts proc, sysfs, devtmpfs, /run and /tmp, then puts the console on fds 0-2', async () => {
    captureDoes({ ok: true, action: 'reboot', reason: 'saved' });
    const r = await runInit(sys, { root, capture });
    assert.deepEqual(sys.only('mount').map((m) => [m.fstype, path.relative(root, m.target)]),
      [['proc', 'proc'], ['sysfs', 'sys'], ['devtmpfs', 'dev'], ['tmpfs', 'run'], ['tmpfs', 'tmp']]);
    assert.deepEqual(r.mounted, ['/proc', '/sys', '/dev', '/run', '/tmp']);
    assert.deepEqual(sys.only('dup2').map((d) => d.to), [0, 1, 2]);
    const firstExec = sys.calls.findIndex((c) => c.call === 'exec');
    assert.ok(sys.calls.findIndex((c) => c.call === 'dup2') < firstExec, 'the console is taken before the capture starts');
  });

  it('runs the capture as a child on the console and takes the action of its outcome, after sync', async () => {
    captureDoes({ ok: true, action: 'poweroff', reason: 'vmcore saved to /var/crash' });
    const r = await runInit(sys, { root, capture });
    assert.deepEqual(sys.only('exec'), [{ call: 'exec', file: '/lastword', args: ['save', '--capture'], opts: { inherit: true } }]);
    assert.deepEqual(r, { mounted: r.mounted, action: 'poweroff', reason: 'vmcore saved to /var/crash' });
    assert.deepEqual(sys.calls.slice(-2), [{ call: 'sync' }, { call: 'reboot', cmd: 'power-off' }]);
  });

  describe('the capture in PID 1 itself when memory is short (one Node runtime instead of two)', () => {
    const meminfo = (kib: number) => {
      fs.mkdirSync(path.join(root, 'proc'), { recursive: true });
      fs.writeFileSync(path.join(root, 'proc/meminfo'), `MemTotal:       ${kib} kB\nMemFree:        ${kib >> 1} kB\n`);
    };
    const here = (outcome?: unknown, fail?: Error) => {
      let calls = 0;
      const captureHere = async () => {
        calls++;
        if (outcome !== undefined) writeOutcome(outcome);
        if (fail) throw fail;
      };
      return { captureHere, calls: () => calls };
    };

    it('below 112 MB of MemTotal: no child, the outcome of the capture run here is taken', async () => {
      meminfo(70_000);
      const h = here({ ok: true, action: 'poweroff', reason: 'vmcore saved' });
      const r = await runInit(sys, { root, capture, captureHere: h.captureHere });
      assert.equal(h.calls(), 1);
      assert.deepEqual(sys.only('exec'), []);
      assert.equal(r.action, 'poweroff');
      assert.ok(sys.logs.some((l) => /capture in PID 1 \(MemTotal 68 MB < 112 MB, no room for a second Node process; lastword\.capture_in_pid1=0 keeps it in a child\)/.test(l)), sys.logs.join('\n'));
      assert.ok(sys.logs.some((l) => /capture succeeded \(in PID 1\): vmcore saved/.test(l)), sys.logs.join('\n'));
    });

    it('from 112 MB on, and with lastword.capture_in_pid1=0, the capture is a child', async () => {
      meminfo(114_688);
      captureDoes({ ok: true, action: 'reboot', reason: 'saved' });
      const h = here();
      await runInit(sys, { root, capture, captureHere: h.captureHere });
      assert.equal(h.calls(), 0);
      assert.equal(sys.only('exec').length, 1);
      meminfo(70_000);
      setCmdline('console=ttyS0 lastword.capture_in_pid1=0');
      sys = fakeSystem();
      captureDoes({ ok: true, action: 'reboot', reason: 'saved' });
      await runInit(sys, { root, capture, captureHere: h.captureHere });
      assert.equal(h.calls(), 0);
      assert.equal(sys.only('exec').length, 1);
    });

    it('an exception nothing caught ends a capture in PID 1 (as it would end a child) instead of PID 1 waiting on it', async () => {
      meminfo(70_000);
      setCmdline('console=ttyS0 lastword.failure_action=poweroff');
      const phase: InitPhase = { current: 'capture' };
      const captureHere = () => {
        // the guard's onStray, as an exception thrown from some callback of the capture reaches it
        setImmediate(() => phase.abortCapture?.(new Error('stray callback error')));
        return new Promise<void>(() => { /* never settles */ });
      };
      const r = await runInit(sys, { root, capture, captureHere }, phase);
      assert.equal(r.action, 'poweroff');
      assert.match(r.reason, /capture ended \(in PID 1, which caught .*stray callback error\) without an outcome/);
      assert.equal(phase.abortCapture, undefined);
      assert.equal(phase.current, 'final');
    });

    it('lastword.capture_in_pid1=1 runs it here whatever the memory; a capture that throws ends in the failure action, PID 1 stays', async () => {
      meminfo(4_000_000);
      setCmdline('console=ttyS0 lastword.capture_in_pid1=1 lastword.failure_action=halt');
      const h = here(undefined, new Error('a bug in the capture'));
      const r = await runInit(sys, { root, capture, captureHere: h.captureHere });
      assert.equal(h.calls(), 1);
      assert.deepEqual(sys.only('exec'), []);
      assert.equal(r.action, 'halt');
      assert.match(r.reason, /capture ended \(in PID 1, which caught .*a bug in the capture\) without an outcome/);
      assert.deepEqual(sys.only('reboot'), [{ call: 'reboot', cmd: 'halt' }]);
    });
  });

  it('takes the failure action of the outcome when the capture failed', async () => {
    captureDoes({ ok: false, action: 'halt', reason: 'ETARGET_FULL: /var/crash is full' }, { ...ok(), exitCode: 1 });
    const r = await runInit(sys, { root, capture });
    assert.equal(r.action, 'halt');
    assert.deepEqual(sys.only('reboot'), [{ call: 'reboot', cmd: 'halt' }]);
    assert.ok(sys.logs.some((l) => /capture failed \(exit status 1\): ETARGET_FULL/.test(l)), sys.logs.join('\n'));
  });

  it('reboots when the capture dies without an outcome and the command line names no failure action', async () => {
    captureDoes(undefined, { exitCode: -1, signal: 'SIGKILL', stdout: '', stderr: '', timedOut: false });
    const r = await runInit(sys, { root, capture });
    assert.equal(r.action, 'reboot');
    assert.match(r.reason, /killed by SIGKILL.*without an outcome/);
    assert.deepEqual(sys.only('reboot'), [{ call: 'reboot', cmd: 'restart' }]);
  });

  it('takes lastword.failure_action= from the command line when the capture leaves no usable outcome', async () => {
    setCmdline('console=ttyS0 lastword.failure_action=poweroff');
    captureDoes('{"ok": tru');
    const r = await runInit(sys, { root, capture });
    assert.equal(r.action, 'poweroff');
    assert.match(r.reason, /unreadable .*outcome.json: not JSON/);
    assert.deepEqual(sys.only('reboot'), [{ call: 'reboot', cmd: 'power-off' }]);
  });

  it("takes kdump.conf's failure_action when the capture dies without an outcome", async () => {
    fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(root, 'etc/kdump.conf'), 'path /var/crash\nfailure_action poweroff\n');
    captureDoes(undefined, { exitCode: -1, signal: 'SIGKILL', stdout: '', stderr: '', timedOut: false });
    const r = await runInit(sys, { root, capture });
    assert.equal(r.action, 'poweroff');
    assert.deepEqual(sys.only('reboot'), [{ call: 'reboot', cmd: 'power-off' }]);
  });

  it('the command line overrides kdump.conf for that failure action, and a broken config falls back to it', async () => {
    fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(root, 'etc/kdump.conf'), 'failure_action poweroff\n');
    setCmdline('lastword.failure_action=halt');
    captureDoes(undefined, { ...ok(), exitCode: 1 });
    assert.equal((await runInit(sys, { root, capture })).action, 'halt');
    fs.writeFileSync(path.join(root, 'etc/kdump.conf'), 'ssh a@b\nnfs c:/d\nfailure_action poweroff\n');
    sys = fakeSystem();
    captureDoes(undefined, { ...ok(), exitCode: 1 });
    assert.equal((await runInit(sys, { root, capture })).action, 'halt');
    assert.ok(sys.logs.some((l) => /cannot read the kdump config.*failure action from the command line/.test(l)), sys.logs.join('\n'));
  });

  it('ignores an outcome left over from before the capture', async () => {
    writeOutcome({ ok: true, action: 'poweroff', reason: 'stale' });
    captureDoes(undefined, { ...ok(), exitCode: 1 });
    const r = await runInit(sys, { root, capture });
    assert.equal(r.action, 'reboot');
  });

  it('takes the failure action when the capture cannot even start', async () => {
    setCmdline('lastword.failure_action=halt');
    sys.onExec = () => { throw Object.assign(new Error('cannot run /lastword: ENOENT'), { code: 'EEXEC' }); };
    const r = await runInit(sys, { root, capture });
    assert.equal(r.action, 'halt');
    assert.match(r.reason, /did not start: EEXEC/);
  });

  it('stays up, logging, when reboot(2) fails', async () => {
    captureDoes({ ok: true, action: 'reboot', reason: '' });
    sys.failures.reboot = eperm();
    const r = await runInit(sys, { root, capture });
    assert.equal(r.action, 'reboot');
    assert.ok(sys.logs.some((l) => /reboot failed: EPERM.*staying up/.test(l)), sys.logs.join('\n'));
  });

  it('takes an action requested during the capture (busybox reboot/poweroff) once the capture ends', async () => {
    const phase = { current: 'capture' as const, requested: 'poweroff' as const };
    captureDoes({ ok: true, action: 'reboot', reason: '' });
    const r = await runInit(sys, { root, capture }, phase);
    assert.equal(r.action, 'poweroff');
    assert.deepEqual(sys.only('reboot'), [{ call: 'reboot', cmd: 'power-off' }]);
  });

  it('selftest: reports memory and powers off without running a capture', async () => {
    setCmdline('console=ttyS0 lastword.selftest=1');
    const r = await runInit(sys, { root, capture });
    assert.equal(r.action, 'poweroff');
    assert.deepEqual(sys.only('exec'), []);
    assert.deepEqual(sys.only('reboot'), [{ call: 'reboot', cmd: 'power-off' }]);
    assert.ok(sys.logs.some((l) => /^lastword selftest: ok/.test(l)));
  });

  describe('rescue shell', () => {
    beforeEach(() => {
      fs.mkdirSync(path.join(root, 'bin'));
      fs.writeFileSync(path.join(root, 'bin/busybox'), '');
    });

    it('starts busybox sh with the console as controlling terminal (setsid cttyhack), again after each exit', async () => {
      captureDoes({ ok: false, action: 'shell', reason: 'NFS server unreachable' });
      const r = await runInit(sys, { root, capture, maxShellRuns: 3 });
      const shells = sys.only('exec').slice(1);
      assert.equal(shells.length, 3);
      assert.deepEqual(shells[0], { call: 'exec', file: '/bin/busybox', args: ['setsid', '/bin/busybox', 'cttyhack', '/bin/busybox', 'sh', '-l'], opts: { inherit: true } });
      assert.equal(r.action, 'reboot');
    });

    it('ends with the action of a successful retry made from the shell', async () => {
      captureDoes({ ok: false, action: 'shell', reason: 'disk missing' });
      let runs = 0;
      const capturePart = sys.onExec;
      sys.onExec = (file, args, o) => {
        if (file !== '/bin/busybox') return capturePart(file, args, o);
        // first shell: the admin gives up; second shell: retries with success
        if (++runs === 2) writeOutcome({ ok: true, action: 'poweroff', reason: 'saved on retry' });
        return ok();
      };
      const r = await runInit(sys, { root, capture, maxShellRuns: 5 });
      assert.equal(runs, 2);
      assert.equal(r.action, 'poweroff');
      assert.deepEqual(sys.only('reboot'), [{ call: 'reboot', cmd: 'power-off' }]);
    });

    it('falls back to the failure action when the initramfs has no shell', async () => {
      fs.rmSync(path.join(root, 'bin/busybox'));
      setCmdline('lastword.failure_action=halt');
      captureDoes({ ok: false, action: 'shell', reason: 'x' });
      const r = await runInit(sys, { root, capture, maxShellRuns: 3 });
      assert.equal(r.action, 'halt');
      assert.ok(sys.logs.some((l) => /no shell in this initramfs; halt instead/.test(l)));
    });
  });
});

describe('outcome and command line', () => {
  it('accepts only the outcome shape the capture writes', () => {
    assert.deepEqual(parseOutcome('{"ok":true,"action":"reboot","reason":"r"}'), { ok: true, action: 'reboot', reason: 'r' });
    assert.match((parseOutcome('{"ok":1,"action":"reboot"}') as { invalid: string }).invalid, /'ok'/);
    assert.match((parseOutcome('{"ok":true,"action":"dump_to_rootfs"}') as { invalid: string }).invalid, /'action'/);
    assert.match((parseOutcome('[]') as { invalid: string }).invalid, /'ok'/);
  });

  it('reads lastword.failure_action= and switches from the kernel command line', () => {
    assert.equal(cmdlineFailureAction('ro quiet'), 'reboot');
    assert.equal(cmdlineFailureAction('lastword.failure_action=shell'), 'shell');
    assert.equal(cmdlineFailureAction('lastword.failure_action=dump_to_rootfs'), 'reboot');
    assert.equal(cmdlineFlag('a lastword.selftest=1 b', 'selftest'), true);
    assert.equal(cmdlineFlag('lastword.selftest', 'selftest'), true);
    assert.equal(cmdlineFlag('lastword.selftest=0', 'selftest'), false);
  });
});
