// The contents of a lastword capture initramfs, as a manifest (path -> entry), from the plan and
// the host: the executable, its libraries, busybox and its applets, kmod's modprobe, the modules
// the target needs minus every blacklisted one, the configs, the SSH key and known_hosts. The
// manifest is then written as one cpio (initramfs/newc.ts), or into a directory another initramfs
// generator is filling (dracut's $initdir, mkinitramfs' $DESTDIR): see initramfs/layout.ts.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { needsNetwork, planTargets, sourceAt, type FencePlan, type Plan, type SourceRef } from '../runtime/config/plan.ts';
import { findProgram, postCompressionInProcess } from '../runtime/dumpfile/post-compression.ts';
import { HOST_NETWORK_FILE } from '../runtime/config/load.ts';
import { LastwordError } from '../runtime/errors.ts';
import { modprobeBlacklistConf, readShippedBlacklists, resolveBlacklist, shippedBlacklistDirs } from '../runtime/modules/blacklist.ts';
import { formatLeftOut, LEFT_OUT_FILE } from '../runtime/modules/load.ts';
import { CODEC_FLAG, codecsAddon, LIBRARY_CODECS, type CodecName } from '../runtime/codecs/codec.ts';
import { findLibrary, resolveLibraries } from './libraries.ts';
import { loadOrder, parseModuleIndex, selectModules, normalizeModuleName, type ModuleIndex, type ModuleSelection } from './modules.ts';
import { imageDiskModules, layoutModules, moduleRequests, type HostModaliases, type ImageLayout } from './needs.ts';
import type { CpioEntry } from './cpio.ts';

export type Manifest = Map<string, CpioEntry>;

export interface ImageInputs {
  kernelVersion: string;
  /** /lib/modules of the capture kernel's modules (default /lib/modules) */
  modulesRoot: string;
  /** the lastword executable to ship */
  executable: string;
  plan: Plan;
  /** the system root the configs and the files they name were read from (--root) */
  root: string;
  /** config files: image path -> host path */
  configs: Array<{ at: string; source: string }>;
  /** known_hosts to ship instead of the plan's (--known-hosts) */
  knownHosts?: string;
  layout: ImageLayout;
  host: HostModaliases;
  busybox: string;
  kmod: string;
  /** mount.nfs of the build host (Debian's nfs-common), shipped for an NFS target; /usr/sbin/mount.nfs by default */
  mountNfs?: string;
  /** the build host's /etc, for the files libtirpc reads at run time (netconfig); /etc by default */
  hostEtc?: string;
  /**
   * lastword's own cpio (-o), not files for a tree dracut or mkinitramfs fills (--into), which gets
   * the modules as the host has them and keeps its generator's /init tools. rootfs pins every byte
   * it unpacks for the whole capture, so the own image ships:
   * - the modules zstd-compressed (.ko.zst) when the shipped kmod reads them (~5.6 -> ~1.3 MB);
   * - with a read-only layout, the modules that mount it uncompressed (earlyModules), for busybox
   *   insmod: then no program of /init needs a shared library, and layout.ts moves the programs
   *   and libraries into the compressed image.
   */
  ownImage?: boolean;
  /** HOST_NETWORK_FILE's text: the build host's route to the capture's hosts (network/host-config.ts) */
  hostNetwork?: string;
  /** `--image-on`: the disk /init mounts the image from, its filesystem type and modaliases (image-disk.ts) */
  imageDisk?: { fstype: string; modaliases: readonly string[] };
}

export interface ImageContents {
  manifest: Manifest;
  modules: ModuleSelection;
  /** where the executable sits in the image ('/init' for plain) */
  executableAt: string;
  /**
   * ownImage with a read-only layout: the modules /init loads with busybox insmod to mount it, in
   * load order (image paths; none when they are built in). Undefined otherwise.
   */
  earlyModules?: string[];
  /** Codecs whose library the build host lacks: a capture configured for one writes zlib instead. */
  codecsWithoutLibrary: Array<{ codec: CodecName; library: string }>;
}

/** Adds `p` and every missing parent directory. */
export function addDir(m: Manifest, p: string, mode = 0o755): void {
  const parts = p.split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const d = '/' + parts.slice(0, i).join('/');
    if (!m.has(d)) m.set(d, { path: d, type: 'dir', mode });
  }
}

