// One kdump cycle in QEMU, shared by `npm run demo` and the E2E tests: the host builds the capture
// initramfs with `lastword initramfs`, then a primary initramfs holding lastword, kexec, the capture
// kernel and that image; the guest boots with crashkernel=, runs `lastword load`, panics through
// /proc/sysrq-trigger, and lastword, as PID 1 of the capture kernel, does the rest.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cacheDir, kernelVersion, repo } from '../support/lab.ts';
import { onSignal } from '../support/on-signal.ts';
import { buildInitramfs, extractExt4Tree, Guest, makeDisk } from '../support/qemu.ts';
export { flaggedIncomplete as kdumpFlaggedIncomplete } from '../support/kdump-header.ts';

export const lastwordExe = path.join(repo, 'dist', 'lastword');
/**
 * The capture initramfs layout of the E2E cycles. The plain layout unpacks the ~109 MB executable
 * into rootfs, which does not fit the ~94 MB a crashkernel=256M capture kernel has free
 * ("Initramfs unpacking failed: write error", seen 2026-11-23); squashfs keeps it compressed.
 */
export const DEFAULT_LAYOUT = 'squashfs';
/** LABEL= of the primary guest's disk holding lastword, the capture kernel and its initramfs. */
const SYSTEM_LABEL = 'LWSYSTEM';

export interface DiskSpec {
  name: string;
  sizeMiB: number;
  ext4Label?: string;
  /** a raw image to copy (sparse) instead of a blank disk, e.g. a prepared root filesystem */
  image?: string;
}

export interface CycleOptions {
  /** work directory name under `baseDir` */
  name: string;
  /** where work directories go (default .cache/e2e; tests pass a temp dir they remove) */
  baseDir?: string;
  /** /etc/kdump.conf of the guest, the config the capture initramfs is built from */
  kdumpConf: string;
  /** /etc/sysconfig/kdump of the guest (KDUMP_COMMANDLINE_APPEND ...) */
  sysconfig?: string;
  /** more files of the guest's root (ssh keys, kdump_pre programs): guest path -> content */
  guestFiles?: Record<string, { data: string | Buffer; mode?: number }>;
  /** extra arguments for `lastword initramfs` (e.g. --layout squashfs) */
  initramfsArgs?: string[];
  /** run `lastword initramfs` inside this network namespace (a stand-in for the guest's network) */
  builderNetns?: string;
  /** a capture initramfs made elsewhere (the makedumpfile stand-in): skips `lastword initramfs` */
  captureInitrd?: string;
  /** how the primary loads the capture kernel: `lastword load` (default) or plain kexec -p */
  loader?: 'lastword' | 'kexec';
  /** capture command line when loader is kexec */
  kexecAppend?: string;
  /** the primary's load command verbatim (overrides loader), e.g. the kexec line kdump-config builds */
  loadCommand?: string;
  crashkernel?: string;
  memMiB?: number;
  disks?: DiskSpec[];
  net?: { netns: string; tap: string };
  /** false: the guest may reboot (the reboot final action) */
  noReboot?: boolean;
  echo?: NodeJS.WritableStream;
  /** extra kernel command line of the primary kernel (inherited by the capture kernel) */
  appendExtra?: string;
  /** q35: PCIe guest, each disk behind its own root port (see GuestOptions.machine) */
  machine?: 'q35';
  /** more QEMU arguments (a vhost-user-fs device...) */
  qemuArgs?: string[];
  /** the guest's kernel (primary and capture), default Debian 12's 6.1 */
  kver?: string;
  /**
   * `lastword initramfs --image-on`: the read-only image goes onto this disk of `disks` (an ext4
   * one, loop-mounted on the host while the builder runs) as IMAGE_ON_DISK_PATH, not into the initramfs
   */
  imageOnDisk?: string;
}

/** Where `imageOnDisk` puts the image inside that disk's filesystem. */
export const IMAGE_ON_DISK_PATH = '/var/lib/lastword/capture.squashfs';

export interface PreparedCycle {
  dir: string;
  kver: string;
  captureInitrd: string;
  primaryInitrd: string;
  disks: Record<string, string>;
  /** seconds spent in each preparation step */
  steps: Array<[string, number]>;
}

export function kver61(): string {
  const kver = kernelVersion('6.1');
  if (!kver) throw new Error('no Debian 6.1 kernel installed (run bash .ci/setup)');
  return kver;
}

/**
 * A test's work directory in /tmp (`lw-e2e-<name>-XXXXXX`: guest disks, initramfs images), removed
 * after the test, and also when the test process is stopped by a signal (a cancelled CI run).
 */
