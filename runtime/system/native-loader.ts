// Loads a native addon of lastword. In the single executable the addon is a SEA asset that is
// written to a tmpfs (or any writable directory) and loaded with process.dlopen; in a checkout it
// is build/native/<name>.node, built by `npm run build:native` against the pinned Node's headers.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as sea from 'node:sea';
import { LastwordError } from '../errors.ts';
import { STARTUP_ASSETS } from '../../initramfs/executable/sea-assets.ts';

const loaded = new Map<string, unknown>();
const loadedFiles = new Map<string, string>();

/** Directories tried, in order, for extracting an embedded addon. /run and /tmp are tmpfs in the capture initramfs. */
const EXTRACT_DIRS = ['/run/lastword', path.join(os.tmpdir(), `lastword-${process.pid}`), '/dev/shm/lastword'];

export function repoRoot(): string {
  // Only used outside the single executable, where import.meta.dirname is runtime/system.
  const here = import.meta.dirname;
  if (!here) throw new LastwordError('ENATIVE_MISSING', 'cannot locate the source tree (not running from a checkout)');
  return path.resolve(here, '..', '..');
}

export function nativeAddonPath(name: string): string {
  return process.env.LASTWORD_NATIVE_DIR
    ? path.join(process.env.LASTWORD_NATIVE_DIR, `${name}.node`)
    : path.join(repoRoot(), 'build', 'native', `${name}.node`);
}

export function loadNative<T>(name: string): T {
  const hit = loaded.get(name);
  if (hit) return hit as T;
  let file: string;
  let raw: ArrayBuffer | undefined;
  if (sea.isSea()) {
    raw = sea.getRawAsset(`${name}.node`) as ArrayBuffer;
    file = extractAddon(name, Buffer.from(raw));
  } else {
    file = nativeAddonPath(name);
    if (!fs.existsSync(file)) {
      throw new LastwordError('ENATIVE_MISSING', `native addon ${file} is missing: run npm run build:native`);
    }
  }
  const mod = { exports: {} as T };
  try {
    process.dlopen(mod, file, os.constants.dlopen.RTLD_NOW);
  } catch (err) {
    throw new LastwordError('ENATIVE_LOAD', `cannot load native addon ${file}: ${(err as Error).message}`, { cause: err });
  }
  loaded.set(name, mod.exports);
  loadedFiles.set(name, file);
  if (raw) giveBackStartupPages(raw);
  return mod.exports;
}

/**
 * Gives back the pages of the executable that were read once at start-up and are copied by now:
 * the bundle and its code cache (the SEA main's, see sea-assets.ts STARTUP_ASSETS) and `asset`,
 * an addon's image just written out. ~1.5-2 MB of RSS for the rest of the run (the capture's PID 1
 * and its child each), and the capture kernel can reclaim those pages of its squashfs.
 */
function giveBackStartupPages(asset: ArrayBuffer): void {
  const key = Symbol.for(STARTUP_ASSETS);
  const g = globalThis as Record<symbol, ArrayBuffer[] | undefined>;
  const pending = [...(g[key] ?? []), asset];
  g[key] = undefined;
  try {
    const drop = loadNative<{ dropFilePages(ab: ArrayBuffer): number }>('system').dropFilePages;
    for (const ab of pending) startupPagesGivenBack += drop(ab);
  } catch {
    // an addon built before dropFilePages, or no system addon: the pages just stay
  }
}

/** Bytes of start-up pages given back so far (lastword --version --verbose shows it). */
export let startupPagesGivenBack = 0;

/** The file a loaded addon came from (the extracted copy in the executable): worker threads dlopen it too. */
export function loadedNativeFile(name: string): string {
  const file = loadedFiles.get(name);
  if (!file) throw new LastwordError('ENATIVE_MISSING', `native addon ${name} is not loaded yet`);
  return file;
}

/**
 * Writes an embedded addon to the first writable directory of `dirs` and returns its path. A file
 * there with the same bytes (an earlier run, or PID 1 for its capture child) is used as it is:
 * writing it again cost each `lastword filter` run ~1 ms per addon (strace), and tmpfs churn.
 */
export function extractAddon(name: string, blob: Buffer, dirs: readonly string[] = EXTRACT_DIRS): string {
  const errors: string[] = [];
  for (const dir of dirs) {
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      const file = path.join(dir, `${name}.node`);
      if (sameBytes(file, blob)) return file;
      // write then rename: another lastword process (PID 1 and its capture child share /run)
      // may have the old file mapped, and truncating a mapped library would crash it
      const tmp = `${file}.${process.pid}`;
      fs.writeFileSync(tmp, blob, { mode: 0o500 });
      fs.renameSync(tmp, file);
      return file;
    } catch (err) {
      errors.push(`${dir}: ${(err as Error).message}`);
    }
  }
  throw new LastwordError('ENATIVE_EXTRACT', `no writable directory for the ${name} addon (${errors.join('; ')})`);
}

function sameBytes(file: string, blob: Buffer): boolean {
  try {
    const st = fs.statSync(file);
    return st.isFile() && st.size === blob.length && fs.readFileSync(file).equals(blob);
  } catch {
    return false;
  }
}
