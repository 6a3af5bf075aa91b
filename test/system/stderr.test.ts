// writeStderr: console lines straight to fd 2, without building process.stderr; when fd 2 is a
// non-blocking pipe whose reader is behind, the rest goes through process.stderr, none lost.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { repo } from '../support/lab.ts';

const helper = JSON.stringify(path.join(repo, 'runtime', 'system', 'stderr.ts'));

test('lines reach stderr (a pipe) in order, and process.stderr is never built for them', () => {
  const script = `
    import { writeStderr } from ${helper};
    writeStderr('one\\n'); writeStderr('two\\n');
    // process.stderr on a pipe is a net.Socket: building it loads net (and stream, tty...)
    const netLoaded = process.moduleLoadList.includes('NativeModule net');
    process.stdout.write(String(netLoaded));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, 'one\ntwo\n');
  assert.equal(r.stdout, 'false');
});

test('a non-blocking stderr pipe whose reader is slow gets every byte (EAGAIN falls back to process.stderr)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-stderr-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const fifo = path.join(dir, 'fifo');
  spawnSync('mkfifo', [fifo]);
  // O_RDWR: opening the read side does not wait for a writer
  const rfd = fs.openSync(fifo, fs.constants.O_RDWR);
  const wfd = fs.openSync(fifo, fs.constants.O_WRONLY);
  const lines = Array.from({ length: 4096 }, (_, i) => `line ${i} ${'x'.repeat(200)}\n`);
  // Building process.stderr on a pipe makes fd 2 non-blocking (libuv), as when anything in the
  // process used it before (spawn itself hands the child a blocking fd 2).
  const script = `
    import { writeStderr } from ${helper};
    void process.stderr;
    for (let i = 0; i < 4096; i++) writeStderr(\`line \${i} \${'x'.repeat(200)}\\n\`);
    writeStderr('END\\n');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', wfd] });
  fs.closeSync(wfd);
  // When the child is gone, a NUL through the FIFO ends the reading below even if bytes were lost.
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { fs.writeSync(rfd, '\0'); resolve(code); }));
  // A slow reader: the 64 KiB pipe fills long before this starts reading.
  await new Promise((r) => setTimeout(r, 300));
  const want = lines.join('') + 'END\n';
  const got: Buffer[] = [];
  const buf = Buffer.alloc(1 << 16);
  for (;;) {
    const k = await new Promise<number>((resolve, reject) => fs.read(rfd, buf, 0, buf.length, null, (e, b) => (e ? reject(e) : resolve(b))));
    got.push(Buffer.from(buf.subarray(0, k)));
    if (buf.subarray(0, k).includes(0)) break;
  }
  fs.closeSync(rfd);
  assert.equal(await exited, 0);
  assert.equal(Buffer.concat(got).toString(), want + '\0');
});
