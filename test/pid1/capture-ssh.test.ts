// The whole capture to a real OpenSSH sshd on 127.0.0.1: the real filter and writer send the lab
// vmcore; a connection cut mid-transfer leaves vmcore-incomplete on the server and the failure
// action; an unknown host key leaves nothing on the server and the failure action; a server that
// stops taking bytes fails the dump after the stall limit.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { defaultPlan } from '../../runtime/config/defaults.ts';
import type { Plan, SshTarget } from '../../runtime/config/plan.ts';
import { realStages } from '../../runtime/cli/save.ts';
import { capture, type CaptureStages } from '../../runtime/pid1/capture.ts';
import { realSystem } from '../../runtime/system/real.ts';
import type { DumpSink } from '../../runtime/targets/sink.ts';
import { labVmcore } from '../support/lab.ts';
import { missingReference } from '../targets/dumps.ts';
import { startLoopbackSshd, type LoopbackSshd } from '../targets/sshd.ts';

const skip = missingReference();
let sshd: LoopbackSshd;
before(async () => { if (!skip) sshd = await startLoopbackSshd(); });
after(() => sshd?.stop());

function sshPlan(dir: string, over: Partial<SshTarget> = {}): Plan {
  const p = defaultPlan('fedora');
  p.target = {
    kind: 'ssh', user: 'root', host: '127.0.0.1', port: sshd.port, key: sshd.clientKey, knownHosts: sshd.knownHosts,
    transport: 'sftp', source: { file: 'kdump.conf', line: 1 }, ...over,
  };
  p.path = dir;
  p.finalAction = 'poweroff';
  p.failureAction = 'shell';
  return p;
}

/** The real stages, with the sink wrapped so the test can act after `bytes` went through. */
function stagesCuttingAt(sys: ReturnType<typeof realSystem>, bytes: number, cut: () => void): CaptureStages {
  const real = realStages(sys, {});
  return {
    ...real,
    writeDump: (a) => {
      let sent = 0;
      const s = a.sink;
      const tick = (n: number) => { const before = sent; sent += n; if (before < bytes && sent >= bytes) cut(); };
      const sink: DumpSink = s.kind === 'positional'
        ? { kind: 'positional', pwrite: async (b, o) => { await s.pwrite(b, o); tick(b.length); }, close: () => s.close(), abort: () => s.abort() }
        : { kind: 'stream', write: async (b) => { await s.write(b); tick(b.length); }, close: () => s.close(), abort: () => s.abort() };
      return real.writeDump({ ...a, sink });
    },
  };
}

test('a connection cut mid-transfer leaves vmcore-incomplete on the server and runs the failure action', { skip, timeout: 300_000 }, async () => {
  const dir = path.join(sshd.dir, 'cut');
  const lines: string[] = [];
  const sys = realSystem({ log: (l) => lines.push(l) });
  let cutDone = false;
  const out = await capture({
    sys, plan: sshPlan(dir), vmcore: labVmcore(), prepareSystem: false, emit: (l) => lines.push(l),
    stages: stagesCuttingAt(sys, 4 << 20, () => { cutDone = true; for (const pid of sshd.sessionPids()) process.kill(pid, 'SIGKILL'); }),
  });
  assert.ok(cutDone, 'the dump was too small to cut');
  assert.equal(out.ok, false);
  assert.equal(out.action, 'shell');
  assert.equal(out.incomplete, true);
  assert.match(out.reason, /ETARGET_IO/);
  assert.match(lines.join('\n'), /dump INCOMPLETE[\s\S]*failure action: shell/);
  const dumps = fs.readdirSync(dir);
  assert.equal(dumps.length, 1);
  const files = fs.readdirSync(path.join(dir, dumps[0]!));
  assert.ok(files.includes('vmcore-incomplete'), `files on the server: ${files.join(', ')}`);
  assert.ok(!files.includes('vmcore'), 'a cut dump was renamed as complete');
});

test('an unknown host key sends nothing, says host and fingerprint on the console and runs the failure action', { skip, timeout: 120_000 }, async () => {
  const dir = path.join(sshd.dir, 'unknown');
  const lines: string[] = [];
  const sys = realSystem({ log: (l) => lines.push(l) });
  const out = await capture({
    sys, plan: sshPlan(dir, { knownHosts: sshd.unknownKnownHosts }), vmcore: labVmcore(), prepareSystem: false,
    emit: (l) => lines.push(l), stages: realStages(sys, {}),
  });
  assert.equal(out.ok, false);
  assert.equal(out.action, 'shell');
  assert.match(out.reason, /ETARGET_HOSTKEY/);
  assert.ok(lines.some((l) => l.includes(sshd.hostFingerprint) && l.includes('127.0.0.1')), lines.join('\n'));
  assert.equal(fs.existsSync(dir), false, 'something was written to a server whose host key is unknown');
});

test('a server that stops taking bytes mid-transfer (its session stopped) fails the dump after lastword.stall_timeout, keeps it incomplete and runs the failure action', { skip, timeout: 300_000 }, async () => {
  const dir = path.join(sshd.dir, 'stalled');
  const lines: string[] = [];
  const sys = realSystem({ log: (l) => lines.push(l) });
  let stopped: number[] = [];
  const plan = sshPlan(dir);
  plan.stallTimeoutMs = 3000;
  try {
    const t0 = Date.now();
    const out = await capture({
      sys, plan, vmcore: labVmcore(), prepareSystem: false, emit: (l) => lines.push(l),
      stages: stagesCuttingAt(sys, 4 << 20, () => { stopped = sshd.sessionPids(); for (const pid of stopped) process.kill(pid, 'SIGSTOP'); }),
    });
    assert.ok(stopped.length > 0, 'the dump was too small to stall');
    assert.equal(out.ok, false);
    assert.equal(out.action, 'shell');
    assert.equal(out.incomplete, true);
    assert.match(out.reason, /ETARGET_STALLED: ssh .*accepted nothing for 3 s/);
    assert.match(lines.join('\n'), /dump INCOMPLETE[\s\S]*failure action: shell/);
    // the stall limit, plus at most the cleanup wait for the dead server: not the TCP timeout
    assert.ok(Date.now() - t0 < 120_000, `the capture took ${Date.now() - t0} ms`);
  } finally {
    for (const pid of stopped) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  }
  const [stamp] = fs.readdirSync(dir);
  const files = fs.readdirSync(path.join(dir, stamp!));
  assert.ok(files.includes('vmcore-incomplete') && !files.includes('vmcore'), `files on the server: ${files.join(', ')}`);
});
