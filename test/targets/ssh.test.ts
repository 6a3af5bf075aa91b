// The SSH target against a real OpenSSH sshd on 127.0.0.1 started by the test.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { LastwordError } from '../../runtime/errors.ts';
import type { SshTarget } from '../../runtime/config/plan.ts';
import { openSshTarget, sftpWriteChunk, sshNativeCrypto } from '../../runtime/targets/ssh.ts';
import type { SFTPWrapper } from 'ssh2';
import { crashOpens, feed, feedAndCut, missingReference, reassemble, referenceDump } from './dumps.ts';
import { startLoopbackSshd, type LoopbackSshd } from './sshd.ts';

const skip = missingReference();
let sshd: LoopbackSshd;
before(async () => { if (!skip) sshd = await startLoopbackSshd(); });
after(() => sshd?.stop());

function target(over: Partial<SshTarget> = {}): SshTarget {
  return {
    kind: 'ssh', user: 'root', host: '127.0.0.1', port: sshd.port, key: sshd.clientKey, knownHosts: sshd.knownHosts,
    transport: 'sftp', source: { file: 'kdump.conf', line: 1 }, ...over,
  };
}

const sameBytes = (a: string, b: string) => assert.ok(fs.readFileSync(a).equals(fs.readFileSync(b)), `${a} differs from ${b}`);

test('writes a finished kdump-compressed file through SFTP at offsets, mode 0600, which crash opens', { skip, timeout: 300_000 }, async () => {
  const ref = referenceDump('kdump');
  const dir = path.join(sshd.dir, 'crash', '127.0.0.1-2024-06-23-21:07:06');
  // the transfer below runs through ssh2's native ciphers (build/native/sshcrypto.node)
  assert.equal(sshNativeCrypto(), true, 'ssh2 fell back to its JavaScript ciphers: run npm run build:native');
  const t = await openSshTarget(target());
  try {
    assert.equal(t.streamOnly, false);
    await t.mkdirs(dir);
    const sink = await t.openDump(dir, 'vmcore-incomplete', 'positional');
    assert.equal(sink.kind, 'positional');
    await feed(ref, sink);
    await sink.close();
    await t.writeFile(dir, 'vmcore-dmesg.txt', 'kernel log\n');
    await t.rename(dir, 'vmcore-incomplete', 'vmcore');
  } finally {
    await t.close();
  }
  const vmcore = path.join(dir, 'vmcore');
  assert.deepEqual(fs.readdirSync(dir).sort(), ['vmcore', 'vmcore-dmesg.txt']);
  assert.equal(fs.statSync(vmcore).mode & 0o777, 0o600);
  assert.equal(fs.statSync(path.join(dir, 'vmcore-dmesg.txt')).mode & 0o777, 0o600);
  sameBytes(vmcore, ref);
  const report = crashOpens(vmcore);
  assert.ok(report.ok, `crash could not open the dump sent by SFTP:\n${report.output.slice(-2000)}`);
});

test('streams a flattened dump through `dd` on an exec channel (vmcore.flat), byte for byte, which makedumpfile -R reassembles', { skip, timeout: 300_000 }, async () => {
  const ref = referenceDump('flat');
  const dir = path.join(sshd.dir, 'flat', '127.0.0.1-2024-06-23-21:07:07');
  const t = await openSshTarget(target({ transport: 'flattened' }));
  try {
    assert.equal(t.streamOnly, true);
    await t.mkdirs(dir);
    const sink = await t.openDump(dir, 'vmcore-incomplete', 'stream');
    assert.equal(sink.kind, 'stream');
    await feed(ref, sink);
    await sink.close();
    await t.rename(dir, 'vmcore-incomplete', 'vmcore.flat');
  } finally {
    await t.close();
  }
  const flat = path.join(dir, 'vmcore.flat');
  assert.equal(fs.statSync(flat).mode & 0o777, 0o600);
  // Byte-equal to makedumpfile -F's own stream, and the reference reassembles it; crash reading the
  // same kdump-compressed content is the SFTP test's job (one crash run per suite: it is slow).
  sameBytes(flat, ref);
  const reassembled = reassemble(flat, path.join(sshd.dir, 'reassembled'));
  assert.equal(fs.readFileSync(reassembled).subarray(0, 8).toString('latin1'), 'KDUMP   ');
});

