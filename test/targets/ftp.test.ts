// Debian's FTP= target against a real vsftpd on 127.0.0.1: the flattened stream arrives byte for
// byte as makedumpfile -F writes it, `lastword save` with a kdump-tools file lays the files out as
// kdump-config's kdump_save_core_to_ftp does (flat, <ip>-dump.<stamp>, <ip>-dmesg.<stamp>) and crash
// opens the reassembled dump; a refused login is not retried and names the config; a connection
// cut mid-transfer leaves only the incomplete name on the server.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { FtpTarget } from '../../runtime/config/plan.ts';
import { LastwordError } from '../../runtime/errors.ts';
import { openFtpTarget, parseReplies, passivePort } from '../../runtime/targets/ftp.ts';
import { labVmcore } from '../support/lab.ts';
import { crashOpens, feed, feedAndCut, flaggedIncomplete, missingReference, reassemble, referenceDump } from './dumps.ts';
import { startLoopbackFtpd, VSFTPD, type LoopbackFtpd } from './ftpd.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const skip = missingReference() ?? (fs.existsSync(VSFTPD) ? undefined : `no ${VSFTPD} (bash .ci/setup)`);
let ftpd: LoopbackFtpd;

before(async () => { if (!skip) ftpd = await startLoopbackFtpd(); });
after(() => ftpd?.stop());

function target(o: Partial<FtpTarget> = {}): FtpTarget {
  return { kind: 'ftp', host: '127.0.0.1', port: ftpd.port, user: 'anonymous', password: 'busybox@', dir: '/incoming', source: { file: '/etc/default/kdump-tools', line: 7 }, ...o };
}

test('streams a flattened dump with STOR, byte for byte as makedumpfile -F writes it, mode 0600, renamed when finished', { skip, timeout: 300_000 }, async () => {
  const ref = referenceDump('flat');
  const t = await openFtpTarget(target());
  try {
    assert.deepEqual([t.streamOnly, t.hasFiles, t.network, t.localAddress], [true, true, true, '127.0.0.1']);
    await t.mkdirs('/incoming/sub');
    const sink = await t.openDump('/incoming/sub', '127.0.0.1-dump-incomplete.202406232107', 'stream');
    await feed(ref, sink);
    await sink.close();
    await t.rename('/incoming/sub', '127.0.0.1-dump-incomplete.202406232107', '127.0.0.1-dump.202406232107');
    await t.writeFile('/incoming/sub', 'note', 'small file\n');
  } finally {
    await t.close();
  }
  const dir = path.join(ftpd.root, 'incoming', 'sub');
  assert.deepEqual(fs.readdirSync(dir).sort(), ['127.0.0.1-dump.202406232107', 'note']);
  const got = path.join(dir, '127.0.0.1-dump.202406232107');
  assert.equal(fs.statSync(got).mode & 0o777, 0o600);
  assert.ok(fs.readFileSync(got).equals(fs.readFileSync(ref)), 'the stream on the server differs from makedumpfile -F');
  assert.equal(fs.readFileSync(path.join(dir, 'note'), 'utf8'), 'small file\n');
});

