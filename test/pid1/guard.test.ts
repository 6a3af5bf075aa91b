// PID 1 must never end: a child process with the guards installed survives exceptions,
// rejections, process.exit and the signals that end Node by default.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';

describe('PID 1 guards', () => {
  it('survive exceptions, rejections, process.exit and signals, and turn busybox reboot/halt/poweroff signals into requests', async () => {
    const child = spawn(process.execPath, [path.join(import.meta.dirname, 'guard-child.ts')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (b) => { err += b; });
    const report = await new Promise<{ alive: boolean; lines: string[] }>((resolve, reject) => {
      child.stdout.on('data', (b) => {
        out += b;
        if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!));
      });
      child.on('exit', (code, signal) => reject(new Error(`the guarded process ended (${code ?? signal}): ${err}`)));
    });
    // the guards also keep it running after its last timer: end it here
    assert.equal(child.exitCode, null, 'still running after reporting');
    child.kill('SIGKILL');
    assert.equal(report.alive, true);
    const log = report.lines.join('\n');
    assert.match(log, /caught an exception and stays up: stray exception/);
    assert.match(log, /caught a rejection and stays up: stray rejection/);
    // and each goes to onStray, which ends a capture running in PID 1
    assert.match(log, /stray reported: stray exception/);
    assert.match(log, /stray reported: stray rejection/);
    assert.match(log, /refuses process\.exit\(1\)/);
    assert.match(log, /ignores SIGINT/);
    assert.match(log, /ignores SIGHUP/);
    assert.match(log, /ignores SIGPIPE/);
    assert.match(log, /request reboot by SIGTERM/);
    assert.match(log, /request halt by SIGUSR1/);
    assert.match(log, /request poweroff by SIGUSR2/);
  });
});
