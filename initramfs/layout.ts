// How the manifest becomes an image. Layouts:
//   plain     /init is the lastword executable. Simple; but every byte of it stays in rootfs
//             (tmpfs/ramfs pages cannot be evicted), so it pins its full unpacked size.
//   squashfs  the executable lives in /usr/lib/lastword/lastword.squashfs (zstd), which a busybox /init
//   erofs     mounts through a loop device before it execs lastword as PID 1. Only the compressed
//             image is pinned; the executable's pages are page cache of a read-only filesystem
//             and the kernel can drop them under memory pressure and read them back.
// Every layout finishes with depmod -b over the shipped modules, so modprobe finds them.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LastwordError } from '../runtime/errors.ts';
import { FINAL_ACTIONS, type FinalAction } from '../runtime/config/plan.ts';
import { addEntry, orderedEntries, type Manifest } from './image.ts';
import type { CpioEntry } from './cpio.ts';
import { moduleNameOfPath } from './modules.ts';
import { imageDiskModules, type ImageLayout } from './needs.ts';
import { placeImage, type ImageDisk } from './image-disk.ts';

function run(file: string, args: string[], what: string): void {
  const r = spawnSync(file, args, { encoding: 'utf8', maxBuffer: 16 << 20 });
  if (r.error) throw new LastwordError('EIMAGE_TOOL', `${what}: cannot run ${file}: ${r.error.message}`);
  if (r.status !== 0) throw new LastwordError('EIMAGE_TOOL', `${what}: ${file} exited ${r.status}: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' / ')}`);
}

/** Runs depmod -b over the shipped modules (symlinked from the host) and adds its index files. */
export function addModuleIndexes(m: Manifest, kernelVersion: string, work: string): void {
  const kdir = `/usr/lib/modules/${kernelVersion}`;
  const base = path.join(work, 'depmod');
  const dst = path.join(base, 'lib', 'modules', kernelVersion);
  fs.mkdirSync(dst, { recursive: true });
  for (const e of m.values()) {
    if (!e.path.startsWith(kdir + '/') || e.type !== 'file') continue;
    const p = path.join(dst, e.path.slice(kdir.length + 1));
    fs.mkdirSync(path.dirname(p), { recursive: true });
    if ('source' in e) fs.symlinkSync(e.source, p);
    else if (/\.ko\.(xz|zst|gz)$/.test(p)) fs.writeFileSync(p, e.data);      // a module compressed for the image
  }
  run('depmod', ['-b', base, kernelVersion], 'depmod');
  for (const f of fs.readdirSync(dst).sort()) {
    if (!f.startsWith('modules.') || m.has(`${kdir}/${f}`)) continue;
    addEntry(m, { path: `${kdir}/${f}`, type: 'file', mode: 0o644, data: fs.readFileSync(path.join(dst, f)) });
  }
}

/** Where /init mounts the filesystem holding the image, with `--image-on` (image-disk.ts). */
export const DISK_AT = '/usr/lib/lastword/disk';
/** How long /init waits for that disk, in tenths of a second: the capture kernel probes its disks late under reset_devices. */
const DISK_WAIT_TENTHS = 600;

/** The disk /init mounts before the image (`--image-on`): findfs spec, type, options, and the modaliases of its drivers. */
export type InitDisk = Pick<ImageDisk, 'device' | 'fstype' | 'options' | 'modaliases'>;

/**
 * The busybox /init of the squashfs and erofs layouts. It stays a shell only until the exec. When
 * the image does not mount (a missing module, a damaged image) or lastword cannot be executed from
 * it, nothing in the initramfs can save the dump; /init then takes the failure action (the config's,
 * or lastword.failure_action= on the command line, as lastword itself would) instead of waiting in
 * a shell nobody may be watching. PID 1 must never exit (the kernel panics when it does): a failed
 * exec ends a busybox shell even when interactive, so the EXIT trap takes the failure action too,
 * and the rescue shell (failure action shell, or a reboot that returned) is started again whenever
 * it ends.
 */
