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

/**
 * Directories tried, in order, for extracting an embedded addon. /run is tmpfs in the capture
 * initramfs. A directory whose files cannot be mapped executable is passed over: on a system
 * booted by initramfs-tools (Debian's, and the capture kernel kdump-tools boots) /run is mounted
 * noexec, hardened systems mount /dev/shm and /tmp so too; /var/lib/lastword (the root filesystem,
 * where the kdump-tools hook keeps lastword's image) comes last. Root and other users have their
 * own directories; one inside a directory anybody can write to (/dev/shm, /tmp) is used only when
 * the user alone owns it (see writeAddon).
 */
const uid = process.getuid?.() ?? 0;
const EXTRACT_DIRS = uid === 0
  ? ['/run/lastword', '/dev/shm/lastword', path.join(os.tmpdir(), 'lastword-0'), '/var/lib/lastword/addons']
  : [`/run/user/${uid}/lastword`, `/dev/shm/lastword-${uid}`, path.join(os.tmpdir(), `lastword-${uid}`)];

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
  let loadedFrom: { file: string; exports: T };
  let raw: ArrayBuffer | undefined;
  if (sea.isSea()) {
    raw = sea.getRawAsset(`${name}.node`) as ArrayBuffer;
    loadedFrom = loadEmbedded<T>(name, Buffer.from(raw), EXTRACT_DIRS);
  } else {
    const file = nativeAddonPath(name);
    if (!fs.existsSync(file)) {
      throw new LastwordError('ENATIVE_MISSING', `native addon ${file} is missing: run npm run build:native`);
    }
    try {
      loadedFrom = { file, exports: dlopen<T>(file) };
    } catch (err) {
      throw new LastwordError('ENATIVE_LOAD', `cannot load native addon ${file}: ${(err as Error).message}`, { cause: err });
    }
  }
  loaded.set(name, loadedFrom.exports);
  loadedFiles.set(name, loadedFrom.file);
  if (raw) giveBackStartupPages(raw);
  return loadedFrom.exports;
}

function dlopen<T>(file: string): T {
  const mod = { exports: {} as T };
  process.dlopen(mod, file, os.constants.dlopen.RTLD_NOW);
  return mod.exports;
}

/**
 * Writes an embedded addon out (writeAddon) and loads it, directory after directory of `dirs`
 * until one works: a directory on a noexec mount takes the file but cannot map it ("failed to map
 * segment from shared object"). The error names every directory tried and why it failed.
 */
export function loadEmbedded<T>(name: string, blob: Buffer, dirs: readonly string[]): { file: string; exports: T } {
  const errors: string[] = [];
  for (const dir of dirs) {
    let file: string;
    try {
      file = writeAddon(name, blob, dir);
    } catch (err) {
      errors.push(`${dir}: ${(err as Error).message}`);
      continue;
    }
    try {
      return { file, exports: dlopen<T>(file) };
    } catch (err) {
      errors.push(`${file}: ${(err as Error).message}`);
    }
  }
  throw new LastwordError('ENATIVE_LOAD', `cannot load native addon ${name} (${errors.join('; ')})`);
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
 * Writes an embedded addon into `dir` and returns its path. A file there with the same bytes (an
 * earlier run, or PID 1 for its capture child) is used as it is: writing it again cost each
 * `lastword filter` run ~1 ms per addon (strace), and tmpfs churn.
 */
export function writeAddon(name: string, blob: Buffer, dir: string): string {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // In a directory everyone can write to (/dev/shm, /tmp) ours may have been made by someone else,
  // or be a link to theirs, holding their library under our addon's name.
  if (fs.statSync(path.dirname(dir)).mode & 0o002) {
    const st = fs.lstatSync(dir);
    if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
      throw new Error(`not this user's own directory (${st.isDirectory() ? `uid ${st.uid}, mode ${(st.mode & 0o777).toString(8)}` : 'a link or a file'})`);
    }
  }
  const file = path.join(dir, `${name}.node`);
  if (sameBytes(file, blob)) return file;
  // write then rename: another lastword process (PID 1 and its capture child share /run)
  // may have the old file mapped, and truncating a mapped library would crash it
  const tmp = `${file}.${process.pid}`;
  fs.writeFileSync(tmp, blob, { mode: 0o500 });
  fs.renameSync(tmp, file);
  return file;
}

function sameBytes(file: string, blob: Buffer): boolean {
  try {
    const st = fs.statSync(file);
    return st.isFile() && st.size === blob.length && fs.readFileSync(file).equals(blob);
  } catch {
    return false;
  }
}
