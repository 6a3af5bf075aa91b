// The capture kernel's command line and the kexec command that loads it, as kdumpctl and
// kdump-config build them. /proc/cmdline and the boot CPU's APIC id come in as arguments; the
// only I/O here is findKdumpKernel/kdumpInitrd looking for files under the given root, as
// kdumpctl does; load.ts, unload.ts and status.ts do the rest.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Plan } from '../config/plan.ts';

/**
 * Parameters never carried into the capture kernel (kdumpctl prepare_cmdline): the reservation
 * itself, the root and storage-stack assembly of the first boot (lastword mounts only the dump
 * target), and init= / rdinit=, which would replace lastword as PID 1.
 */
export const ALWAYS_REMOVED = ['crashkernel', 'panic_on_warn', 'root', 'rd.lvm.lv', 'rd.luks.uuid', 'rd.dm.uuid', 'rd.md.uuid',
  'fcoe', 'netroot', 'rd.iscsi.initiator', 'iscsi_initiator', 'init', 'rdinit', 'resume', 'systemd.unit'];

/** Splits a kernel command line into words; double quotes group a value with spaces (param="a b"). */
export function splitKernelWords(cmdline: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let any = false;
  for (const c of cmdline.trim()) {
    if (c === '"') { quoted = !quoted; cur += c; any = true; } else if (!quoted && /\s/.test(c)) {
      if (any) out.push(cur);
      cur = '';
      any = false;
    } else { cur += c; any = true; }
  }
  if (any) out.push(cur);
  return out;
}

/** `name=value` -> `name`; modules' dotted names (`usbcore.nousb`) are names too. */
export function paramName(word: string): string {
  const eq = word.indexOf('=');
  return eq < 0 ? word : word.slice(0, eq);
}

export interface CaptureCmdlineInput {
  /** /proc/cmdline of the running kernel, used when the config sets no KDUMP_COMMANDLINE / KDUMP_CMDLINE */
  procCmdline: string;
  /** x86_64: the APIC id of the boot CPU (kdumpctl adds disable_cpu_apicid=, Fedora layout) */
  bootCpuApicId?: number;
}

/**
 * Base (config or /proc/cmdline) minus ALWAYS_REMOVED and KDUMP_COMMANDLINE_REMOVE, minus every
 * parameter the append list sets again, plus KDUMP_COMMANDLINE_APPEND / KDUMP_CMDLINE_APPEND.
 */
export function captureCmdline(plan: Plan, input: CaptureCmdlineInput): string {
  const k = plan.kexec;
  // Words after `--` are arguments for the first boot's init, not kernel parameters; appending
  // after them would hand reset_devices & co. to init. lastword's init takes none: drop them.
  const words = splitKernelWords(k.commandline ?? input.procCmdline);
  const dashes = words.indexOf('--');
  const base = dashes < 0 ? words : words.slice(0, dashes);
  const append = [...k.commandlineAppend];
  // Without root= the kernel unpacks the initramfs into a tmpfs capped at half the capture
  // kernel's RAM; lastword's image (~45 MB unpacked) overflows that cap in a small crashkernel=
  // ("Initramfs unpacking failed: write error" at 208M). ramfs has no cap, and rootfs pages cannot
  // be evicted either way (no swap), so nothing else changes.
  if (!append.some((w) => paramName(w) === 'rootfstype')) append.push('rootfstype=ramfs');
  if (plan.layout === 'fedora' && input.bootCpuApicId !== undefined && !append.some((w) => paramName(w) === 'disable_cpu_apicid')) {
    append.push(`disable_cpu_apicid=${input.bootCpuApicId}`);
  }
  const drop = new Set([...ALWAYS_REMOVED, ...k.commandlineRemove, ...append.map(paramName)]);
  const kept = base.filter((w) => !drop.has(paramName(w)));
  return [...kept, ...append].join(' ');
}

/** The boot CPU's APIC id: the first "apicid" of /proc/cpuinfo (kdumpctl get_bootcpu_apicid). */
export function bootCpuApicId(cpuinfo: string): number | undefined {
  const m = /^apicid\s*:\s*(\d+)/m.exec(cpuinfo);
  return m ? Number(m[1]) : undefined;
}

export interface KexecFiles {
  kernel: string;
  initrd: string;
}

/**
 * Kernel and initrd to load. Debian: KDUMP_KERNEL / KDUMP_INITRD (default /var/lib/kdump/vmlinuz
 * and initrd.img). Fedora: where kdumpctl finds them (kdump-lib.sh prepare_kdump_kernel and
 * prepare_kdump_bootinfo), see findKdumpKernel and kdumpInitrd. Paths are as the system sees them;
 * `root` is where that system is mounted here (tests, chroots).
 */
export function kexecFiles(plan: Plan, runningKernel: string, env: { root?: string; procCmdline?: string } = {}): KexecFiles {
  const kver = plan.kexec.kernelVersion || runningKernel;
  const root = env.root ?? '/';
  const kernel = plan.kexec.kernel ?? findKdumpKernel(plan, kver, root, env.procCmdline ?? '')
    ?? `${(plan.kexec.bootDirs ?? BOOT_DIRS)[0]}/${kernelImageName(plan, kver)}`;
  return { kernel, initrd: plan.kexec.initrd ?? kdumpInitrd(kernel, kver, root) };
}

