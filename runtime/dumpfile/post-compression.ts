// Debian's KDUMP_COMPRESSION: kdump-config pipes makedumpfile's flattened stream through gzip,
// bzip2, xz or lz4 (`makedumpfile ... | compress > dump-incomplete.gz`) and puts the program's
// extension on the file names. gzip and zstd run in-process (node:zlib); bzip2, xz and lz4 run as
// their programs, found on PATH as kdump-config's check_compression finds them — when a program is
// missing, kdump-config says so and writes the dump uncompressed, and so do we.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { finished as streamFinished } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import type { PostCompression } from '../config/plan.ts';
import { describeError, LastwordError } from '../errors.ts';
import type { StreamSink } from '../targets/sink.ts';

/** kdump-config's compression_extension (zstd: the program's own .zst). */
export const POST_COMPRESSION_EXTENSION: Record<PostCompression, string> = {
  gzip: '.gz', bzip2: '.bz2', xz: '.xz', lz4: '.lz4', zstd: '.zst',
};

/** How the dump gets compressed: in-process, or by piping it through `program -c`. */
export interface PostCompressor {
  method: PostCompression;
  /** Absolute path of the program; undefined for the in-process codecs. */
  program?: string;
}

const IN_PROCESS: ReadonlySet<PostCompression> = new Set(['gzip', 'zstd']);

/** gzip and zstd need no program in the image. */
export function postCompressionInProcess(method: PostCompression): boolean {
  return IN_PROCESS.has(method);
}
const DEFAULT_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * `command -v name` over `searchPath`: the first executable regular file, looked up under `root`
 * (the image builder's --root) and named as it is there.
 */
export function findProgram(name: string, searchPath = process.env.PATH || DEFAULT_PATH, root = '/'): string | undefined {
  for (const dir of searchPath.split(':')) {
    if (!dir.startsWith('/')) continue;
    const p = path.join(dir, name);
    const onDisk = path.join(root, p);
    try {
      if (fs.statSync(onDisk).isFile()) { fs.accessSync(onDisk, fs.constants.X_OK); return p; }
    } catch { /* not here */ }
  }
  return undefined;
}

/**
 * The compressor for `method`, or a reason it cannot run here (kdump-config: "Error: Compression
 * set to bzip2, but bzip2 command not found. Disabling compression.").
 */
export function postCompressor(method: PostCompression, find: (name: string) => string | undefined = findProgram): PostCompressor | { missing: string } {
  if (IN_PROCESS.has(method)) return { method };
  const program = find(method);
  return program ? { method, program } : { missing: `KDUMP_COMPRESSION=${method}, but the ${method} program is not in this system's PATH; the dump is written uncompressed, as kdump-config does` };
}

/** The two ends of a compressor: the dump goes into `input`, the compressed bytes come out of `output`. */
interface Pipe {
  input: Writable;
  output: Readable;
  /** Resolves when the compressor finished cleanly; rejects with what went wrong. */
  finished: Promise<void>;
  kill(): void;
}

function zlibPipe(method: PostCompression): Pipe {
  // gzip -c's default level 6; zstd's command-line default level 3 is zlib's default too.
  const z = method === 'gzip' ? zlib.createGzip({ level: 6 }) : zlib.createZstdCompress();
  // stream.finished also settles when the stream is destroyed (abort), where 'end' never comes.
  const finished = streamFinished(z);
  return { input: z, output: z, finished, kill: () => z.destroy() };
}

function programPipe(program: string): Pipe {
  const child: ChildProcessByStdio<Writable, Readable, Readable> = spawn(program, ['-c'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => { if (stderr.length < 2000) stderr += s; });
  // A dead compressor surfaces through `finished`; the stdin error (EPIPE) alone says less.
  child.stdin.on('error', () => undefined);
  const finished = new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${program} -c ${signal ? `was killed by ${signal}` : `exited ${code}`}${stderr.trim() ? `: ${stderr.trim().split('\n')[0]}` : ''}`));
    });
  });
  return { input: child.stdin, output: child.stdout, finished, kill: () => child.kill('SIGKILL') };
}

/**
 * A stream sink that compresses what it is given into `inner`, with back-pressure end to end: a
 * write resolves once the compressor has taken the bytes (the caller may then reuse its buffer),
 * and the compressor is not fed faster than `inner` accepts its output.
 */
export function compressingSink(inner: StreamSink, c: PostCompressor): StreamSink {
  const p = c.program ? programPipe(c.program) : zlibPipe(c.method);
  const what = c.program ? `${c.program} -c` : `${c.method} (in-process)`;
  let failure: LastwordError | undefined;
  const failWith = (err: unknown): LastwordError => {
    failure ??= err instanceof LastwordError ? err : new LastwordError('ETARGET_IO', `KDUMP_COMPRESSION ${what}: ${describeError(err)}`, { cause: err });
    return failure;
  };
  const pump = (async () => {
    for await (const chunk of p.output) await inner.write(chunk as Buffer);
  })().catch((err: unknown) => { failWith(err); p.kill(); });
  const done = p.finished.catch((err: unknown) => { failWith(err); });
  return {
    kind: 'stream',
    write: (buf) => new Promise<void>((resolve, reject) => {
      if (failure) { reject(failure); return; }
      p.input.write(buf, (err) => {
        if (!err && !failure) resolve();
        // A compressor that died says why in `finished`; the EPIPE of its input says less.
        else void done.then(() => reject(failWith(err ?? failure)));
      });
    }),
    async close() {
      if (failure) throw failure;
      p.input.end();
      await Promise.all([pump, done]);
      if (failure) throw failure;
      await inner.close();
    },
    async abort() {
      failWith(new Error('aborted'));
      p.kill();
      await Promise.allSettled([pump, done]);
      await inner.abort();
    },
  };
}