test('falls back to the dd stream when the server has no SFTP subsystem', { skip, timeout: 60_000 }, async (t) => {
  const bare = await startLoopbackSshd({ sftp: false });
  t.after(() => bare.stop());
  const logs: string[] = [];
  const tg = await openSshTarget(target({ port: bare.port, key: bare.clientKey, knownHosts: bare.knownHosts }), { log: (l) => logs.push(l) });
  try {
    assert.equal(tg.streamOnly, true);
    assert.match(logs.join('\n'), /no SFTP/);
    assert.doesNotMatch(logs.join('\n'), /JavaScript ciphers/);
    const dir = path.join(bare.dir, 'out');
    await tg.mkdirs(dir);
    const sink = await tg.openDump(dir, 'vmcore-incomplete', 'stream');
    assert.equal(sink.kind, 'stream');
    if (sink.kind === 'stream') await sink.write(Buffer.from('stream bytes'));
    await sink.close();
    await tg.writeFile(dir, 'vmcore-dmesg.txt', 'log');
    await tg.rename(dir, 'vmcore-incomplete', 'vmcore.flat');
    assert.equal(fs.readFileSync(path.join(dir, 'vmcore.flat'), 'utf8'), 'stream bytes');
    assert.equal(fs.statSync(path.join(dir, 'vmcore-dmesg.txt')).mode & 0o777, 0o600);
  } finally {
    await tg.close();
  }
});

const refused = (reason: RegExp) => (err: unknown) => {
  assert.ok(err instanceof LastwordError, `not a LastwordError: ${err}`);
  assert.equal(err.code, 'ETARGET_HOSTKEY');
  assert.match(err.message, /127\.0\.0\.1/);
  assert.ok(err.message.includes(sshd.hostFingerprint), `the message does not name the fingerprint ${sshd.hostFingerprint}: ${err.message}`);
  assert.match(err.message, reason);
  return true;
};

test('refuses an unknown ssh host key, naming host and fingerprint', { skip, timeout: 60_000 }, async () => {
  await assert.rejects(openSshTarget(target({ knownHosts: sshd.unknownKnownHosts })), refused(/is not in .*known_hosts\.unknown/));
});

test('refuses a changed ssh host key, naming host, fingerprint and the known_hosts line', { skip, timeout: 60_000 }, async () => {
  await assert.rejects(openSshTarget(target({ knownHosts: sshd.changedKnownHosts })), refused(/CHANGED.*known_hosts\.changed:1/));
});

test('a connection cut mid-transfer fails the write and leaves only vmcore-incomplete on the server', { skip, timeout: 120_000 }, async () => {
  const ref = referenceDump('kdump');
  const dir = path.join(sshd.dir, 'cut');
  const t = await openSshTarget(target());
  try {
    await t.mkdirs(dir);
    const sink = await t.openDump(dir, 'vmcore-incomplete', 'positional');
    await feedAndCut(ref, sink, 8 << 20, () => { for (const pid of sshd.sessionPids()) process.kill(pid, 'SIGKILL'); });
  } finally {
    await t.close();
  }
  assert.deepEqual(fs.readdirSync(dir), ['vmcore-incomplete']);
  assert.ok(fs.statSync(path.join(dir, 'vmcore-incomplete')).size < fs.statSync(ref).size);
});

test("SFTP writes are as long as ssh2's limit for the server: limits@openssh.com's, or 31,952 bytes without it, so ssh2 never splits one", () => {
  const chunk = (limit: unknown) => sftpWriteChunk({ _maxWriteLen: limit } as unknown as SFTPWrapper);
  assert.equal(chunk(261_120), 261_120);                // OpenSSH: 256 KiB - 1 KiB
  assert.equal(chunk(34_000 - 2048), 31_952);           // a server without limits@openssh.com
  assert.equal(chunk(64 << 20), 1 << 20);               // capped
  assert.equal(sftpWriteChunk({} as unknown as SFTPWrapper), 32 << 10);
});
