// What the executable's SEA main (sea-main.ts) and its build (build.ts, train.ts) agree on: the
// assets that carry lastword's bundle and its code caches, and how the bundle is wrapped. V8
// accepts a cache only for the very source it was made from.

/** The bundle's asset; also the file name its stack frames show. */
export const SOURCE_ASSET = 'lastword.js';
/** Commands that run with a cache made after a training run of that command (train.ts). */
export const TRAINED_COMMANDS = ['save', 'filter'] as const;

/**
 * The cache asset for `command` (process.argv[2]): its trained cache, or the one made right after
 * compiling (the top level only, as Node's own SEA code cache) for every other command and for
 * PID 1. A trained cache holds every function its run called: V8 materializes all of it at start
 * (the save cache costs 1.8 MB of RSS, 1.6 ms), so a command only gets the one of its own path.
 */
export function cacheAsset(command: string | undefined): string {
  return (TRAINED_COMMANDS as readonly (string | undefined)[]).includes(command) ? `lastword-${command}.cache` : 'lastword.cache';
}

/**
 * Where the SEA main leaves the assets it read at start-up (the bundle's and the cache's raw
 * ArrayBuffers, views of the executable's mapping): globalThis[Symbol.for(STARTUP_ASSETS)]. The
 * native loader gives their pages back once the script is compiled (runtime/system/native-loader.ts).
 */
export const STARTUP_ASSETS = 'lastword.startupAssets';

/** The bundle as a function of CommonJS's five module variables, as Node wraps a module. */
export function wrapBundle(bundle: string): string {
  return `(function (exports, require, module, __filename, __dirname) {${bundle}\n})`;
}