test("lastword save with FTP= in /etc/default/kdump-tools: kdump-config's flat layout, and crash opens the reassembled dump", { skip, timeout: 300_000 }, async () => {
  const conf = path.join(ftpd.dir, 'kdump-tools');
  fs.writeFileSync(conf, ['USE_KDUMP=1', 'MAKEDUMP_ARGS="-c -d 31"', 'FTP="127.0.0.1:/incoming/crash"', `FTP_PORT=${ftpd.port}`, 'HOSTTAG="ip"', ''].join('\n'));
  fs.mkdirSync(path.join(ftpd.root, 'incoming', 'crash'));
  spawnSync('chown', ['ftp', path.join(ftpd.root, 'incoming', 'crash')]);
  const r = spawnSync(process.execPath, [path.join(repo, 'runtime/main.ts'), 'save', '--config', conf, '--cmdline', '', labVmcore()], { encoding: 'utf8', timeout: 240_000 });
  assert.equal(r.status, 0, r.stderr);
  const files = fs.readdirSync(path.join(ftpd.root, 'incoming', 'crash')).sort();
  const stamp = /^127\.0\.0\.1-dump\.(\d{12})$/.exec(files.find((f) => f.includes('-dump.')) ?? '')?.[1];
  assert.ok(stamp, `no <ip>-dump.<stamp>: ${files.join(', ')}`);
  assert.deepEqual(files, [`127.0.0.1-dmesg.${stamp}`, `127.0.0.1-dump.${stamp}`, `127.0.0.1-lastword.${stamp}.log`]);
  const dmesg = fs.readFileSync(path.join(ftpd.root, 'incoming', 'crash', `127.0.0.1-dmesg.${stamp}`), 'utf8');
  assert.match(dmesg, /Linux version 6\.1/);
  const flat = path.join(ftpd.root, 'incoming', 'crash', `127.0.0.1-dump.${stamp}`);
  assert.equal(fs.readFileSync(flat).subarray(0, 16).toString('latin1').replace(/\0+$/, ''), 'makedumpfile');
  const dump = reassemble(flat, path.join(ftpd.dir, 'reassembled'));
  assert.equal(flaggedIncomplete(dump), false);
  const c = crashOpens(dump);
  assert.ok(c.ok, `crash could not open the FTP dump:\n${c.output.slice(-2000)}`);
});

test('a refused login is not retried and names FTP_USER / FTP_PASSWORD in the config', { skip, timeout: 60_000 }, async () => {
  const logs: string[] = [];
  await assert.rejects(openFtpTarget(target({ user: 'nosuchuser', password: 'x' }), { attempts: 4, retryDelayMs: 10, log: (l) => logs.push(l) }),
    (e: unknown) => e instanceof LastwordError && e.code === 'ETARGET_AUTH' && /530/.test(e.message) && /FTP_USER \/ FTP_PASSWORD in \/etc\/default\/kdump-tools/.test(e.message));
  assert.deepEqual(logs, [], 'a refused login was retried');
});

test('a server that is not there is retried, then fails with host and port', { skip, timeout: 60_000 }, async () => {
  const logs: string[] = [];
  await assert.rejects(openFtpTarget(target({ port: 1 }), { attempts: 2, retryDelayMs: 10, log: (l) => logs.push(l) }),
    (e: unknown) => e instanceof LastwordError && e.code === 'ETARGET_CONNECT' && /ftp 127\.0\.0\.1:1: .*ECONNREFUSED/.test(e.message));
  assert.equal(logs.length, 1);
  assert.match(logs[0]!, /attempt 1 of 2/);
});

test('a connection cut mid-transfer fails the write and leaves only the incomplete name on the server', { skip, timeout: 120_000 }, async () => {
  const ref = referenceDump('flat');
  const t = await openFtpTarget(target());
  try {
    await t.mkdirs('/incoming/cut');
    const sink = await t.openDump('/incoming/cut', 'x-dump-incomplete.1', 'stream');
    await feedAndCut(ref, sink, 4 << 20, () => { for (const pid of ftpd.sessionPids()) process.kill(pid, 'SIGKILL'); }, 256 << 10);
  } finally {
    await t.close();
  }
  const dir = path.join(ftpd.root, 'incoming', 'cut');
  assert.deepEqual(fs.readdirSync(dir), ['x-dump-incomplete.1']);
  assert.ok(fs.statSync(path.join(dir, 'x-dump-incomplete.1')).size < fs.statSync(ref).size);
});

test('reply and passive-mode parsing', () => {
  assert.deepEqual(parseReplies('220 ready\r\n230-Welcome\r\n line two\r\n230 Login ok\r\n150 Ok to'), {
    replies: [{ code: 220, text: 'ready' }, { code: 230, text: '230-Welcome\r\n line two\r\n230 Login ok' }], rest: '150 Ok to',
  });
  assert.deepEqual(parseReplies('211-Features:\n EPSV\n'), { replies: [], rest: '211-Features:\n EPSV\n' });
  assert.equal(passivePort({ code: 229, text: 'Entering Extended Passive Mode (|||40123|)' }), 40123);
  assert.equal(passivePort({ code: 227, text: 'Entering Passive Mode (127,0,0,1,156,187).' }), 156 * 256 + 187);
  assert.equal(passivePort({ code: 229, text: 'garbage' }), undefined);
});
