// The executable's SEA main: runs lastword's bundle (the asset `lastword.js`) with a V8 code cache
// made at build time. Node's own SEA code cache holds only what V8 compiles before the script runs
// (the top level), so every function of the capture path was compiled on its first call: under TCG
// that cost ~0.3 s of a 1 GiB capture. `save` and `filter` get a cache made after a training run of
// themselves (train.ts); other commands and PID 1 the top-level one (sea-assets.ts).
//
// Outside the executable (train.ts runs it with the pinned Node and the executable's V8 flags), it
// is the training run: it reads the bundle from LASTWORD_TRAIN_SOURCE, runs the command line given,
// and writes the code cache to LASTWORD_TRAIN_CACHE: at exit, or with LASTWORD_TRAIN_WHEN=compile
// right after compiling (with the cache LASTWORD_TRAIN_FROM, if given, consumed first).
import * as fs from 'node:fs';
import * as sea from 'node:sea';
import * as vm from 'node:vm';
import { SOURCE_ASSET, STARTUP_ASSETS, cacheAsset } from './sea-assets.ts';

function main(): void {
  const training = !sea.isSea();
  // esbuild writes ASCII (its default charset): latin1 straight from the asset's mapping makes the
  // one-byte string V8 keeps, without getAsset's copy (0.4 MB of RSS).
  const raw = training ? undefined : sea.getRawAsset(SOURCE_ASSET) as ArrayBuffer;
  const source = raw ? Buffer.from(raw).toString('latin1') : fs.readFileSync(process.env.LASTWORD_TRAIN_SOURCE!, 'latin1');
  // PID 1 runs the init shell whatever its arguments (main.ts).
  const command = process.pid === 1 ? undefined : process.argv[2];
  const from = process.env.LASTWORD_TRAIN_FROM;
  const rawCache = training ? undefined : sea.getRawAsset(cacheAsset(command)) as ArrayBuffer;
  const cachedData = rawCache ? Buffer.from(rawCache) : from ? fs.readFileSync(from) : undefined;
  const script = new vm.Script(source, { filename: SOURCE_ASSET, cachedData });
  // Both are copied now (the source into a string, the cache into V8's heap): their pages of the
  // executable are given back when the first addon loads (runtime/system/native-loader.ts).
  if (raw && rawCache) (globalThis as Record<symbol, ArrayBuffer[]>)[Symbol.for(STARTUP_ASSETS)] = [raw, rawCache];
  if (cachedData && script.cachedDataRejected) {
    if (training) throw new Error(`V8 rejected the code cache ${from}`);
    // In the executable (V8 flags or version other than the build's) it only costs time: say so once.
    process.stderr.write('lastword: warning: V8 rejected the executable\'s code cache (built for other V8 flags?); compiling as it runs\n');
  }
  if (training) {
    const out = process.env.LASTWORD_TRAIN_CACHE!;
    if (process.env.LASTWORD_TRAIN_WHEN === 'compile') fs.writeFileSync(out, script.createCachedData());
    else process.once('exit', () => fs.writeFileSync(out, script.createCachedData()));
  }
  const mod = { exports: {} };
  (script.runInThisContext() as (...args: unknown[]) => void)(mod.exports, require, mod, __filename, __dirname);
}

main();