export function mountingInit(layout: 'squashfs' | 'erofs', imageAt: string, mountAt: string, onFailure: FinalAction = 'reboot', earlyModules?: readonly string[], disk?: InitDisk): string {
  // kmod's modprobe by path honours softdeps (erofs needs libcrc32c, which needs crc32c) and the
  // blacklist in /etc/modprobe.d; busybox insmod of the modules in the order the builder worked
  // out needs no shared library, so an own image keeps kmod and every library in the read-only image.
  // An early module's file is removed once insmod tried it: rootfs would pin it for the whole
  // capture (the disk's filesystem and drivers are MBs), and kmod's modprobe does not read the file
  // of a module that is loaded already (/sys/module). One that failed would fail again.
  const load = earlyModules
    ? earlyModules.map((ko) => `$bb insmod ${ko}\n$bb rm -f ${ko}`).join('\n') || '# loop and the filesystem are built into the kernel'
    : `/usr/sbin/modprobe -qa ${['loop', layout, ...(disk ? imageDiskModules(disk) : [])].join(' ')}`;
  // The disk holding the image: its driver may still be probing when insmod returns, so /init
  // waits for the UUID to show up (busybox findfs reads the superblocks, no udev here).
  const mountDisk = disk ? `dev=
tries=0
until dev=$($bb findfs ${disk.device} 2>/dev/null); do
    tries=$((tries + 1))
    [ $tries -ge ${DISK_WAIT_TENTHS} ] && fail "no disk with ${disk.device} (${disk.fstype}, holding the image) after ${DISK_WAIT_TENTHS / 10} s"
    $bb sleep 0.1
done
$bb mkdir -p ${DISK_AT}
$bb mount -t ${disk.fstype} -o ${disk.options} "$dev" ${DISK_AT} || fail "cannot mount $dev (${disk.device}, ${disk.fstype}) -o ${disk.options}"
` : '';
  return `#!/usr/bin/busybox sh
# lastword capture initramfs, layout ${layout}: the lastword executable is in ${imageAt}, a
# compressed read-only image, so its pages can be evicted. Mount it, then exec lastword as PID 1.
# Every tool by path: in a tree dracut or mkinitramfs filled, sh, mount and reboot may be others'
# (bash, util-linux, systemd's reboot, which needs a running systemd).
export PATH=/usr/sbin:/usr/bin
bb=/usr/bin/busybox
fail() {
    [ -e /proc/cmdline ] || $bb mount -t proc proc /proc
    [ -e /dev/null ] || $bb mount -t devtmpfs devtmpfs /dev
    action=${onFailure}
    for word in $($bb cat /proc/cmdline); do
        case "$word" in
            ${FINAL_ACTIONS.map((a) => `lastword.failure_action=${a}`).join('|')}) action="\${word#*=}" ;;
        esac
    done
    echo "lastword: $1: lastword cannot run, no dump is saved; failure action $action" > /dev/console
    case "$action" in
        poweroff) $bb poweroff -f ;;
        halt) $bb halt -f ;;
        reboot) $bb reboot -f ;;
    esac
    # PID 1 must not exit: when the shell ends, another one starts.
    while :; do
        $bb sh -i < /dev/console > /dev/console 2>&1
        echo "lastword: the shell ended; PID 1 starts another ($bb reboot -f or poweroff -f to leave)" > /dev/console
        $bb sleep 2
    done
}
# Reached only when the exec of lastword below failed (not found, no memory): ash exits then.
trap 'fail "cannot execute ${mountAt}/lastword"' EXIT
$bb mount -t proc proc /proc
$bb mount -t devtmpfs devtmpfs /dev
${load}
${mountDisk}$bb mount -t ${layout} -o ro,loop ${imageAt} ${mountAt} || fail "cannot mount ${imageAt} (${layout})"
# lastword mounts /proc and /dev itself as PID 1; /init keeps them only while it may still need them.
$bb umount /proc
$bb umount /dev 2>/dev/null || $bb umount -l /dev
exec ${mountAt}/lastword "$@"
`;
}

/**
 * How the read-only image is compressed. zstd -9 with 256 KiB blocks (default) makes the ~110 MB
 * executable a 28 MB squashfs in seconds (40 MB before its ICU data was trimmed). xz with the x86 BCJ
 * filter and 1 MiB blocks makes it 21 MB (7 MB less at the unpack peak, where the image is held
 * twice), but every refault of an
 * evicted page of the executable then decompresses a 1 MiB xz block: in the footprint cycle at
 * crashkernel=208M, where zstd works, lastword stalled while saving. Images are cached by the
 * executable's hash (imageCacheDir), so a slow build is paid once.
 */
export type ImageCompression = 'xz' | 'zstd';
export const DEFAULT_IMAGE_COMPRESSION: ImageCompression = 'zstd';
/** squashfs zstd level 9: ~6 s for the ~110 MB executable; 15 saves ~3 MB more for ~15x the time. */
export const DEFAULT_IMAGE_LEVEL = 9;

export interface ReadOnlyImageOptions {
  compression?: ImageCompression;
  /** /init's action when the image does not mount (default reboot) */
  onMountFailure?: FinalAction;
  /** zstd level (squashfs), lz4hc level (erofs) */
  level?: number;
  /**
   * lastword's own image (image.ts ownImage): /init loads these modules with busybox insmod, and
   * every program and shared library but busybox moves into the read-only image, a symlink to it
   * staying at its path. rootfs pins what it holds uncompressed (~11 MB of libraries: libcrypto,
   * which kmod links, libstdc++, libc...); in the image they are compressed and their pages
   * evictable. Undefined: /init loads them with kmod's modprobe from rootfs (a dracut or mkinitramfs tree).
   */
  earlyModules?: readonly string[];
  /**
   * `--image-on`: the image is written to this file on a disk of this machine, not into the
   * initramfs, and /init mounts that disk first (image-disk.ts).
   */
  disk?: ImageDisk;
}

