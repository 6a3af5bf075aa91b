// `lastword initramfs --kernel VERSION [--config FILE] [--root DIR] [--layout plain|squashfs|erofs]
// [--compress gzip|zstd] -o FILE`: builds the capture initramfs whose /init is lastword. With
// `--into DIR` it fills a directory instead, for the dracut module and the initramfs-tools hook.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import minimist from 'minimist';
import { LastwordError, usageError } from '../errors.ts';
import { applyCmdline } from '../config/cmdline.ts';
import { DEBIAN_CONF, FEDORA_CONF, FEDORA_SYSCONFIG, loadPlan } from '../config/load.ts';
import { blacklistOf, buildManifest, orderedEntries } from '../../initramfs/image.ts';
import { hostModaliases } from '../../initramfs/host-devices.ts';
import { DEFAULT_IMAGE_COMPRESSION, finishLayout, layoutWork, pruneBlacklisted, writeIntoDirectory } from '../../initramfs/layout.ts';
import type { ImageLayout } from '../../initramfs/needs.ts';
import { imageDiskOf } from '../../initramfs/image-disk.ts';
import { writeCpioFile, type CpioCompression as Compression } from '../../initramfs/cpio.ts';
import { failureFinalAction } from '../pid1/outcome.ts';
import { defaultExecutable } from './executable.ts';
import { needsNetwork, type Plan } from '../config/plan.ts';
import { deriveHostNetwork, ipProbe } from '../network/host-config.ts';

const HELP = `usage: lastword initramfs --kernel VERSION [options] (-o FILE | --into DIR)

Builds a capture initramfs whose /init is lastword, from the kdump configs.
  --kernel VERSION      the capture kernel's version (its modules: /lib/modules/VERSION)
  --config FILE         this kdump.conf or kdump-tools file instead of the standard places
  --root DIR            read the configs, keys, known_hosts and hooks under DIR (default /)
  --layout L            squashfs (default) | erofs: lastword in a compressed read-only image
                        mounted at boot (its pages stay evictable; with -o every program and
                        library but busybox too); plain: /init is lastword (pins the whole
                        executable)
  --compress C          gzip | zstd (default) | none
  --image-compression C squashfs: zstd (default; 28 MB for the executable, seconds to build) |
                        xz (x86 BCJ, 1 MiB blocks: 21 MB, minutes to build, but slow refaults
                        of evicted pages under memory pressure); cached by the executable's hash
  --image-level N       squashfs zstd level (default 9; 15-19 pin ~3 MB less, build much slower),
                        erofs lz4hc level (at most 12)
  --image-on FILE       write the read-only image to FILE on a disk of this machine (ext2/3/4, xfs,
                        btrfs on a disk or partition) instead of into the initramfs: the capture's
                        /init mounts that filesystem read-only (found by its UUID) and the image
                        from it, as Debian's kdump-tools runs from the root filesystem. The
                        initramfs shrinks by the image (~28 MB), so a smaller crashkernel= does;
                        the capture then depends on that disk. Rebuild after moving FILE.
  --executable FILE     the lastword executable to ship (default: this one)
  --known-hosts FILE    ship this known_hosts instead of the one the config names
  --modules-root DIR    where the kernel modules are (default /lib/modules)
  --mount-nfs FILE      mount.nfs to ship for an NFS target (default /usr/sbin/mount.nfs)
  --no-host-network     for an NFS or SSH target or fence_kdump_nodes, do not carry this machine's
                        route to them into the image (ifname= by MAC, its static address or DHCP);
                        the capture then tries DHCP on every NIC unless its command line has ip=.
                        Off by default with --root (--host-network: on), and when
                        KDUMP_COMMANDLINE_APPEND has ip=
  -o FILE               write the image here
  --into DIR            write the files into DIR (dracut's $initdir, mkinitramfs' $DESTDIR)`;

