// Debian 12's stock kdump set-up for the same QEMU guest as the E2E cycle, for the footprint
// comparison (test/e2e/footprint.ts kdump-tools): a Debian root filesystem holding kdump-tools, and
// the capture initramfs that kdump-tools' kernel hook builds inside it with Debian's mkinitramfs.
// Made at run time and cached under .cache/e2e/kdump-tools-<kver>/ (never committed).
//
// Prerequisites (not part of `npm test` nor .ci/setup): debootstrap (apt-get install debootstrap),
// mkfs.ext4 with -d (e2fsprogs >= 1.43), chroot, and the Debian mirror (LASTWORD_DEBIAN_MIRROR,
// default http://deb.debian.org/debian). Runs as root.
//
// The root filesystem: debootstrap --variant=minbase bookworm with systemd, udev, kdump-tools,
// makedumpfile, kexec-tools, kmod, initramfs-tools, plus busybox and zstd (initramfs-tools'
// Recommends, which a normal install has: without them mkinitramfs uses klibc's tools and gzip);
// the host's /lib/modules/<kver> and /boot files of Debian's 6.1 kernel; /etc/default/kdump-tools
// with USE_KDUMP=1 and the package's defaults otherwise (KDUMP_COREDIR=/var/crash, MAKEDUMP_ARGS
// unset, so kdump-config uses "-F -c -d 31"); an fstab; root without a password.
//
// The capture initramfs: kdump-tools' own /etc/kernel/postinst.d/kdump-tools, run in a chroot of
// that root, with two changes for what cannot be seen from the build host: it turns MODULES=most
// into MODULES=dep, and dep cannot find the guest's root disk, so the hook's copy is patched to
// MODULES=list with the modules dep picks on this guest (DEP_MODULES); and initramfs-tools' fsck
// hook finds the root's type by resolving fstab's UUID= to a device, which does not exist on the
// host, so FSTYPE=ext4 (initramfs.conf's documented override) stands in for that lookup and the
// image carries fsck.ext4 as the guest's own would. Everything else (the copy of
// /etc/initramfs-tools under /var/lib/kdump, KDUMP=y, kdump-tools' initramfs hook, mkinitramfs -d)
// is the hook's.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cacheDir, ensureFile } from '../support/lab.ts';
import type { CycleOptions } from './cycle.ts';

/**
 * What initramfs-tools' dep_add_modules picks for this guest (QEMU pc, virtio-blk disk with an ext4
 * root, PIIX IDE controller bound by ata_piix): the root's filesystem (ext4), the drivers on the sysfs
 * path of the root's block device (virtio_blk, virtio_pci), virtio_pci and virtio_mmio because
 * /sys/bus/virtio exists, and sd_mod because /sys/bus/scsi/devices exists. Their dependencies
 * (jbd2, mbcache, crc16, crc32c, virtio, virtio_ring) come with them as in dep mode. The other
 * classes dep walks (keyboard, rtc, graphics) are built into Debian's 6.1 kernel or absent.
 */
export const DEP_MODULES = ['ext4', 'virtio_blk', 'virtio_pci', 'virtio_mmio', 'sd_mod'];

/** kdump-config's default KDUMP_CMDLINE_APPEND (Debian kdump-tools 1.8.1). */
export const KDUMP_CMDLINE_APPEND = 'reset_devices systemd.unit=kdump-tools-dump.service nr_cpus=1 irqpoll usbcore.nousb';

const PACKAGES = ['systemd-sysv', 'udev', 'kdump-tools', 'makedumpfile', 'kexec-tools', 'kmod', 'initramfs-tools', 'busybox', 'zstd'];