/** Debian's usrmerge: /lib, /lib64, /bin and /sbin are symlinks into /usr in the image, as on the host. */
const MERGED = ['/lib', '/lib64', '/bin', '/sbin'];
export function usrMerged(p: string): string {
  for (const top of MERGED) if (p.startsWith(top + '/')) return '/usr' + p;
  return p;
}

export function addEntry(m: Manifest, e: CpioEntry): void {
  const at = MERGED.includes(e.path) ? e.path : usrMerged(e.path);
  addDir(m, path.posix.dirname(at));
  m.set(at, { ...e, path: at });
}

/** A host file at the same path inside the image; symlinks on the way are followed (Debian's /lib -> usr/lib). */
function addHostFile(m: Manifest, at: string, source: string, mode?: number): void {
  const st = fs.statSync(source);
  addEntry(m, { path: at, type: 'file', mode: mode ?? (st.mode & 0o7777), source });
}

/** A library at its soname, as a symlink to the real file when the host has it so (what ldconfig expects). */
function addLibrary(m: Manifest, lib: string, root = '/'): void {
  // `lib` as seen inside `root` (a sysroot for --root builds); its real file there, the same way
  const real = fs.realpathSync(path.join(root, lib));
  const realIn = root === '/' ? real : real.startsWith(path.resolve(root) + '/') ? real.slice(path.resolve(root).length) : lib;
  const at = usrMerged(lib);
  const realAt = usrMerged(realIn);
  addHostFile(m, realAt, real, 0o755);
  if (realAt !== at) addEntry(m, { path: at, type: 'symlink', target: path.posix.relative(path.posix.dirname(at), realAt) });
}

/**
 * A program the configs name (extra_bins, a kdump_pre/post/emergency hook) at its own path, with
 * what it needs to start, as dracut's inst does for kdumpctl: an ELF program's libraries and
 * interpreter, a script's #! interpreter (through `env NAME` too) when the image lacks it.
 */
function addConfigProgram(m: Manifest, at: string, root: string, what: string, src: SourceRef): void {
  const where = sourceAt(src);
  const file = path.join(root, at);
  let st: fs.Stats;
  try { st = fs.statSync(file); } catch {
    throw new LastwordError('EIMAGE_PROGRAM', `${what} ${at} (${where}) does not exist`, { where: { file: src.file, line: src.line } });
  }
  if (!st.isFile()) throw new LastwordError('EIMAGE_PROGRAM', `${what} ${at} (${where}) is not a file`, { where: { file: src.file, line: src.line } });
  addHostFile(m, at, file);
  const head = Buffer.alloc(256);
  const fd = fs.openSync(file, 'r');
  const n = (() => { try { return fs.readSync(fd, head, 0, head.length, 0); } finally { fs.closeSync(fd); } })();
  if (n >= 4 && head.readUInt32BE(0) === 0x7f454c46) {
    const libs = resolveLibraries(file, { root });
    for (const lib of libs.libraries) addLibrary(m, lib, root);
    if (libs.interpreter && !m.has(usrMerged(libs.interpreter))) addLibrary(m, libs.interpreter, root);
    return;
  }
  if (n < 2 || head.toString('latin1', 0, 2) !== '#!') return;
  const words = head.toString('latin1', 2, n).split('\n')[0]!.trim().split(/\s+/);
  const interp = words[0] ?? '';
  if (path.posix.basename(interp) === 'env' && words[1] && !words[1].startsWith('-')) {
    if (!m.has(usrMerged(interp))) addConfigProgram(m, interp, root, `interpreter of ${at}`, src);
    const dirs = ['/usr/bin', '/usr/sbin', '/bin', '/sbin'].map((d) => `${d}/${words[1]}`);
    if (dirs.some((p) => m.has(usrMerged(p)))) return;
    const onHost = dirs.find((p) => fs.existsSync(path.join(root, p)));
    if (!onHost) throw new LastwordError('EIMAGE_PROGRAM', `${words[1]}, the interpreter of ${at} (${where}), is in none of /usr/bin, /usr/sbin, /bin, /sbin`, { where: { file: src.file, line: src.line } });
    addConfigProgram(m, onHost, root, `interpreter of ${at}`, src);
    return;
  }
  if (interp.startsWith('/') && !m.has(usrMerged(interp))) addConfigProgram(m, interp, root, `interpreter of ${at}`, src);
}

