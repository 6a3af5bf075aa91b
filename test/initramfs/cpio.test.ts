// The cpio writer against the real GNU cpio (what the kernel's unpacker also reads: newc) and
// the real gzip/zstd tools.
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { newcChunks, sortEntries, writeCpio, writeCpioFile, type CpioEntry } from '../../initramfs/cpio.ts';

let tmp = '';
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-cpio-')); });
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

function sh(cmd: string, cwd: string): string {
  const r = spawnSync('bash', ['-o', 'pipefail', '-c', cmd], { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, `${cmd}: ${r.stderr}`);
  return r.stdout + r.stderr;
}

function sample(): CpioEntry[] {
  const big = path.join(tmp, 'big.bin');
  // 3 MiB + 3 bytes: several read chunks and a length that needs padding
  if (!fs.existsSync(big)) fs.writeFileSync(big, crypto.randomBytes(3 * 1024 * 1024 + 3), { mode: 0o751 });
  return [
    { type: 'file', path: '/usr/lib/big.bin', source: big },
    { type: 'symlink', path: 'lib64', target: 'usr/lib' },
    { type: 'dir', path: 'usr/lib' },
    { type: 'dir', path: '/usr' },
    { type: 'dir', path: 'dev', mode: 0o755 },
    { type: 'char', path: 'dev/console', mode: 0o600, major: 5, minor: 1 },
    { type: 'char', path: 'dev/null', mode: 0o666, major: 1, minor: 3 },
    { type: 'block', path: 'dev/loop9', mode: 0o660, major: 7, minor: 9 },
    { type: 'file', path: 'init', mode: 0o755, data: '#!/bin/sh\necho hi\n' },
    { type: 'file', path: 'etc-a', data: Buffer.from('x') },
    { type: 'dir', path: 'etc' },
    { type: 'file', path: 'etc/empty', mode: 0o600, data: '' },
  ];
}

async function toBuffer(entries: CpioEntry[], opts: Parameters<typeof writeCpio>[2] = {}): Promise<Buffer> {
  const sink = new PassThrough();
  const parts: Buffer[] = [];
  sink.on('data', (b: Buffer) => parts.push(b));
  await writeCpio(entries, sink, opts);
  return Buffer.concat(parts);
}

describe('cpio writer', () => {
  it('writes an archive that GNU cpio -idv extracts to the same tree, modes, links and device nodes', async () => {
    const archive = path.join(tmp, 'plain.cpio');
    await writeCpioFile(sample(), archive);
    const out = path.join(tmp, 'x-plain');
    fs.mkdirSync(out);
    const listing = sh(`cpio -idv --no-absolute-filenames < '${archive}'`, out);
    assert.match(listing, /usr\/lib\/big\.bin/);
    assert.ok(fs.readFileSync(path.join(out, 'usr/lib/big.bin')).equals(fs.readFileSync(path.join(tmp, 'big.bin'))));
    assert.equal(fs.statSync(path.join(out, 'usr/lib/big.bin')).mode & 0o7777, 0o751);
    assert.equal(fs.readlinkSync(path.join(out, 'lib64')), 'usr/lib');
    assert.equal(fs.readFileSync(path.join(out, 'init'), 'utf8'), '#!/bin/sh\necho hi\n');
    assert.equal(fs.statSync(path.join(out, 'init')).mode & 0o7777, 0o755);
    assert.equal(fs.readFileSync(path.join(out, 'etc/empty')).length, 0);
    const con = fs.statSync(path.join(out, 'dev/console'));
    assert.ok(con.isCharacterDevice());
    assert.equal(con.rdev, (5 << 8) | 1);
    assert.equal(con.mode & 0o7777, 0o600);
    const loop = fs.statSync(path.join(out, 'dev/loop9'));
    assert.ok(loop.isBlockDevice());
    assert.equal(loop.rdev, (7 << 8) | 9);
    // fixed owner and mtime, as GNU cpio reports them
    const table = sh(`cpio -tv --numeric-uid-gid < '${archive}'`, out);
    for (const line of table.split('\n').filter((l) => /^[-dlcb]/.test(l))) {
      assert.match(line, /^\S+\s+\d+\s+0\s+0\s/, line);
      assert.match(line, /Jan\s+1\s+1970/, line);
    }
  });

  it('lists every directory before its contents', () => {
    const order = sortEntries(sample()).map((e) => e.path);
    assert.deepEqual(order, ['dev', 'dev/console', 'dev/loop9', 'dev/null', 'etc', 'etc/empty', 'etc-a', 'init', 'lib64',
      'usr', 'usr/lib', 'usr/lib/big.bin']);
  });

  it('gives the same bytes for the same entries, whatever their order', async () => {
    const a = await toBuffer(sample(), { compression: 'gzip', level: 1 });
    const b = await toBuffer(sample().reverse(), { compression: 'gzip', level: 1 });
    assert.ok(a.equals(b));
    const c = await toBuffer(sample(), { compression: 'zstd', level: 3 });
    const d = await toBuffer(sample().reverse(), { compression: 'zstd', level: 3 });
    assert.ok(c.equals(d));
  });

  it('compresses with gzip and zstd so that the real gzip and zstd tools decompress it to the plain archive', async () => {
    const plain = await toBuffer(sample());
    assert.equal(plain.length % 512, 0);
    for (const [compression, tool] of [['gzip', 'gzip -dc'], ['zstd', 'zstd -dcq']] as const) {
      const file = path.join(tmp, `a.cpio.${compression}`);
      await writeCpioFile(sample(), file, { compression, level: 3 });
      const r = spawnSync('bash', ['-c', `${tool} < '${file}'`], { maxBuffer: 64 << 20 });
      assert.equal(r.status, 0, r.stderr.toString());
      assert.ok(r.stdout.equals(plain), `${compression} output differs from the plain archive`);
    }
  });

  it('refuses duplicate paths, paths leaving the archive and missing source files', async () => {
    const drain = async (entries: CpioEntry[]): Promise<void> => { for await (const _ of newcChunks(entries)) { /* consume */ } };
    await assert.rejects(drain([{ type: 'dir', path: 'a' }, { type: 'dir', path: '/a/' }]), { code: 'ECPIO_PATH' });
    await assert.rejects(drain([{ type: 'file', path: '../etc/passwd', data: 'x' }]), { code: 'ECPIO_PATH' });
    await assert.rejects(drain([{ type: 'file', path: 'x', source: path.join(tmp, 'absent') }]), { code: 'ECPIO_SOURCE' });
    await assert.rejects(writeCpioFile([{ type: 'file', path: 'x', source: path.join(tmp, 'absent') }], path.join(tmp, 'fail.cpio')),
      { code: 'ECPIO_SOURCE' });
    assert.equal(fs.existsSync(path.join(tmp, 'fail.cpio')), false);
  });
});