export interface KdumpToolsGuest {
  /** ext4 image of the Debian root (copy it per cycle: the capture writes /var/crash into it) */
  rootImage: string;
  /** filesystem UUID of the root image (root=UUID=... on the command line, fstab) */
  uuid: string;
  /** the capture initramfs kdump-tools' hook built: /var/lib/kdump/initrd.img-<kver> */
  initrd: string;
  /** makedumpfile's version in the root (`makedumpfile -v`) */
  makedumpfile: string;
}

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(err.stderr || err.stdout || err.message).trim().split('\n').slice(-12).join('\n')}`);
  }
}

/** debootstrap once; the tree stays cached (configuration is re-applied by kdumpToolsGuest). */
function debootstrap(dir: string): string {
  const root = path.join(dir, 'rootfs');
  ensureFile(path.join(dir, 'rootfs.done'), () => {
    const tmp = `${root}.tmp`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.rmSync(root, { recursive: true, force: true });
    const mirror = process.env.LASTWORD_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';
    run('debootstrap', ['--variant=minbase', `--include=${PACKAGES.join(',')}`, 'bookworm', tmp, mirror]);
    fs.renameSync(tmp, root);
    fs.writeFileSync(path.join(dir, 'rootfs.done'), `debootstrap --variant=minbase --include=${PACKAGES.join(',')} bookworm ${mirror}\n`);
  });
  return root;
}

/** The Debian root image and kdump-tools' capture initramfs for kernel `kver`, cached. */
export function kdumpToolsGuest(kver: string): KdumpToolsGuest {
  const dir = path.join(cacheDir, 'e2e', `kdump-tools-${kver}`);
  fs.mkdirSync(dir, { recursive: true });
  const meta = path.join(dir, 'guest.json');
  ensureFile(meta, () => {
    const root = debootstrap(dir);
    const uuid = randomUUID();
    // Debian's 6.1 kernel as installed on the host: modules and /boot files.
    fs.rmSync(path.join(root, 'usr/lib/modules', kver), { recursive: true, force: true });
    fs.mkdirSync(path.join(root, 'usr/lib/modules'), { recursive: true });
    run('cp', ['-a', `/lib/modules/${kver}`, path.join(root, 'usr/lib/modules/')]);
    for (const f of [`vmlinuz-${kver}`, `config-${kver}`, `System.map-${kver}`]) {
      fs.copyFileSync(path.join('/boot', f), path.join(root, 'boot', f));
    }
    // /etc/default/kdump-tools as the package leaves it, with kdump enabled.
    const defaults = path.join(root, 'etc/default/kdump-tools');
    let text = fs.readFileSync(defaults, 'utf8');
    text = /^USE_KDUMP=/m.test(text) ? text.replace(/^USE_KDUMP=.*$/m, 'USE_KDUMP=1') : `USE_KDUMP=1\n${text}`;
    if (!/^KDUMP_COREDIR="?\/var\/crash"?$/m.test(text)) throw new Error(`${defaults}: no KDUMP_COREDIR=/var/crash`);
    if (/^MAKEDUMP_ARGS=/m.test(text)) throw new Error(`${defaults}: MAKEDUMP_ARGS is set, expected the default`);
    fs.writeFileSync(defaults, text);
    fs.writeFileSync(path.join(root, 'etc/fstab'), `UUID=${uuid} / ext4 errors=remount-ro 0 1\n`);
    fs.writeFileSync(path.join(root, 'etc/hostname'), 'lwdebian\n');
    run('chroot', [root, 'passwd', '-d', 'root']);
    // kdump-tools' kernel hook, MODULES=dep replaced by the list dep would produce (see above).
    const hook = fs.readFileSync(path.join(root, 'etc/kernel/postinst.d/kdump-tools'), 'utf8');
    const anchor = 'initramfsdir="$kdumpdir/initramfs-tools"\n';
    if (!hook.includes('KDUMP_MODULES=dep') || !hook.includes(anchor)) throw new Error('kdump-tools postinst.d hook changed: cannot patch MODULES=dep');
    const patched = hook.replace('KDUMP_MODULES=dep', 'KDUMP_MODULES=list')
      .replace(anchor, `${anchor}printf '%s\\n' ${DEP_MODULES.join(' ')} >> "$initramfsdir/modules"\n`
        + `mkdir -p "$initramfsdir/conf.d"; echo FSTYPE=ext4 > "$initramfsdir/conf.d/fstype"\n`);
    fs.writeFileSync(path.join(root, 'tmp/kdump-tools-postinst'), patched, { mode: 0o755 });
    const initrdInRoot = path.join(root, 'var/lib/kdump', `initrd.img-${kver}`);
    fs.rmSync(initrdInRoot, { force: true });
    run('chroot', [root, '/bin/sh', '/tmp/kdump-tools-postinst', kver],
      { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' } });
    fs.rmSync(path.join(root, 'tmp/kdump-tools-postinst'));
    if (!fs.existsSync(initrdInRoot)) throw new Error(`kdump-tools' hook made no ${initrdInRoot}`);
    const initrd = path.join(dir, `initrd.img-${kver}`);
    fs.copyFileSync(initrdInRoot, initrd);
    const makedumpfile = run('chroot', [root, 'makedumpfile', '-v']).split('\n')[0]!.trim();
    // The root as an ext4 image (mkfs.ext4 -d, no mount), with room for the dumps.
    const usedMiB = Math.ceil(Number(run('du', ['-s', '-B1M', root]).split(/\s/)[0]) * 1.15);
    const rootImage = path.join(dir, 'root.img');
    fs.rmSync(rootImage, { force: true });
    fs.closeSync(fs.openSync(rootImage, 'w'));
    fs.truncateSync(rootImage, (usedMiB + 768) * 2 ** 20);
    run('mkfs.ext4', ['-q', '-F', '-U', uuid, '-L', 'debroot', '-E', 'lazy_itable_init=0,lazy_journal_init=0', '-d', root, rootImage]);
    // names relative to `dir`: .cache is shared between worktrees through links
    const saved = { rootImage: path.basename(rootImage), uuid, initrd: path.basename(initrd), makedumpfile };
    fs.writeFileSync(meta, JSON.stringify(saved satisfies KdumpToolsGuest, null, 2) + '\n');
  });
  const g = JSON.parse(fs.readFileSync(meta, 'utf8')) as KdumpToolsGuest;
  return { ...g, rootImage: path.join(dir, g.rootImage), initrd: path.join(dir, g.initrd) };
}