/** The shared libraries (DT_NEEDED, transitively) and the interpreter of a program. */
function addLibrariesOf(m: Manifest, program: string, embedded = false): void {
  const libs = resolveLibraries(program, { embedded });
  for (const lib of libs.libraries) addLibrary(m, lib);
  if (libs.interpreter && !m.has(usrMerged(libs.interpreter))) addLibrary(m, libs.interpreter);
}

/**
 * The libraries the codecs addon opens at run time (runtime/codecs/native/codec-libs.h), which no
 * DT_NEEDED entry names, each with what it needs; the codecs whose library this host lacks.
 */
function addCodecLibraries(m: Manifest): ImageContents['codecsWithoutLibrary'] {
  const missing: ImageContents['codecsWithoutLibrary'] = [];
  const addon = codecsAddon();
  for (const codec of LIBRARY_CODECS) {
    const library = addon.codecLibrary(CODEC_FLAG[codec]);
    const hit = findLibrary(library);
    if (!hit) {
      missing.push({ codec, library });
      continue;
    }
    addLibrary(m, hit);
    addLibrariesOf(m, hit);
  }
  return missing;
}

function addProgram(m: Manifest, at: string, source: string, embedded = false): void {
  addHostFile(m, at, source, 0o755);
  addLibrariesOf(m, source, embedded);
}

/** `busybox --list-full` of the busybox that is shipped: its applets as symlinks, unless a real program sits there. */
function busyboxApplets(busybox: string): string[] {
  const r = spawnSync(busybox, ['--list-full'], { encoding: 'utf8' });
  if (r.status !== 0) throw new LastwordError('EIMAGE_BUSYBOX', `${busybox} --list-full failed: ${r.stderr.trim()}`);
  return r.stdout.split('\n').filter(Boolean).map((a) => '/' + a).sort();
}

/**
 * Blacklisted module names with their reason: the plan's entries (kdump.conf blacklist,
 * modprobe.blacklist= ...) and the shipped lists in blacklist/ (runtime/modules/blacklist.ts).
 */
export function blacklistOf(plan: Plan, executable?: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const b of resolveBlacklist(plan, readShippedBlacklists(blacklistDirs(executable)))) {
    out.set(normalizeModuleName(b.module), `${b.reason} at ${b.source.file}${b.source.line ? ':' + b.source.line : ''}`);
  }
  return out;
}

/**
 * Where the shipped blacklists are: the loader's own places, and beside the executable that is
 * shipped — dist/lastword of a checkout has them in ../blacklist, where the bundled executable's
 * shippedBlacklistDirs() cannot look (it has no import.meta.dirname).
 */
export function blacklistDirs(executable?: string): string[] {
  const dirs = shippedBlacklistDirs();
  if (executable) {
    const beside = path.resolve(path.dirname(fs.realpathSync(executable)), '..', 'blacklist');
    if (!dirs.includes(beside)) dirs.push(beside);
  }
  return dirs;
}

/** The capture kernel's modules.dep, modules.alias, modules.builtin and modules.softdep. */
export function readModuleIndex(i: Pick<ImageInputs, 'kernelVersion' | 'modulesRoot'>): ModuleIndex {
  const dir = path.join(i.modulesRoot, i.kernelVersion);
  const read = (f: string, optional = false): string => {
    try { return fs.readFileSync(path.join(dir, f), 'utf8'); } catch (err) {
      if (optional) return '';
      throw new LastwordError('EIMAGE_MODULES', `${path.join(dir, f)}: ${(err as Error).message} (is kernel ${i.kernelVersion} installed?)`, { where: { file: path.join(dir, f) } });
    }
  };
  return parseModuleIndex({ dep: read('modules.dep'), alias: read('modules.alias'), builtin: read('modules.builtin'), softdep: read('modules.softdep', true) });
}

export function selectImageModules(i: Pick<ImageInputs, 'kernelVersion' | 'modulesRoot' | 'plan' | 'layout' | 'host' | 'executable' | 'imageDisk'>, index = readModuleIndex(i)): ModuleSelection {
  const sel = selectModules(index, moduleRequests(i.plan, i.layout, i.host, i.imageDisk), blacklistOf(i.plan, i.executable));
  if (sel.unresolved.length) {
    const u = sel.unresolved[0]!;
    throw new LastwordError('EIMAGE_MODULE_UNKNOWN', `module '${u.name}' (${u.reason}) is not a module or alias of kernel ${i.kernelVersion}`);
  }
  return sel;
}