/** Built images are kept here, by executable hash and options: LASTWORD_IMAGE_CACHE, default /var/cache/lastword/images ('' turns it off). */
export function imageCacheDir(): string | undefined {
  const dir = process.env.LASTWORD_IMAGE_CACHE ?? '/var/cache/lastword/images';
  return dir === '' ? undefined : dir;
}

const MOUNT_AT = '/usr/lib/lastword/ro';

/** A program or shared library that moves into the read-only image: its path, mode and bytes. */
interface ImageProgram { path: string; mode: number; bytes: Buffer }

/**
 * The manifest's programs and shared libraries that can live in the read-only image: ELF files but
 * busybox (/init runs it before the mount) and kernel modules.
 */
function imageablePrograms(m: Manifest): ImageProgram[] {
  const out: ImageProgram[] = [];
  for (const e of m.values()) {
    if (e.type !== 'file' || e.path === '/init' || e.path === '/usr/bin/busybox' || e.path.startsWith('/usr/lib/modules/')) continue;
    const bytes = 'source' in e ? fs.readFileSync(e.source) : Buffer.from(e.data);
    if (bytes.subarray(0, 4).toString('latin1') === '\x7fELF') out.push({ path: e.path, mode: e.mode ?? 0o755, bytes });
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : 1));
}

/** Puts the executable into a squashfs or erofs image and /init becomes the mounting script. */
export function addReadOnlyImage(m: Manifest, layout: 'squashfs' | 'erofs', executable: string, work: string, opts: ReadOnlyImageOptions = {}): void {
  const level = opts.level ?? DEFAULT_IMAGE_LEVEL;
  const compression = opts.compression ?? DEFAULT_IMAGE_COMPRESSION;
  // Same input -> same bytes: fixed times, root owner, no xattrs (mksquashfs 4.5 is reproducible by default).
  const [tool, args] = layout === 'squashfs'
    ? ['mksquashfs', ['-noappend', ...(compression === 'xz' ? ['-comp', 'xz', '-Xbcj', 'x86', '-b', '1M'] : ['-comp', 'zstd', '-Xcompression-level', String(level), '-b', '256K']),
      '-all-root', '-no-xattrs', '-mkfs-time', '0', '-all-time', '0', '-quiet', '-no-progress']]
    : ['mkfs.erofs', [`-zlz4hc,${Math.min(12, Math.max(1, level))}`, '-T0', '-U', '00000000-0000-0000-0000-000000000000', '--all-root', '-x-1', '--quiet']];
  const programs = opts.earlyModules ? imageablePrograms(m) : [];
  const img = cachedImage(executable, `${tool} ${args.join(' ')}`, programs, path.join(work, `lastword.${layout}`), (out) => {
    // the ~110 MB copy is only made when the image is really built, not for a cached one
    const stage = path.join(work, 'ro');
    fs.mkdirSync(stage, { recursive: true });
    const place = (at: string, mode: number, write: (file: string) => void) => {
      const file = path.join(stage, at);
      // Same bytes on any umask: every directory 0755.
      for (let d = path.dirname(file); d.length > stage.length && !fs.existsSync(d); d = path.dirname(d)) {
        fs.mkdirSync(d, { recursive: true });
        fs.chmodSync(d, 0o755);
      }
      write(file);
      fs.chmodSync(file, mode);
    };
    place('lastword', 0o755, (file) => fs.copyFileSync(executable, file));
    for (const p of programs) place(p.path.slice(1), p.mode, (file) => fs.writeFileSync(file, p.bytes));
    if (tool === 'mksquashfs') run(tool, [stage, out, ...args], tool);
    else run(tool, [...args, out, stage], tool);
  });
  // Relative, so an unpacked tree resolves them too (into its own ro/, not the build host's).
  for (const p of programs) m.set(p.path, { type: 'symlink', path: p.path, target: path.posix.relative(path.posix.dirname(p.path), `${MOUNT_AT}${p.path}`) });
  let imageAt = `/usr/lib/lastword/lastword.${layout}`;
  if (opts.disk) {
    placeImage(img, opts.disk);
    imageAt = path.posix.join(DISK_AT, opts.disk.pathInFs);
  } else {
    addEntry(m, { path: imageAt, type: 'file', mode: 0o644, source: img });
  }
  addEntry(m, { path: '/init', type: 'file', mode: 0o755, data: Buffer.from(mountingInit(layout, imageAt, MOUNT_AT, opts.onMountFailure, opts.earlyModules, opts.disk)) });
}

