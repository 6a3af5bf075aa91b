// fence_kdump notification against the real cluster side: Debian's fence_kdump agent (fence-agents,
// unpacked by .ci/setup) waits for this node's datagram and exits 0 only for a valid one from the
// node's address. fence_kdump_send, the program kdump.sh runs, is the reference for the bytes.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import type { FencePlan } from '../../runtime/config/plan.ts';
import { FENCE_KDUMP_MAGIC, fenceKdumpMessage, startFenceKdump } from '../../runtime/network/fence-kdump.ts';
import { cacheDir } from '../support/lab.ts';

const agentDir = path.join(cacheDir, 'fence-agents');
const agent = path.join(agentDir, 'usr', 'sbin', 'fence_kdump');
const sender = path.join(agentDir, 'usr', 'libexec', 'fence-agents', 'fence_kdump_send');
const skip = fs.existsSync(agent) && fs.existsSync(sender) ? false : 'fence-agents not unpacked in .cache (.ci/setup does it)';

const plan = (over: Partial<FencePlan>): FencePlan => ({ nodes: [], port: 0, family: 'auto', count: 0, intervalS: 1, source: { file: 'kdump.conf', line: 1 }, ...over });

/** A free UDP port on `host`. */
async function freePort(type: 'udp4' | 'udp6', host: string): Promise<number> {
  const s = dgram.createSocket(type);
  await new Promise<void>((resolve) => s.bind(0, host, resolve));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** Whether a UDP socket is bound to `port` (the agent's stdout is block-buffered: no readiness line). */
function udpBound(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
  return ['/proc/net/udp', '/proc/net/udp6'].some((f) => fs.readFileSync(f, 'utf8').split('\n').some((l) => l.trim().split(/\s+/)[1]?.endsWith(hex.trim())));
}

/** Runs the real agent: `fence_kdump -n NODE -p PORT -t TIMEOUT`; `started` once it listens. */
function runAgent(node: string, port: number, timeoutS: number, family: 'ipv4' | 'ipv6'): { started: Promise<void>; done: Promise<{ code: number | null; out: string }> } {
  const p = spawn(agent, ['-n', node, '-p', String(port), '-f', family, '-t', String(timeoutS), '-v'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let exited = false;
  p.stdout.on('data', (b: Buffer) => { out += b.toString(); });
  p.stderr.on('data', (b: Buffer) => { out += b.toString(); });
  const done = new Promise<{ code: number | null; out: string }>((resolve) => p.on('close', (code) => { exited = true; resolve({ code, out }); }));
  const started = (async () => {
    while (!exited && !udpBound(port)) await new Promise((resolve) => setTimeout(resolve, 20));
  })();
  return { started, done };
}

test('the datagram is fence_kdump_send\'s: magic 0x1B302A40 and version 1 in host byte order', { skip }, async () => {
  const rx = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => rx.bind(0, '127.0.0.1', resolve));
  const got = new Promise<Buffer>((resolve) => rx.once('message', (m) => resolve(m)));
  const r = spawnSync(sender, ['-p', String(rx.address().port), '-c', '1', '127.0.0.1'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const reference = await got;
  rx.close();
  assert.deepEqual(fenceKdumpMessage(), reference);
  assert.equal(reference.readUInt32LE(0), FENCE_KDUMP_MAGIC);
  assert.deepEqual(fenceKdumpMessage('BE'), Buffer.from('1b302a4000000001', 'hex'));
});

for (const [family, node] of [['ipv4', '127.0.0.1'], ['ipv6', '::1']] as const) {
  test(`the real fence_kdump agent takes lastword's notification as fenced (${family}, ${node})`, { skip }, async () => {
    const port = await freePort(family === 'ipv6' ? 'udp6' : 'udp4', node);
    const a = runAgent(node, port, 30, family);
    await a.started;
    const logs: string[] = [];
    const n = await startFenceKdump(plan({ nodes: [node], port, family }), (l) => logs.push(l));
    const r = await a.done;
    await n.stop();
    assert.equal(r.code, 0, `fence_kdump did not accept the notification:\n${r.out}`);
    assert.match(r.out, /received valid message/);
    assert.ok(n.sent >= 1);
    assert.match(logs.join('\n'), new RegExp(`fence_kdump: notifying ${node.replace(/[.:]/g, '\\$&')} on udp port ${port} every 1 s`));
  });
}

test('the agent refuses a datagram that is not a fence_kdump message (so the test above can fail)', { skip }, async () => {
  const port = await freePort('udp4', '127.0.0.1');
  const a = runAgent('127.0.0.1', port, 3, 'ipv4');
  await a.started;
  const s = dgram.createSocket('udp4');
  const wrong = fenceKdumpMessage();
  wrong.writeUInt32LE(2, 4);   // version 2
  await new Promise<void>((resolve, reject) => s.send(wrong, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
  s.close();
  const r = await a.done;
  assert.notEqual(r.code, 0, r.out);
  assert.match(r.out, /invalid message version/);
});

test('count limits the rounds; a node that does not resolve is logged and the others are still notified', async () => {
  const rx = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => rx.bind(0, '127.0.0.1', resolve));
  const got: Buffer[] = [];
  rx.on('message', (m) => got.push(m));
  const logs: string[] = [];
  const n = await startFenceKdump(plan({ nodes: ['no-such-node.invalid', '127.0.0.1'], port: rx.address().port, count: 2, intervalS: 1 }), (l) => logs.push(l));
  await new Promise((resolve) => setTimeout(resolve, 2500));
  await n.stop();
  rx.close();
  assert.equal(got.length, 2, 'two rounds of one node');
  assert.ok(got.every((m) => m.equals(fenceKdumpMessage())));
  assert.match(logs.join('\n'), /warning: fence_kdump: cannot resolve node no-such-node\.invalid: .*it is not notified/);
  assert.match(logs.join('\n'), /notifying 127\.0\.0\.1 on udp port \d+ every 1 s, 2 times/);
});

test('no node resolves: a warning, and stop() still returns', async () => {
  const logs: string[] = [];
  const n = await startFenceKdump(plan({ nodes: ['no-such-node.invalid'], port: 7410 }), (l) => logs.push(l));
  await n.stop();
  assert.equal(n.sent, 0);
  assert.match(logs.join('\n'), /no node to notify; the cluster may fence this node while it dumps/);
});