const LAYOUTS = ['plain', 'squashfs', 'erofs'];
const COMPRESSIONS = ['gzip', 'zstd', 'none'];

export async function run(argv: string[]): Promise<number> {
  const o = minimist(argv, {
    string: ['kernel', 'config', 'root', 'layout', 'compress', 'executable', 'known-hosts', 'modules-root', 'o', 'into', 'busybox', 'kmod', 'mount-nfs', 'image-level', 'image-compression', 'image-on'],
    boolean: ['help', 'host-network'],
    alias: { h: 'help', output: 'o' },
    unknown: (a) => { if (a.startsWith('-')) throw usageError(`unknown option ${a}\n${HELP}`); return true; },
  });
  if (o.help) { process.stdout.write(HELP + '\n'); return 0; }
  if (!o.kernel) throw usageError(`--kernel VERSION is required\n${HELP}`);
  if (!o.o === !o.into) throw usageError(`give one of -o FILE or --into DIR\n${HELP}`);
  // squashfs by default, for -o and for --into (the dracut module, the initramfs-tools hook): the
  // plain layout pins the whole executable in rootfs and does not unpack in crashkernel=256M.
  const layout = (o.layout ?? 'squashfs') as ImageLayout;
  if (!LAYOUTS.includes(layout)) throw usageError(`--layout must be one of ${LAYOUTS.join(', ')}`);
  const compression = (o.compress ?? 'zstd') as Compression;
  if (!COMPRESSIONS.includes(compression)) throw usageError(`--compress must be one of ${COMPRESSIONS.join(', ')}`);

  if (o['image-on'] !== undefined && layout === 'plain') throw usageError('--image-on needs a read-only layout (squashfs or erofs), not plain');
  const host = hostModaliases();
  const disk = o['image-on'] !== undefined ? imageDiskOf(String(o['image-on'])) : undefined;

  const root = path.resolve(o.root ?? '/');
  const plan = loadPlan({ config: o.config, root, cmdline: o.root ? '' : undefined });
  // The capture kernel also boots with the configs' KDUMP_COMMANDLINE_APPEND / KDUMP_CMDLINE_APPEND
  // words (lastword load, kexec.ts), and the capture reads its own /proc/cmdline: what they
  // blacklist (modprobe.blacklist=...) stays out of the image, what they ask for (ip=) goes in.
  if (plan.kexec.commandlineAppend.length) applyCmdline(plan, plan.kexec.commandlineAppend.join(' '), 'the capture command line (KDUMP_COMMANDLINE_APPEND)');
  const configs: Array<{ at: string; source: string }> = [];
  if (o.config) configs.push({ at: plan.layout === 'fedora' ? FEDORA_CONF : DEBIAN_CONF, source: path.resolve(o.config) });
  else {
    for (const c of [FEDORA_CONF, FEDORA_SYSCONFIG, DEBIAN_CONF]) if (fs.existsSync(path.join(root, c))) configs.push({ at: c, source: path.join(root, c) });
  }
  const executable = path.resolve(o.executable ?? defaultExecutable());
  // minimist leaves a boolean it was not given false: only argv tells --no-host-network from nothing.
  const hostNetworkWanted = argv.includes('--host-network') || (!o.root && !argv.includes('--no-host-network'));
  const hostNetwork = hostNetworkWanted ? await hostNetworkFile(plan) : undefined;
  const work = layoutWork();
  try {
    const image = buildManifest({
      kernelVersion: o.kernel,
      modulesRoot: o['modules-root'] ?? '/lib/modules',
      executable,
      plan,
      root,
      configs,
      knownHosts: o['known-hosts'] ? path.resolve(o['known-hosts']) : undefined,
      layout,
      host,
      busybox: o.busybox ?? '/usr/bin/busybox',
      kmod: o.kmod ?? '/usr/bin/kmod',
      mountNfs: o['mount-nfs'] ? path.resolve(o['mount-nfs']) : undefined,
      ownImage: !o.into,
      hostNetwork,
      imageDisk: disk,
    });
    const level = o['image-level'] !== undefined ? Number(o['image-level']) : undefined;
    if (level !== undefined && !(Number.isInteger(level) && level >= 1 && level <= 22)) throw usageError('--image-level must be 1-22');
    const imageCompression = o['image-compression'] ?? DEFAULT_IMAGE_COMPRESSION;
    if (imageCompression !== 'xz' && imageCompression !== 'zstd') throw usageError(`--image-compression must be xz or zstd, not ${JSON.stringify(imageCompression)}`);
    finishLayout(image.manifest, layout, o.kernel, executable, work.dir, { level, compression: imageCompression, onMountFailure: failureFinalAction(plan.failureAction), earlyModules: image.earlyModules, disk });
    if (disk) process.stdout.write(`lastword initramfs: image ${disk.file} (${fs.statSync(disk.file).size} bytes; the capture mounts ${disk.device}, now ${disk.hostDevice}, ${disk.fstype}, and reads ${disk.pathInFs})\n`);
    for (const w of plan.warnings) process.stderr.write(`lastword initramfs: warning: ${w.file}${w.line ? ':' + w.line : ''}: ${w.message}\n`);
    for (const x of image.modules.excluded) process.stderr.write(`lastword initramfs: left out module ${x.module}: ${x.reason}\n`);
    for (const c of image.codecsWithoutLibrary.filter((c) => c.codec === plan.collector.codec)) {
      process.stderr.write(`lastword initramfs: warning: ${c.library} is not on this system: the capture compresses with zlib instead of ${c.codec}\n`);
    }
    if (o.into) {
      writeIntoDirectory(image.manifest, path.resolve(o.into));
      for (const f of pruneBlacklisted(path.resolve(o.into), o.kernel, blacklistOf(plan, executable))) process.stderr.write(`lastword initramfs: removed blacklisted ${f}\n`);
      process.stdout.write(`lastword initramfs: ${image.manifest.size} entries into ${o.into}, ${image.modules.modules.length} modules\n`);
    } else {
      const out = path.resolve(o.o);
      // zstd 3 / gzip 6: higher levels gain ~10% on the ~100 MiB executable for several times the time.
      await writeCpioFile(orderedEntries(image.manifest), out, { compression, level: compression === 'gzip' ? 6 : 3 });
      process.stdout.write(`lastword initramfs: ${out}: ${fs.statSync(out).size} bytes, layout ${layout}, ${compression}, ${image.modules.modules.length} modules\n`);
    }
    return 0;
  } finally {
    work.cleanup();
  }
}

/**
 * HOST_NETWORK_FILE's text: how this machine reaches the capture's hosts, when the capture needs
 * the network and no ip= was configured. A route that cannot be carried over is a warning: the
 * capture then falls back to DHCP, as it would without this.
 */
async function hostNetworkFile(plan: Plan): Promise<string | undefined> {
  if (!needsNetwork(plan) || plan.network.ip.length) return undefined;
  const probe = ipProbe(['ip'], (file) => { try { return fs.readFileSync(file, 'utf8'); } catch { return undefined; } });
  try {
    const net = await deriveHostNetwork(plan, probe);
    if (!net.words.length) return undefined;
    for (const n of net.notes) process.stderr.write(`lastword initramfs: capture network: ${n}\n`);
    return `# lastword initramfs on ${os.hostname()}: how this machine reaches the capture's hosts.\n`
      + `# Used when the capture kernel's command line has no ip=.\n${net.words.join('\n')}\n`;
  } catch (err) {
    if (!(err instanceof LastwordError)) throw err;
    process.stderr.write(`lastword initramfs: warning: capture network not taken from this machine: ${err.message}; the capture will try DHCP on every NIC (or give ip= in KDUMP_COMMANDLINE_APPEND)\n`);
    return undefined;
  }
}
