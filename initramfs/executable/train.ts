// The training runs behind the executable's code caches (sea-main.ts): `lastword save` of a small
// synthetic vmcore (64 pages with a real mem_section and struct pages of every kind the filter
// excludes) to a local directory, as a capture does, on one thread (the capture kernel usually has
// one CPU): the config, the target, opening the vmcore, the filter's setup and walk, the
// kdump-compressed writer, the progress lines and the summary; and `lastword filter -l -d 31` of
// the same vmcore. Functions a run does not reach (PID 1's own, other targets) are compiled on
// their first call, as without the cache. The cache of every other command is made right after
// compiling, before the script runs.
//
// It must give the same cache on every build, or the executable differs. V8 serializes what a run
// compiled in the order it compiled it, and that order varied: with V8's background threads (GC,
// compilation) and with the order in which `save`'s file operations complete (18 runs of `lastword
// filter` side by side with busy loops gave 5 different caches, same size, some bytes apart). So
// each trained cache is made again by a fresh process that consumes it and writes it back before
// running anything: two caches that differed came back the same bytes. `--predictable` (V8 on one
// thread) and one libuv thread make the runs themselves alike too; `--predictable` is not among the
// flags V8's cache check hashes, so the executable, which runs without it, accepts the caches
// (build.ts checks that it does).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PG, compound, writeMemMapVmcore, type PageSpec } from './synthetic-memmap.ts';
import { TRAINED_COMMANDS, cacheAsset } from './sea-assets.ts';

export interface TrainingRun {
  /** the pinned Node, and the executable's V8 flags (a cache made under other flags is rejected) */
  node: string;
  execArgv: readonly string[];
  /** the SEA main as a CommonJS file, and the wrapped bundle it runs */
  main: string;
  source: string;
  /** where the addons are (build/native), and the scratch directory */
  nativeDir: string;
  work: string;
}

/** Makes the executable's code caches in `run.work`; returns them by asset name (sea-assets.ts). */
export function trainCodeCaches(run: TrainingRun): Record<string, string> {
  const dir = path.join(run.work, 'training');
  fs.mkdirSync(path.join(dir, 'root', 'var', 'crash'), { recursive: true });
  const vmcore = path.join(dir, 'vmcore');
  const pages = new Map<number, PageSpec>();
  const bit = (b: number) => 1n << BigInt(b);
  pages.set(10, { flags: bit(PG.lru), mapping: 0xffff888000100000n });                                  // page cache
  pages.set(11, { flags: bit(PG.lru) | bit(PG.private), mapping: 0xffff888000100000n });                // private cache
  pages.set(12, { flags: bit(PG.lru) | bit(PG.swapbacked), mapping: 0xffff888000100001n });             // anonymous
  pages.set(13, { mapcount: -129, private: 2n });                                                        // free (buddy, order 2)
  pages.set(20, { flags: bit(PG.hwpoison) });
  pages.set(21, { mapcount: -257 });                                                                     // offline
  compound(pages, 32, 3, { flags: bit(PG.slab) });
  writeMemMapVmcore(vmcore, pages);
  const conf = path.join(dir, 'kdump.conf');
  fs.writeFileSync(conf, 'path /var/crash\ncore_collector makedumpfile -l -d 31 --num-threads 0\n');

  const runs: Record<(typeof TRAINED_COMMANDS)[number], string[]> = {
    // --cmdline '': not the build machine's kernel command line, which may carry lastword.* options.
    save: ['save', '--config', conf, '--cmdline', '', '--root', path.join(dir, 'root'), vmcore],
    filter: ['filter', '-l', '-d', '31', '--num-threads', '0', '--message-level', '0', vmcore, path.join(dir, 'dump')],
  };
  const caches: Record<string, string> = {};
  const train = (args: string[], cache: string, when: 'compile' | 'exit', from?: string) => {
    const env = {
      ...process.env, UV_THREADPOOL_SIZE: '1', LASTWORD_NATIVE_DIR: run.nativeDir,
      LASTWORD_TRAIN_SOURCE: run.source, LASTWORD_TRAIN_CACHE: cache, LASTWORD_TRAIN_WHEN: when, LASTWORD_TRAIN_FROM: from ?? '',
    };
    const r = spawnSync(run.node, [...run.execArgv, '--predictable', run.main, ...args], { env, encoding: 'utf8' });
    if (r.status !== 0 || !fs.existsSync(cache)) {
      throw new Error(`the code cache's training run (lastword ${args.join(' ')}) failed (${r.error?.message ?? r.signal ?? r.status}):\n${r.stderr}`);
    }
  };
  const top = caches[cacheAsset(undefined)] = path.join(run.work, cacheAsset(undefined));
  train(['--version'], top, 'compile');
  for (const command of TRAINED_COMMANDS) {
    const asset = cacheAsset(command);
    const raw = path.join(dir, asset);
    train(runs[command], raw, 'exit');
    train(['--version'], caches[asset] = path.join(run.work, asset), 'compile', raw);      // in a canonical order
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return caches;
}