/** sha256 of the command, the programs beside the executable, and the executable's bytes, read in 1 MiB pieces (it is ~110 MB). */
function imageKey(executable: string, command: string, programs: readonly ImageProgram[]): string {
  const h = createHash('sha256').update(command).update('\0');
  for (const p of programs) h.update(`${p.path}\0${p.mode}\0${p.bytes.length}\0`).update(p.bytes);
  const buf = Buffer.allocUnsafe(1 << 20);
  const fd = fs.openSync(executable, 'r');
  try {
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex').slice(0, 32);
}

/** The image for (executable bytes, tool command, programs): from the cache when there, else built (into the cache when writable). */
function cachedImage(executable: string, command: string, programs: readonly ImageProgram[], fallback: string, build: (out: string) => void): string {
  const dir = imageCacheDir();
  if (dir === undefined) { build(fallback); return fallback; }
  const file = path.join(dir, `${imageKey(executable, command, programs)}.img`);
  if (fs.existsSync(file)) return file;
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.W_OK); // e.g. /var/cache for a user who is not root
  } catch {
    build(fallback);
    return fallback;
  }
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    build(tmp);
    fs.renameSync(tmp, file); // atomic: a concurrent build of the same image writes the same bytes
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  return file;
}

export interface LayoutWork {
  dir: string;
  cleanup(): void;
}

export function layoutWork(): LayoutWork {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-initramfs-'));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Finishes the manifest for a layout: module indexes, and the read-only image when asked. */
export function finishLayout(m: Manifest, layout: ImageLayout, kernelVersion: string, executable: string, work: string, image: ReadOnlyImageOptions = {}): void {
  addModuleIndexes(m, kernelVersion, work);
  if (layout !== 'plain') addReadOnlyImage(m, layout, executable, work, image);
}

/**
 * Writes the manifest into a directory another generator fills (dracut $initdir, mkinitramfs
 * $DESTDIR). Their own /init is replaced; busybox applets and device nodes they already made stay.
 */
export function writeIntoDirectory(m: Manifest, dest: string): void {
  for (const e of orderedEntries(m)) {
    const p = path.join(dest, e.path);
    const exists = fs.existsSync(p) || isSymlink(p);
    if (e.type === 'dir') {
      if (!exists) fs.mkdirSync(p, { mode: e.mode ?? 0o755 });
    } else if (e.type === 'symlink') {
      if (!exists) fs.symlinkSync(e.target, p);
    } else if (e.type === 'char' || e.type === 'block') {
      if (!exists) run('mknod', ['-m', (e.mode ?? 0o600).toString(8), p, e.type === 'char' ? 'c' : 'b', String(e.major), String(e.minor)], 'mknod');
    } else {
      // The generator's own copy of a library stays (it keeps the soname symlinks ldconfig wants);
      // /init and anything that differs is replaced.
      if (exists && e.path !== '/init' && sameSize(p, e)) continue;
      if (exists) fs.rmSync(p, { force: true });
      if ('source' in e) fs.copyFileSync(e.source, p);
      else if ('data' in e) fs.writeFileSync(p, e.data);
      fs.chmodSync(p, e.mode ?? 0o644);
    }
  }
}

function sameSize(p: string, e: CpioEntry): boolean {
  try {
    const have = fs.statSync(p).size;
    if (e.type !== 'file') return false;
    if ('source' in e) return have === fs.statSync(e.source).size;
    const data = Buffer.from(e.data);
    return have === data.length && fs.readFileSync(p).equals(data);
  } catch { return false; }
}

function isSymlink(p: string): boolean {
  try { return fs.lstatSync(p).isSymbolicLink(); } catch { return false; }
}

/**
 * Removes blacklisted modules another generator's hooks copied into `dest` (mkinitramfs
 * MODULES=most, dracut's kernel-modules): a blacklisted module must not be in the image at all.
 */
export function pruneBlacklisted(dest: string, kernelVersion: string, blacklist: ReadonlyMap<string, string>): string[] {
  const removed: string[] = [];
  const walk = (dir: string) => {
    let entries: fs.Dirent[];
    try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ko(\.(xz|zst|gz))?$/.test(e.name) && blacklist.has(moduleNameOfPath(e.name))) {
        fs.rmSync(p);
        removed.push(path.relative(dest, p));
      }
    }
  };
  walk(path.join(dest, 'usr', 'lib', 'modules', kernelVersion));
  if (!isSymlink(path.join(dest, 'lib'))) walk(path.join(dest, 'lib', 'modules', kernelVersion));
  return removed.sort();
}