export function e2eDir(t: { after(fn: () => void): void }, name: string): string {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), `lw-e2e-${name}-`));
  const remove = () => fs.rmSync(base, { recursive: true, force: true });
  const forget = onSignal(remove);
  t.after(() => { forget(); remove(); });
  return base;
}

/** Why the E2E cycle cannot run on this machine, or undefined when it can. */
export function missingPrerequisite(): string | undefined {
  if (!kernelVersion('6.1')) return 'no Debian 6.1 kernel in /boot (bash .ci/setup)';
  if (!fs.existsSync(lastwordExe)) return 'dist/lastword is not built (npm run build:native && npm run build)';
  for (const tool of ['qemu-system-x86_64', 'kexec', 'cpio', 'zstd', 'mkfs.ext4', 'debugfs']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is missing (bash .ci/setup)`;
  }
  return undefined;
}

/** Runs `dist/lastword ARGS` on the host; throws with its output when it fails. */
export function lastword(args: string[], opts: { cwd?: string; netns?: string } = {}): string {
  const argv = opts.netns ? ['ip', 'netns', 'exec', opts.netns, lastwordExe, ...args] : [lastwordExe, ...args];
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', cwd: opts.cwd, maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    throw new Error(`lastword ${args.join(' ')} exited ${r.status}: ${(r.stderr || r.stdout).trim().split('\n').slice(-8).join('\n')}`);
  }
  return r.stdout;
}

/** The primary kernel's /init: a small workload, `lastword load` (or kexec -p), then the panic. */
function primaryInit(o: CycleOptions, kver: string): string {
  const load = o.loadCommand ?? ((o.loader ?? 'lastword') === 'lastword'
    ? 'lastword load'
    : `kexec -p /boot/vmlinuz-${kver} --initrd=/boot/initramfs-${kver}kdump.img --append="${o.kexecAppend ?? ''}"`);
  return `#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
up() { cut -d' ' -f1 /proc/uptime; }
while read -r m; do insmod /lib/modules/${kver}/$m 2>/dev/null; done < /etc/modules.list
i=0; while ! sysdisk=$(findfs LABEL=${SYSTEM_LABEL} 2>/dev/null) && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mkdir -p /system; mount -t ext4 -o ro "$sysdisk" /system || echo "E2E: LOAD FAILED no system disk"
echo "E2E: PRIMARY UP uptime=$(up) crash_size=$(cat /sys/kernel/kexec_crash_size)"
if [ -e /proc/vmcore ]; then echo "E2E: the primary initramfs came up in a capture kernel"; poweroff -f; fi
mount -t tmpfs tmpfs /tmp
echo "LASTWORD-E2E-MARKER primary workload" > /dev/kmsg
dd if=/dev/urandom of=/tmp/fill.bin bs=1M count=16 2>/dev/null
sleep 100000 &
echo "E2E: LOADING uptime=$(up): ${load.replace(/"/g, '\\"')}"
if ${load}; then :; else rc=$?; echo "E2E: LOAD FAILED rc=$rc"; poweroff -f; fi
if [ "$(cat /sys/kernel/kexec_crash_loaded)" != 1 ]; then echo "E2E: LOAD FAILED nothing loaded"; poweroff -f; fi
echo "E2E: LOADED uptime=$(up)"
echo 1 > /proc/sys/kernel/sysrq
echo "E2E: CRASHING uptime=$(up)"
# let the line leave the serial port before the panic's own messages interleave with it
sleep 1
echo c > /proc/sysrq-trigger
sleep 5
echo "E2E: still alive after sysrq c"
poweroff -f
`;
}

/** Builds the capture initramfs (unless given), the primary initramfs and the disks. */
export function prepareCycle(o: CycleOptions): PreparedCycle {
  const kver = o.kver ?? kver61();
  const dir = path.join(o.baseDir ?? path.join(cacheDir, 'e2e'), o.name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const steps: Array<[string, number]> = [];
  const timed = <T>(what: string, f: () => T): T => {
    const t0 = Date.now();
    const v = f();
    steps.push([what, (Date.now() - t0) / 1000]);
    return v;
  };
  // The guest's root as an admin would have it; `lastword initramfs --root` reads it like the
  // guest's own / and the primary initramfs carries the same files, so paths in the config are
  // the guest's paths.
  const guestRoot = path.join(dir, 'guestroot');
  const guestFiles: Record<string, { data: string | Buffer; mode?: number }> = {
    '/etc/kdump.conf': { data: o.kdumpConf },
    '/etc/sysconfig/kdump': { data: o.sysconfig ?? '' },
    ...o.guestFiles,
  };
  for (const [guest, f] of Object.entries(guestFiles)) {
    const p = path.join(guestRoot, guest);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, f.data, { mode: f.mode ?? 0o644 });
    fs.chmodSync(p, f.mode ?? 0o644);
  }
  const disks: Record<string, string> = {};
  for (const d of o.disks ?? []) {
    const file = path.join(dir, `${d.name}.img`);
    disks[d.name] = timed(`disk ${d.name}`, () => d.image
      ? (execFileSync('cp', ['--sparse=always', d.image, file]), file)
      : makeDisk(file, d.sizeMiB, { ext4Label: d.ext4Label }));
  }
  let captureInitrd = o.captureInitrd;
  if (!captureInitrd) {
    captureInitrd = path.join(dir, `initramfs-${kver}kdump.img`);
    const out = captureInitrd;
    const args = o.initramfsArgs ?? ['--layout', DEFAULT_LAYOUT];
    if (o.imageOnDisk) {
      // The disk as the guest's own mounted filesystem: the builder reads its UUID from the mount.
      const mnt = path.join(dir, 'image-disk');
      fs.mkdirSync(mnt);
      execFileSync('mount', ['-o', 'loop', disks[o.imageOnDisk]!, mnt]);
      try {
        fs.mkdirSync(path.join(mnt, path.dirname(IMAGE_ON_DISK_PATH)), { recursive: true });
        timed('lastword initramfs', () => lastword(initramfsArgs(kver, guestRoot, out, [...args, '--image-on', path.join(mnt, IMAGE_ON_DISK_PATH)]), { netns: o.builderNetns }));
      } finally {
        execFileSync('umount', [mnt]);
        fs.rmdirSync(mnt);
      }
    } else {
      timed('lastword initramfs', () => lastword(initramfsArgs(kver, guestRoot, out, args), { netns: o.builderNetns }));
    }
  }
  // The big files (lastword, the capture kernel and its initramfs) live on an ext4 "system disk"
  // made with mkfs.ext4 -d, not in the primary initramfs: unpacking ~170 MB of initramfs costs
  // the TCG guest most of a minute per boot.
  const sysRoot = path.join(dir, 'system');
  fs.mkdirSync(path.join(sysRoot, 'boot'), { recursive: true });
  fs.copyFileSync(lastwordExe, path.join(sysRoot, 'lastword'));
  fs.copyFileSync(`/boot/vmlinuz-${kver}`, path.join(sysRoot, 'boot', `vmlinuz-${kver}`));
  fs.copyFileSync(captureInitrd!, path.join(sysRoot, 'boot', `initramfs-${kver}kdump.img`));
  const sysBytes = listFiles(sysRoot).reduce((n, f) => n + fs.statSync(f).size, 0);
  const systemDisk = timed('system disk', () => makeDisk(path.join(dir, 'system.img'), Math.ceil(sysBytes * 1.2 / 2 ** 20) + 32, { ext4Label: SYSTEM_LABEL, fromDir: sysRoot }));
  fs.rmSync(sysRoot, { recursive: true, force: true });
  const primaryInitrd = path.join(dir, 'primary.cpio.zst');
  timed('primary initramfs', () => buildInitramfs({
    binaries: [kexecPath()],
    librariesOf: [lastwordExe],
    modules: { kver, names: ['virtio_pci', 'virtio_blk', 'ext4'] },
    symlinks: {
      '/usr/bin/lastword': '/system/lastword',
      '/boot': '/system/boot',
      // /boot is on the read-only system disk, so kdumpctl (and lastword load) look for the kdump
      // image under /var/lib/kdump
      [`/var/lib/kdump/initramfs-${kver}kdump.img`]: `/boot/initramfs-${kver}kdump.img`,
      // Debian's kdump-tools names for the same files
      [`/var/lib/kdump/initrd.img-${kver}`]: `/boot/initramfs-${kver}kdump.img`,
      [`/var/lib/kdump/vmlinuz-${kver}`]: `/boot/vmlinuz-${kver}`,
    },
    texts: { ...guestFiles, '/init': { data: primaryInit(o, kver), mode: 0o755 } },
  }, primaryInitrd));
  disks.system = systemDisk;
  return { dir, kver, captureInitrd: captureInitrd!, primaryInitrd, disks, steps };
}

function kexecPath(): string {
  for (const p of ['/usr/sbin/kexec', '/sbin/kexec']) if (fs.existsSync(p)) return p;
  throw new Error('kexec is missing (apt-get install kexec-tools)');
}

/** Boots the prepared guest; the caller waits on its console. */
export function bootCycle(o: CycleOptions, p: PreparedCycle): Guest {
  return new Guest({
    kernel: `/boot/vmlinuz-${p.kver}`,
    initrd: p.primaryInitrd,
    append: `console=ttyS0 crashkernel=${o.crashkernel ?? '256M'} panic=1 ${o.appendExtra ?? ''}`.trim(),
    memMiB: o.memMiB ?? 1024,
    // the system disk last, so the targets are vda, vdb... as the configs name them
    disks: [...(o.disks ?? []).map((d) => p.disks[d.name]!), p.disks.system!],
    machine: o.machine,
    qemuArgs: o.qemuArgs,
    tap: o.net?.tap,
    netns: o.net?.netns,
    noReboot: o.noReboot,
    logFile: path.join(p.dir, 'console.log'),
    echo: o.echo,
  });
}

/** Lines that mean PID 1 of a kernel died: the one thing lastword must never cause. */
export const INIT_DIED = /Attempted to kill init|Kernel panic - not syncing: (?!sysrq)/;

/** Where the capture kernel's console starts (its "Linux version" banner after the crash). */
export function captureConsole(console: string): string {
  const crash = console.indexOf('E2E: CRASHING');
  if (crash < 0) return '';
  const banner = console.indexOf('Linux version', crash);
  return banner < 0 ? console.slice(crash) : console.slice(banner);
}

/** crash(8) on a dump: `bt` and `log`, in batch mode. */
export function crashReport(crashBin: string, vmlinux: string, dump: string, opts: { args?: string[]; commands?: string[] } = {}): { ok: boolean; output: string } {
  const r = spawnSync(crashBin, [...(opts.args ?? []), '-s', vmlinux, dump], {
    input: [...(opts.commands ?? ['sys', 'bt', 'log']), 'quit', ''].join('\n'), encoding: 'utf8', maxBuffer: 256 << 20, timeout: 300_000,
  });
  const output = (r.stdout ?? '') + (r.stderr ?? '');
  return { ok: r.status === 0 && /RELEASE:/.test(output) && /PID:/.test(output), output };
}

export interface CycleRun {
  prepared: PreparedCycle;
  guest: Guest;
  /** the capture kernel's part of the console */
  capture: string;
  /** the guest stopped by itself (false: killed after its console stayed silent, e.g. a shell) */
  stoppedByItself: boolean;
}

/**
 * A whole cycle that ends with the guest stopping by itself (poweroff, or a reboot under
 * -no-reboot). Throws when the primary could not load the capture kernel or the guest hangs.
 */
export async function runCycle(o: CycleOptions, timeoutMs = 600_000): Promise<CycleRun> {
  const prepared = prepareCycle(o);
  const guest = bootCycle(o, prepared);
  let stoppedByItself = false;
  try {
    const m = await guest.waitFor(/E2E: CRASHING|E2E: LOAD FAILED.*/, 240_000);
    if (/LOAD FAILED/.test(m[0])) throw new Error(`the primary could not load the capture kernel: ${m[0]}\n${guest.tail()}`);
    // Progress lines keep the console busy while saving; 120 s of silence is a hang or a shell.
    stoppedByItself = await guest.waitExitOrIdle(120_000, timeoutMs);
  } finally {
    guest.kill();
  }
  return { prepared, guest, capture: captureConsole(guest.console), stoppedByItself };
}

/** The kernel's own last line for reboot(2): which final action the capture really took. */
export function finalAction(capture: string): 'poweroff' | 'reboot' | 'halt' | undefined {
  if (/reboot: Power down/.test(capture)) return 'poweroff';
  if (/reboot: Restarting system/.test(capture)) return 'reboot';
  if (/reboot: System halted/.test(capture)) return 'halt';
  return undefined;
}

/** Capture-side command line for a guest at 10.0.2.15 behind a tap at 10.0.2.1 (dracut ip= syntax). */
export const GUEST_IP = '10.0.2.15';
export const HOST_IP = '10.0.2.1';
export { DEFAULT_GUEST_MAC as GUEST_MAC } from '../support/qemu.ts';
export const CAPTURE_APPEND_NET = `irqpoll nr_cpus=1 reset_devices panic=1 ip=${GUEST_IP}::${HOST_IP}:255.255.255.0:lwguest:eth0:off`;
export const CAPTURE_APPEND = 'irqpoll nr_cpus=1 reset_devices panic=1';

export interface DumpFiles {
  dir?: string;
  /** finished dump: `vmcore` (Fedora), `dump.<stamp>` (Debian) */
  vmcore?: string;
  /** finished flattened stream (Fedora ssh `vmcore.flat`) */
  flat?: string;
  /** a dump left under its incomplete name */
  incomplete?: string;
  dmesg?: string;
}

/** Sorts the files a capture left (Fedora and Debian names) into what they are. */
export function classifyDumpFiles(files: string[]): DumpFiles {
  const out: DumpFiles = {};
  for (const f of files) {
    const b = path.basename(f);
    if (b === 'vmcore' || /^dump\.\d+$/.test(b)) out.vmcore = f;
    else if (b === 'vmcore.flat') out.flat = f;
    else if (/incomplete/.test(b) && !/dmesg/.test(b)) out.incomplete = f;
    else if (b === 'vmcore-dmesg.txt' || /^dmesg\.\d+$/.test(b)) out.dmesg = f;
    else continue;
    out.dir = path.dirname(f);
  }
  return out;
}

/**
 * The disk case: kdump.conf `ext4 LABEL=LWE2EDISK`, `-l -d 31`, `final_action poweroff`, on the guest
 * kernel `kver` (default 6.1). Checks that the capture kernel booted, PID 1 never died and the final
 * action was taken; returns the run, the files on the disk (extracted under `base`/tree) and the dump.
 */
export async function diskCapture(base: string, name: string, kver?: string, more: Partial<CycleOptions> = {}): Promise<{ run: CycleRun; files: string[]; dump: DumpFiles & { vmcore: string }; tail: string }> {
  const run = await runCycle({
    ...more,
    name, baseDir: base, kver,
    kdumpConf: 'ext4 LABEL=LWE2EDISK\npath /var/crash\ncore_collector makedumpfile -l --message-level 7 -d 31\nfinal_action poweroff\nfailure_action reboot\n',
    sysconfig: more.sysconfig ?? `KDUMP_COMMANDLINE_APPEND="${CAPTURE_APPEND}"\n`,
    disks: [{ name: 'dump', sizeMiB: 1024, ext4Label: 'LWE2EDISK' }],
  });
  const tail = run.guest.tail(60);
  assert.ok(run.capture, `the capture kernel never booted:\n${tail}`);
  assert.doesNotMatch(run.capture, INIT_DIED, `PID 1 died in the capture kernel:\n${tail}`);
  assert.equal(finalAction(run.capture), 'poweroff', `final_action poweroff was not taken:\n${tail}`);
  const files = extractExt4Tree(run.prepared.disks.dump!, path.join(base, 'tree')).filter((f) => !f.includes('lost+found'));
  const dump = classifyDumpFiles(files);
  const vmcore = dump.vmcore;
  assert.ok(vmcore, `no finished vmcore on the disk (files: ${files.map((f) => path.relative(base, f)).join(', ')}):\n${tail}`);
  return { run, files, dump: { ...dump, vmcore }, tail };
}

/** Every regular file under `dir`. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** A flattened stream (raw device, vmcore.flat) reassembled by the reference, makedumpfile -R. */
export function reassemble(flat: string, out: string): string {
  // makedumpfile -R spins without end on an empty or foreign input (Debian 12's kdump-config
  // renames an empty file to dump.<stamp> when makedumpfile died at once): check the signature
  const head = Buffer.alloc(16);
  const fd = fs.openSync(flat, 'r');
  const n = fs.readSync(fd, head, 0, head.length, 0);
  fs.closeSync(fd);
  if (head.subarray(0, n).toString('latin1').replace(/\0+$/, '') !== 'makedumpfile') {
    throw new Error(`${flat} is not a flattened dump (${n ? `starts with ${JSON.stringify(head.subarray(0, n).toString('latin1'))}` : 'empty'})`);
  }
  const r = spawnSync('sh', ['-c', `makedumpfile -R '${out}' < '${flat}'`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`makedumpfile -R of ${flat} failed: ${r.stderr || r.stdout}`);
  return out;
}

/** The one place the E2E cycle calls the capture initramfs builder. */
export function initramfsArgs(kver: string, guestRoot: string, out: string, extra: string[]): string[] {
  return ['initramfs', '--kernel', kver, '--root', guestRoot, ...extra, '-o', out];
}

/** kdump.conf for an ext4 target found by LABEL= (Fedora syntax). */
export function ext4Conf(label: string, final: string, failure: string, extra: string[] = []): string {
  return [`ext4 LABEL=${label}`, 'path /var/crash', 'core_collector makedumpfile -l --message-level 7 -d 31',
    `final_action ${final}`, `failure_action ${failure}`, ...extra, ''].join('\n');
}