/**
 * The primary's load command as `kdump-config load` assembles it: kexec -p with the running
 * kernel's command line minus crashkernel=/hugepages=/hugepagesz=/abm= plus KDUMP_CMDLINE_APPEND,
 * the initrd and the kernel (bzImage: no --args-linux; no secure boot: no -s).
 */
export function kdumpConfigLoad(kver: string): string {
  const cmdline = `$(sed -re 's/(^| )(crashkernel|hugepages|hugepagesz|abm)=[^ ]*//g' /proc/cmdline)`;
  return `kexec -p --command-line="${cmdline} ${KDUMP_CMDLINE_APPEND}" --initrd=/var/lib/kdump/initrd.img-${kver} /var/lib/kdump/vmlinuz-${kver}`;
}

/** What stands at kdump-config's makedumpfile in `withLastwordShim`'s root. */
export type RealMakedumpfile = 'present' | 'missing';

/**
 * A copy of the guest's root image with lastword as kdump-tools' makedumpfile fallback, installed
 * as hooks/kdump-tools/makedumpfile says: the executable at /usr/bin/lastword, Debian's makedumpfile
 * moved to /usr/bin/makedumpfile.distrib (where `dpkg-divert --rename` puts it) and the shim in its
 * place. The capture initramfs stays kdump-tools' own: the capture kernel boots this root and
 * kdump-config savecore runs the shim. With `real` = 'missing' makedumpfile.distrib is removed, so
 * lastword writes the whole dump (what happens when makedumpfile cannot run); with 'present' the
 * shim runs the real makedumpfile and relays its stream, both processes alive at once. Written with
 * debugfs into the image (no mount, no loop device); the dpkg diversion database is not updated,
 * which the capture never reads.
 */
export function withLastwordShim(g: KdumpToolsGuest, executable: string, shim: string, real: RealMakedumpfile, dest: string): string {
  execFileSync('cp', ['--sparse=always', g.rootImage, dest]);
  const cmds = [
    'cd /usr/bin',
    // debugfs' ln and unlink leave link counts alone: together they are a rename; rm frees the inode
    ...(real === 'present' ? ['ln makedumpfile makedumpfile.distrib', 'unlink makedumpfile'] : ['rm makedumpfile']),
    `write ${shim} makedumpfile`,
    'sif makedumpfile mode 0100755',
    `write ${executable} lastword`,
    'sif lastword mode 0100755',
  ];
  // debugfs -f reads one request per line; it reports errors on stderr but exits 0, so check
  const out = execFileSync('debugfs', ['-w', '-f', '-', dest], { input: cmds.join('\n') + '\n', encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  const listing = execFileSync('debugfs', ['-R', 'ls -l /usr/bin', dest], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const names = new Set(listing.split('\n').map((l) => l.trim().split(/\s+/).pop()));
  const want = ['makedumpfile', 'lastword', ...(real === 'present' ? ['makedumpfile.distrib'] : [])];
  const lacking = want.filter((n) => !names.has(n));
  if (lacking.length || (real === 'missing' && names.has('makedumpfile.distrib'))) {
    throw new Error(`debugfs did not install the shim into ${dest} (lacking ${lacking.join(', ') || 'nothing'}): ${out.trim()}`);
  }
  return dest;
}

/**
 * The E2E cycle of the Debian guest: the primary boots the root image (`rootImage`, default the
 * stock one) and loads kdump-tools' capture initramfs with kdump-config's kexec line; the capture
 * kernel boots the same root, whose kdump-tools-dump.service writes /var/crash and reboots.
 */
export function debianCycleOptions(g: KdumpToolsGuest, kver: string, o: { name: string; baseDir: string; crashkernel: string; rootImage?: string }): CycleOptions {
  return {
    name: o.name, baseDir: o.baseDir, crashkernel: o.crashkernel, kdumpConf: '', captureInitrd: g.initrd,
    loadCommand: kdumpConfigLoad(kver),
    // what a Debian install's command line has besides crashkernel= (no "quiet": the harness reads
    // the capture kernel's console)
    appendExtra: `root=UUID=${g.uuid} ro`,
    disks: [{ name: 'root', sizeMiB: 0, image: o.rootImage ?? g.rootImage }],
  };
}

/** Files under `dir` of an ext4 image, copied out with debugfs (the root image is large). */
export function extractExt4Dir(image: string, dir: string, dest: string): string[] {
  fs.mkdirSync(dest, { recursive: true });
  execFileSync('debugfs', ['-R', `rdump ${dir} ${dest}`, image], { stdio: 'ignore' });
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else out.push(path.join(d, e.name));
    }
  };
  walk(dest);
  return out;
}
