// Debian's KDUMP_COMPRESSION: what lastword writes decompresses, with the real gzip, bzip2, xz, lz4
// and zstd programs, to exactly the bytes it was given; a missing program turns compression off as
// kdump-config does; a compressor that dies or a target that fails fails the dump with the reason.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { POST_COMPRESSIONS, type PostCompression } from '../../runtime/config/plan.ts';
import { compressingSink, findProgram, POST_COMPRESSION_EXTENSION, postCompressor, type PostCompressor } from '../../runtime/dumpfile/post-compression.ts';
import { LastwordError } from '../../runtime/errors.ts';
import { FdStreamSink } from '../../runtime/targets/target.ts';
import type { StreamSink } from '../../runtime/targets/sink.ts';
import { feed } from '../targets/dumps.ts';

let tmp: string;
let payload: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-postcomp-'));
  // Like a dump: compressible runs, random pages, zeros; 9 MiB + an odd tail.
  const parts: Buffer[] = [];
  for (let i = 0; i < 48; i++) {
    parts.push(crypto.randomBytes(64 << 10), Buffer.alloc(64 << 10, i), Buffer.from('page '.repeat(13107 * 5 + i)));
  }
  parts.push(Buffer.from('tail'));
  payload = path.join(tmp, 'payload');
  fs.writeFileSync(payload, Buffer.concat(parts));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function fileSink(file: string): StreamSink {
  return new FdStreamSink(fs.openSync(file, 'w', 0o600), file);
}

/** The program that decompresses `method` on this machine. */
const DECOMPRESS: Record<PostCompression, string> = { gzip: 'gzip', bzip2: 'bzip2', xz: 'xz', lz4: 'lz4', zstd: 'zstd' };

for (const method of POST_COMPRESSIONS) {
  const skip = findProgram(DECOMPRESS[method]) ? undefined : `no ${DECOMPRESS[method]} program (bash .ci/setup)`;
  test(`${method}: the real ${DECOMPRESS[method]} -d gives back the dump byte for byte, and the file is smaller`, { skip, timeout: 120_000 }, async () => {
    const c = postCompressor(method);
    assert.ok(!('missing' in c));
    assert.equal(c.program === undefined, method === 'gzip' || method === 'zstd', 'gzip and zstd run in-process, the others as programs');
    const out = path.join(tmp, `dump${POST_COMPRESSION_EXTENSION[method]}`);
    const sink = compressingSink(fileSink(out), c);
    await feed(payload, sink, { chunk: 300_000 });
    await sink.close();
    const back = spawnSync(DECOMPRESS[method], ['-dc', out], { maxBuffer: 64 << 20 });
    assert.equal(back.status, 0, back.stderr?.toString());
    assert.ok(back.stdout.equals(fs.readFileSync(payload)), `${method}: decompressed bytes differ`);
    assert.ok(fs.statSync(out).size < fs.statSync(payload).size * 0.8);
  });
}

test('the extensions are kdump-config\'s (zstd: .zst)', () => {
  assert.deepEqual(POST_COMPRESSION_EXTENSION, { gzip: '.gz', bzip2: '.bz2', xz: '.xz', lz4: '.lz4', zstd: '.zst' });
});

test('a program that is not there: compression off with the reason; gzip and zstd need none', () => {
  const none = () => undefined;
  for (const m of ['bzip2', 'xz', 'lz4'] as const) {
    const c = postCompressor(m, none);
    assert.ok('missing' in c && new RegExp(`KDUMP_COMPRESSION=${m}, but the ${m} program is not in this system's PATH; the dump is written uncompressed`).test(c.missing));
  }
  assert.deepEqual(postCompressor('gzip', none), { method: 'gzip' });
  assert.deepEqual(postCompressor('zstd', none), { method: 'zstd' });
  assert.equal(findProgram('sh', '/nonexistent:/bin:/usr/bin')?.endsWith('/sh'), true);
  assert.equal(findProgram('no-such-program-here', '/bin:/usr/bin'), undefined);
});

test('a compressor that dies fails the dump, naming the program and its exit status', { timeout: 60_000 }, async () => {
  const script = path.join(tmp, 'dies');
  fs.writeFileSync(script, '#!/bin/sh\nhead -c 100000 > /dev/null\necho "out of memory" >&2\nexit 3\n', { mode: 0o755 });
  const c: PostCompressor = { method: 'xz', program: script };
  const sink = compressingSink(fileSink(path.join(tmp, 'dies.xz')), c);
  await assert.rejects(async () => { await feed(payload, sink, { chunk: 64 << 10 }); await sink.close(); },
    (e: unknown) => e instanceof LastwordError && e.code === 'ETARGET_IO' && e.message.includes(`KDUMP_COMPRESSION ${script} -c: `) && /exited 3: out of memory/.test(e.message));
  await sink.abort();
});

test('a target that fails under the compressor fails the write with the target\'s error', { timeout: 60_000 }, async () => {
  let taken = 0;
  const full: StreamSink = {
    kind: 'stream',
    write: async (b) => { taken += b.length; if (taken > 200_000) throw new LastwordError('ETARGET_FULL', 'no space left on the target (ENOSPC)'); },
    close: async () => undefined,
    abort: async () => undefined,
  };
  for (const c of [{ method: 'gzip' }, ...(findProgram('xz') ? [{ method: 'xz', program: findProgram('xz') }] : [])] as PostCompressor[]) {
    taken = 0;
    const sink = compressingSink(full, c);
    await assert.rejects(async () => { await feed(payload, sink); await sink.close(); },
      (e: unknown) => e instanceof LastwordError && e.code === 'ETARGET_FULL', `${c.method}: the target's error was lost`);
    await sink.abort();
  }
});

for (const c of [{ method: 'gzip' }, { method: 'xz', program: findProgram('xz') }] as PostCompressor[]) {
  test(`a writer that gives up part-way aborts the ${c.method} compressor and the target, and returns`, { timeout: 60_000, skip: c.method !== 'gzip' && !c.program ? 'xz is missing (bash .ci/setup)' : false }, async () => {
    let innerAborted = false;
    const inner: StreamSink = { kind: 'stream', write: async () => undefined, close: async () => undefined, abort: async () => { innerAborted = true; } };
    const sink = compressingSink(inner, c);
    await sink.write(crypto.randomBytes(1 << 20));
    await sink.abort();
    assert.ok(innerAborted, 'the target was not aborted');
    await assert.rejects(sink.write(Buffer.alloc(16)), /aborted/);
  });
}