export function buildManifest(i: ImageInputs): ImageContents {
  const m: Manifest = new Map();
  for (const d of ['/dev', '/proc', '/sys', '/run', '/tmp', '/mnt', '/root', '/etc', '/var/crash', '/usr/bin', '/usr/sbin', '/usr/lib']) addDir(m, d);
  addEntry(m, { path: '/dev/console', type: 'char', mode: 0o600, major: 5, minor: 1 });
  addEntry(m, { path: '/dev/null', type: 'char', mode: 0o666, major: 1, minor: 3 });
  // Debian's usrmerge: programs ask for /bin/sh, /sbin/modprobe.
  addEntry(m, { path: '/bin', type: 'symlink', target: 'usr/bin' });
  addEntry(m, { path: '/sbin', type: 'symlink', target: 'usr/sbin' });
  addEntry(m, { path: '/lib', type: 'symlink', target: 'usr/lib' });
  addEntry(m, { path: '/lib64', type: 'symlink', target: 'usr/lib64' });

  // Rescue shell and network tools; kmod's programs replace busybox's module applets.
  addHostFile(m, '/usr/bin/busybox', i.busybox, 0o755);
  addProgram(m, '/usr/bin/kmod', i.kmod);
  const kmodApplets = ['/usr/sbin/modprobe', '/usr/sbin/insmod', '/usr/sbin/rmmod', '/usr/sbin/lsmod', '/usr/sbin/depmod', '/usr/sbin/modinfo'];
  for (const a of kmodApplets) addEntry(m, { path: a, type: 'symlink', target: '../bin/kmod' });
  for (const a of busyboxApplets(i.busybox)) {
    // busybox lists /bin, /sbin, /usr/bin, /usr/sbin; all live under /usr here.
    const at = a.replace(/^\/(s?bin)\//, '/usr/$1/');
    if (m.has(at) || kmodApplets.some((k) => path.posix.basename(k) === path.posix.basename(at))) continue;
    addEntry(m, { path: at, type: 'symlink', target: path.posix.relative(path.posix.dirname(at), '/usr/bin/busybox') });
  }

  // The runtime: /init itself, or a busybox /init that mounts the read-only image (layout.ts).
  const executableAt = i.layout === 'plain' ? '/init' : '/usr/lib/lastword/ro/lastword';
  if (i.layout === 'plain') {
    addProgram(m, '/init', i.executable, true);
    addEntry(m, { path: '/usr/bin/lastword', type: 'symlink', target: '../../init' });
  } else {
    // Only the libraries: the executable goes into the image file. Its mount point stays empty.
    addLibrariesOf(m, i.executable, true);
    addDir(m, '/usr/lib/lastword/ro');
    addEntry(m, { path: '/usr/bin/lastword', type: 'symlink', target: '../lib/lastword/ro/lastword' });
  }
  const codecsWithoutLibrary = addCodecLibraries(m);

  // Kernel modules: the selection plus the index files depmod needs (layout.ts runs depmod -b).
  const index = readModuleIndex(i);
  const modules = selectImageModules(i, index);
  const kdir = `/lib/modules/${i.kernelVersion}`;
  const hostKdir = path.join(i.modulesRoot, i.kernelVersion);
  const zstd = i.ownImage === true && kmodReadsZstd(i.kmod);
  const earlyNames = [...layoutModules(i.layout), ...(i.imageDisk ? imageDiskModules(i.imageDisk) : [])];
  const early = i.ownImage === true && i.layout !== 'plain' ? loadOrder(index, earlyNames, new Set(modules.modules)) : undefined;
  for (const p of modules.paths) {
    const source = path.join(hostKdir, p);
    if (zstd && p.endsWith('.ko') && !early?.includes(p)) addEntry(m, { path: `${kdir}/${p}.zst`, type: 'file', mode: 0o644, data: compressModule(source) });
    else addHostFile(m, `${kdir}/${p}`, source, 0o644);
  }
  for (const f of ['modules.builtin', 'modules.builtin.modinfo', 'modules.order']) {
    if (fs.existsSync(path.join(hostKdir, f))) addHostFile(m, `${kdir}/${f}`, path.join(hostKdir, f), 0o644);
  }
  // What a blacklist kept out, so the capture can say why a module it wants is not there.
  if (modules.excluded.length) addEntry(m, { path: `${kdir}/${LEFT_OUT_FILE}`, type: 'file', mode: 0o644, data: Buffer.from(formatLeftOut(modules.excluded)) });
  // Blacklisted modules are not in the image; this keeps a later `modprobe` by hand from finding
  // one on another path, and documents why each is missing.
  addEntry(m, { path: '/etc/modprobe.d/lastword-blacklist.conf', type: 'file', mode: 0o644, data: Buffer.from(modprobeBlacklistConf(resolveBlacklist(i.plan, readShippedBlacklists(blacklistDirs(i.executable))))) });
  // The shipped lists, where the capture's own loader looks for them (shippedBlacklistDirs).
  for (const dir of blacklistDirs(i.executable)) {
    let names: string[];
    try { names = fs.readdirSync(dir).filter((n) => n.endsWith('.conf')).sort(); } catch { continue; }
    for (const n of names) if (!m.has(`/usr/lib/lastword/blacklist/${n}`)) addHostFile(m, `/usr/lib/lastword/blacklist/${n}`, path.join(dir, n), 0o644);
  }

  // Configs, hooks, the SSH key and known_hosts, at the paths the configs name.
  for (const c of i.configs) addHostFile(m, c.at, c.source, 0o644);
  const fromRoot = (p: string) => path.join(i.root, p);
  for (const h of [...i.plan.hooks.pre, ...i.plan.hooks.post, ...i.plan.hooks.emergency]) addConfigProgram(m, h.path, i.root, 'hook', h.source);
  for (const b of i.plan.image.extraBins) addConfigProgram(m, b.path, i.root, 'extra_bins', b.source);
  // KDUMP_COMPRESSION's program (gzip and zstd run inside lastword): kdump-config runs it from
  // the root filesystem, the capture runs it from the image.
  const post = i.plan.postCompression;
  if (post && !postCompressionInProcess(post.method)) {
    const program = findProgram(post.method, '/usr/bin:/bin:/usr/sbin:/sbin', i.root);
    if (!program) throw new LastwordError('EIMAGE_PROGRAM', `KDUMP_COMPRESSION=${post.method} (${sourceAt(post.source)}): ${post.method} is in none of /usr/bin, /bin, /usr/sbin, /sbin; install it or unset KDUMP_COMPRESSION`, { where: { file: post.source.file, line: post.source.line } });
    if (!m.has(usrMerged(program))) addConfigProgram(m, program, i.root, 'KDUMP_COMPRESSION', post.source);
  }
  const targets = planTargets(i.plan);
  if (targets.some((t) => t.kind === 'nfs')) addNfsClient(m, i.mountNfs ?? DEFAULT_MOUNT_NFS, i.hostEtc ?? '/etc');
  if (needsNetwork(i.plan)) addNameLookup(m, i.hostEtc ?? '/etc');
  if (i.hostNetwork !== undefined) addEntry(m, { path: HOST_NETWORK_FILE, type: 'file', mode: 0o644, data: Buffer.from(i.hostNetwork) });
  if (i.plan.fence) checkFenceNodes(i.plan.fence);
  for (const t of targets) {
    if (t.kind !== 'ssh') continue;
    if (!fs.existsSync(fromRoot(t.key))) throw new LastwordError('EIMAGE_SSH_KEY', `ssh key ${t.key} (${sourceAt(t.source)}) does not exist; run kdumpctl propagate or set sshkey`, { where: { file: t.source.file, line: t.source.line } });
    addHostFile(m, t.key, fromRoot(t.key), 0o600);
    if (fs.existsSync(fromRoot(t.key + '.pub'))) addHostFile(m, t.key + '.pub', fromRoot(t.key + '.pub'), 0o644);
    const kh = i.knownHosts ?? fromRoot(t.knownHosts);
    if (!fs.existsSync(kh)) throw new LastwordError('EIMAGE_KNOWN_HOSTS', `known_hosts ${t.knownHosts} does not exist: the capture checks host keys strictly and would refuse ${t.host}`);
    addHostFile(m, t.knownHosts, kh, 0o644);
  }
  return { manifest: m, modules, executableAt, earlyModules: early?.map((p) => usrMerged(`${kdir}/${p}`)), codecsWithoutLibrary };
}

/** `kmod --version` lists its features: +ZSTD when it decompresses .ko.zst itself (kmod 28+ built with libzstd). */
export function kmodReadsZstd(kmod: string): boolean {
  const r = spawnSync(kmod, ['--version'], { encoding: 'utf8' });
  return r.status === 0 && /(^|\s)\+ZSTD(\s|$)/m.test(r.stdout);
}

/** A module as .ko.zst: zstd level 9 (~200 ms for 28 modules; 19 saves another 9% for 12x the time). */
function compressModule(source: string): Buffer {
  let data: Buffer;
  try { data = fs.readFileSync(source); } catch (err) {
    throw new LastwordError('EIMAGE_MODULES', `${source}: ${(err as Error).message}`, { where: { file: source } });
  }
  return zlib.zstdCompressSync(data, { params: { [zlib.constants.ZSTD_c_compressionLevel]: 9 } });
}

export const DEFAULT_MOUNT_NFS = '/usr/sbin/mount.nfs';

/**
 * What the capture needs to mount an NFS export: mount.nfs (also as mount.nfs4) with its libraries,
 * /etc/netconfig, which libtirpc reads to map netids (tcp, udp6...) to transports, and /etc/mtab
 * as the kernel's mount table, which mount.nfs and libmount consult.
 */
/**
 * Host names in the capture (fence_kdump_nodes, an ssh or nfs server by name) resolve as on this
 * machine through its /etc/hosts, as dracut's kdump module ships it; nsswitch.conf is ours, files
 * first, so no lookup waits for a DNS server the capture may not reach.
 */
function addNameLookup(m: Manifest, hostEtc: string): void {
  const hosts = path.join(hostEtc, 'hosts');
  if (fs.existsSync(hosts) && !m.has('/etc/hosts')) addHostFile(m, '/etc/hosts', hosts, 0o644);
  if (!m.has('/etc/nsswitch.conf')) addEntry(m, { path: '/etc/nsswitch.conf', type: 'file', mode: 0o644, data: Buffer.from('# lastword capture initramfs\nhosts: files dns\n') });
}

/** kdumpctl's check: this node must not be in its own fence_kdump_nodes (it would tell itself). */
function checkFenceNodes(f: FencePlan): void {
  const own = new Set([os.hostname(), ...Object.values(os.networkInterfaces()).flatMap((a) => (a ?? []).filter((x) => !x.internal).map((x) => x.address))]);
  for (const node of f.nodes) {
    if (own.has(node)) {
      throw new LastwordError('EIMAGE_FENCE_NODES', `${f.source.file}${f.source.line ? ':' + f.source.line : ''}: fence_kdump_nodes cannot contain this node (${node}); list the other cluster nodes`, { where: { file: f.source.file, line: f.source.line } });
    }
  }
}

function addNfsClient(m: Manifest, mountNfs: string, hostEtc: string): void {
  if (!fs.existsSync(mountNfs)) {
    throw new LastwordError('EIMAGE_MOUNT_NFS', `${mountNfs} does not exist: the NFS target needs mount.nfs in the capture image (install nfs-common, or give --mount-nfs FILE)`);
  }
  addProgram(m, '/usr/sbin/mount.nfs', mountNfs);
  addEntry(m, { path: '/usr/sbin/mount.nfs4', type: 'symlink', target: 'mount.nfs' });
  const netconfig = path.join(hostEtc, 'netconfig');
  if (!fs.existsSync(netconfig)) throw new LastwordError('EIMAGE_MOUNT_NFS', `${netconfig} does not exist: mount.nfs (libtirpc) cannot find its transports without it (install libtirpc-common)`);
  addHostFile(m, '/etc/netconfig', netconfig, 0o644);
  if (!m.has('/etc/mtab')) addEntry(m, { path: '/etc/mtab', type: 'symlink', target: '../proc/self/mounts' });
}

/** Manifest entries in archive order: sorted by path, so parents precede children and the bytes are stable. */
export function orderedEntries(m: Manifest): CpioEntry[] {
  return [...m.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