const BOOT_DIRS = ['/boot', '/boot/efi', '/efi', '/'];
/** `$KDUMP_IMG-<kver>$KDUMP_IMG_EXT`, the kernel's usual name in a boot directory. */
const kernelImageName = (plan: Plan, kver: string) => `${plan.kexec.image ?? 'vmlinuz'}-${kver}${plan.kexec.imageExt ?? ''}`;
/** systemd-stub's EFI variable naming the UKI it booted (kdumpctl reads it the same way). */
const STUB_IMAGE_IDENTIFIER = '/sys/firmware/efi/efivars/StubImageIdentifier-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f';

/**
 * kdumpctl's search: in each of KDUMP_BOOTDIR's directories (default /boot /boot/efi /efi /, after
 * /boot/ostree/* on OSTree systems) the first of: the BOOT_IMAGE of /proc/cmdline (without GRUB's
 * `(hd0,gpt1)` prefix) when it ends in the version, `$KDUMP_IMG-<kver>$KDUMP_IMG_EXT`, the BLS
 * `<machine-id>/<kver>/$KDUMP_IMG`, and the UKI (systemd-stub's StubImageIdentifier, else
 * `EFI/Linux/<machine-id>-<kver>.efi`). Undefined when none is a file.
 */
export function findKdumpKernel(plan: Plan, kver: string, root: string, procCmdline: string): string | undefined {
  const at = (p: string) => path.join(root, p);
  const read = (p: string) => { try { return fs.readFileSync(at(p), 'latin1'); } catch { return undefined; } };
  const machineId = (read('/etc/machine-id') ?? '').trim();
  const image = plan.kexec.image ?? 'vmlinuz';
  const stub = read(STUB_IMAGE_IDENTIFIER);
  // tr -cd '[:print:]/' | sed 's/\\/\//g': the UTF-16 path with its attribute bytes dropped
  const uki = stub !== undefined ? stub.replace(/[^\x20-\x7e]/g, '').replace(/\\/g, '/') : `EFI/Linux/${machineId}-${kver}.efi`;
  const images = [kernelImageName(plan, kver), `${machineId}/${kver}/${image}`, uki];
  const bootImage = /(?:^|\s)BOOT_IMAGE=(\S+)/.exec(procCmdline)?.[1]?.replace(/^\([^)]*\)/, '');
  if (bootImage !== undefined && bootImage.endsWith(kver)) images.unshift(bootImage);
  let dirs = plan.kexec.bootDirs ?? BOOT_DIRS;
  if (fs.existsSync(at('/run/ostree-booted'))) {
    let ostree: string[] = [];
    try { ostree = fs.readdirSync(at('/boot/ostree')).sort().map((d) => `/boot/ostree/${d}`); } catch { /* none */ }
    dirs = [...ostree, ...dirs];
  }
  for (const dir of dirs) {
    for (const img of images) {
      const p = `${dir}/${img}`.replace(/\/+/g, '/');
      try { if (fs.statSync(at(p)).isFile()) return p; } catch { /* next */ }
    }
  }
  return undefined;
}

/**
 * kdumpctl's KDUMP_INITRD: next to the system's own initrd in the kernel's directory
 * (`initramfs-<kver>.img` -> `initramfs-<kver>kdump.img`, `initrd` -> `initrdkdump`), or
 * /var/lib/kdump/initramfs-<kver>kdump.img when there is none (UKIs) or the directory is read-only.
 */
export function kdumpInitrd(kernel: string, kver: string, root: string): string {
  const dir = path.posix.dirname(kernel);
  const own = [`initramfs-${kver}.img`, 'initrd'].find((f) => { try { return fs.statSync(path.join(root, dir, f)).isFile(); } catch { return false; } });
  let writable = false;
  try { fs.accessSync(path.join(root, dir), fs.constants.W_OK); writable = true; } catch { /* read-only */ }
  if (own === undefined || !writable) return `/var/lib/kdump/initramfs-${kver}kdump.img`;
  return (own.endsWith('.img') ? `${dir}/${own.slice(0, -'.img'.length)}kdump.img` : `${dir}/${own}kdump`).replace(/\/+/g, '/');
}

/** `kexec -p [KEXEC_ARGS] --command-line=... --initrd=... <kernel>` as an argument vector. */
export function kexecLoadArgs(plan: Plan, files: KexecFiles, cmdline: string): string[] {
  return ['-p', ...plan.kexec.kexecArgs, `--command-line=${cmdline}`, `--initrd=${files.initrd}`, files.kernel];
}

/** kdumpctl stop: `kexec -p -u`, with -s when loading used kexec_file_load. */
export function kexecUnloadArgs(plan: Plan): string[] {
  return ['-p', ...(plan.kexec.kexecArgs.includes('-s') ? ['-s'] : []), '-u'];
}

export interface Reservation {
  /** bytes reserved by crashkernel= (/sys/kernel/kexec_crash_size) */
  crashSize: number;
  /** /sys/kernel/kexec_crash_loaded */
  loaded: boolean;
}

export function formatMiB(bytes: number): string {
  return `${(bytes / 1048576).toFixed(bytes % 1048576 === 0 ? 0 : 1)} MiB`;
}
