// The capture Plan: everything the capture needs to know, built once from the admin's existing
// kdump configs (Fedora /etc/kdump.conf + /etc/sysconfig/kdump, Debian /etc/default/kdump-tools)
// and the kernel command line (`lastword.*` overrides, modprobe.blacklist=, reset_devices, ip=).
// Every later stage (modules, network, targets, filter, pid1, initramfs, load) reads this and
// nothing else; the parsers in this folder are the only code that knows the file syntaxes.

/** Where a setting came from, so messages can say `kdump.conf:12`. `line` is 1-based. */
export interface SourceRef {
  file: string;
  line?: number;
}

/** `file:line`, or the file alone: how messages name where a setting came from. */
export function sourceAt(s: SourceRef): string {
  return s.line !== undefined ? `${s.file}:${s.line}` : s.file;
}

/** A config problem that did not stop the plan (unknown directive, ignored legacy option...). */
export interface PlanWarning extends SourceRef {
  message: string;
}

/** Which distribution's names and directory layout the dump gets. */
export type Layout = 'fedora' | 'debian';

/** Final action after a successful dump (kdump.conf final_action). */
export type FinalAction = 'reboot' | 'poweroff' | 'halt' | 'shell';
/** Action after a failed dump (kdump.conf failure_action / default, Debian KDUMP_FAIL_CMD). */
export type FailureAction = FinalAction | 'dump_to_rootfs';
/** Every final action, in kdump.conf(5)'s order; the one list the parsers, PID 1 and /init use. */
export const FINAL_ACTIONS: readonly FinalAction[] = ['reboot', 'poweroff', 'halt', 'shell'];
export const FAILURE_ACTIONS: readonly FailureAction[] = [...FINAL_ACTIONS, 'dump_to_rootfs'];

/**
 * How a block device is named in a config: a /dev path, or a filesystem UUID / LABEL, or a GPT
 * PARTUUID / PARTLABEL. Without udev in the capture kernel there is no /dev/disk/by-*, so
 * runtime/modules/blockdev.ts finds UUID/LABEL by reading superblocks.
 */
export type DeviceSpec =
  | { by: 'path'; path: string }
  | { by: 'uuid'; uuid: string }
  | { by: 'label'; label: string }
  | { by: 'partuuid'; partuuid: string }
  | { by: 'partlabel'; partlabel: string };

/** No target directive: dump to the root filesystem (Fedora /sysroot, Debian /) under `path`. */
export interface RootTarget {
  kind: 'root';
  source: SourceRef;
}

/** `ext4 UUID=...`, `xfs LABEL=...`, ... in kdump.conf: mount it read-write and dump under `path`. */
export interface LocalFsTarget {
  kind: 'local-fs';
  fstype: string;
  device: DeviceSpec;
  /** mount(8) -o options, split on commas; empty = defaults. */
  mountOptions: string[];
  source: SourceRef;
}

/** kdump.conf `raw /dev/sdb1`: a flattened stream written straight onto the device. */
export interface RawTarget {
  kind: 'raw';
  device: DeviceSpec;
  source: SourceRef;
}

/** kdump.conf `nfs server:/export`, Debian NFS="server:/export". */
export interface NfsTarget {
  kind: 'nfs';
  /** Host name or address, without brackets for IPv6. */
  server: string;
  /** Exported directory, e.g. /export/crash. */
  export: string;
  /** All mount options passed to mount.nfs, timeo/retrans included (Debian: nolock,tcp,soft,...). */
  mountOptions: string[];
  /** Tenths of a second (nfs(5) timeo). */
  timeo?: number;
  retrans?: number;
  /** Debian NFS_MOUNT_RETRY: mount attempts, 3 s apart as in kdump-config; default 4, 5 s apart. */
  retry?: ConnectRetry;
  source: SourceRef;
}

/** How often a network target is tried before the capture gives up on it (Debian's *_RETRY). */
export interface ConnectRetry {
  attempts: number;
  delayMs: number;
  source: SourceRef;
}

/** kdump.conf `ssh user@host`, Debian SSH="user@host". */
export interface SshTarget {
  kind: 'ssh';
  user: string;
  host: string;
  port: number;
  /** Private key (kdump.conf sshkey / Debian SSH_KEY; default /root/.ssh/kdump_id_rsa). */
  key: string;
  /** known_hosts file: host keys are checked strictly, an unknown or changed key is refused. */
  knownHosts: string;
  /** 'sftp': a finished kdump-compressed file written at offsets; 'flattened': `dd` of a flattened stream (vmcore.flat). */
  transport: 'sftp' | 'flattened';
  /** Debian SSH_KDUMP_RETRY (default 16, 3 s apart, as kdump-config's remote mkdir); else 4, 5 s apart. */
  retry?: ConnectRetry;
  source: SourceRef;
}

/**
 * Debian FTP="host[:dir]" (FTP_USER, FTP_PASSWORD, FTP_PORT): kdump-config pipes the flattened
 * dump into busybox ftpput; the files lie flat in `dir` as `<ip or hostname>-dump.<stamp>`.
 */
export interface FtpTarget {
  kind: 'ftp';
  host: string;
  port: number;
  /** busybox ftpput's defaults: anonymous / busybox@ */
  user: string;
  password: string;
  /** FTP_COREDIR as written: relative to the login directory unless it starts with '/'. */
  dir: string;
  source: SourceRef;
}

/** `lastword.target=stdout`, `lastword save -`: the dump goes to standard output, flattened. */
export interface StdoutTarget {
  kind: 'stdout';
  source: SourceRef;
}

export type Target = RootTarget | LocalFsTarget | RawTarget | NfsTarget | SshTarget | FtpTarget | StdoutTarget;

/**
 * Debian KDUMP_COMPRESSION: kdump-config pipes the (flattened) dump through this program and adds
 * its extension to the file names. gzip and zstd run in-process; the others need their program.
 */
export type PostCompression = 'gzip' | 'bzip2' | 'xz' | 'lz4' | 'zstd';
export const POST_COMPRESSIONS: readonly PostCompression[] = ['bzip2', 'gzip', 'lz4', 'xz', 'zstd'];

/** A target reached over the network (its dump directory carries the host tag). */
export function isNetworkTarget(t: Target): t is NfsTarget | SshTarget | FtpTarget {
  return t.kind === 'nfs' || t.kind === 'ssh' || t.kind === 'ftp';
}

export type Codec = 'none' | 'zlib' | 'lzo' | 'snappy' | 'zstd';
/** kdump: kdump-compressed (makedumpfile default); elf: -E; flattened: -F (a kdump stream, or ELF with -E -F). */
export type DumpFormat = 'kdump' | 'elf';

/**
 * What the configured core collector asked for, as filter options. Parsed from
 * `core_collector makedumpfile -l --message-level 7 -d 31` or Debian MAKEDUMP_ARGS="-c -d 31".
 * `cp` / `scp` collectors mean a plain ELF copy of every page (level 0, no compression).
 */
export interface CoreCollector {
  /** The program the config named: we do its job ourselves. */
  program: 'makedumpfile' | 'cp' | 'scp' | 'lastword';
  /** Arguments as written (after the program name), for messages and for `lastword load`. */
  args: string[];
  dumpLevel: number;
  codec: Codec;
  format: DumpFormat;
  /** -F was given; targets that stream (raw, ssh flattened, stdout) force it regardless. */
  flattened: boolean;
  messageLevel?: number;
  /** --num-threads N; undefined = decide from the CPU count. */
  numThreads?: number;
  /** --cyclic-buffer N (N > 0): makedumpfile stays cyclic, so the page filter does too (runtime/cli/filter.ts). */
  cyclicBuffer?: boolean;
  /** makedumpfile -f: overwrite an existing file. */
  force: boolean;
  /** --non-mmap: read /proc/vmcore with read() instead of mapping it (a kernel whose mmap of it misbehaves). */
  nonMmap?: boolean;
  source: SourceRef;
}

/** Names of the dump directory and files; see runtime/targets naming for the rules. */
export interface Naming {
  layout: Layout;
  /** Network targets' directory prefix: the host's IP (default) or its hostname (Debian HOSTTAG). */
  hostTag: 'ip' | 'hostname';
  /** kdump_test_id= on the cmdline (Fedora kdumpctl test): `<path>/kdump-test-<id>/`. */
  testId?: string;
}

/** A kdump_pre / kdump_post / kdump_emergency program, or one found in /etc/kdump/{pre,post,emergency}.d. */
export interface Hook {
  path: string;
  args: string[];
  /** Killed after this long, which counts as a failure. */
  timeoutMs: number;
  /**
   * From /etc/kdump/{pre,post,emergency}.d: a failure is only a warning. A failing kdump_pre
   * itself stops the capture (kdump.sh: no dump, the final action).
   */
  fromDir?: boolean;
  source: SourceRef;
}

export interface Hooks {
  pre: Hook[];
  post: Hook[];
  emergency: Hook[];
}

/** A module that must not be loaded, even as a dependency, and why. */
export interface BlacklistEntry {
  module: string;
  /** kdump.conf / kernel cmdline / shipped blacklist/<file>.conf with its line. */
  source: SourceRef;
  reason: string;
}

export interface ModulesPlan {
  /** kdump.conf extra_modules: loaded in addition to what the target needs. */
  extra: string[];
  /** Blacklist entries from the configs and the cmdline; resolveBlacklist() adds the shipped lists. */
  blacklist: BlacklistEntry[];
  /** reset_devices on the (capture) cmdline: reset the target's PCI functions before binding. */
  resetDevices: boolean;
  /** Seconds to wait for the target's block device (kdump.conf disk_timeout, lastword.disk_timeout=). */
  diskTimeoutMs: number;
}

/** Address configuration of ip= (dracut syntax); autoconf 'none' = static. */
export type IpAutoconf = 'none' | 'dhcp' | 'dhcp6' | 'auto6' | 'either6' | 'ibft';

/** One ip= argument from the kernel command line, dracut syntax. */
export interface IpSpec {
  /** ip=<interface>:dhcp or the 6th field; undefined = any interface with a link. */
  interface?: string;
  autoconf: IpAutoconf;
  clientIp?: string;
  peer?: string;
  gateway?: string;
  /** Dotted netmask or prefix length as written. */
  netmask?: string;
  hostname?: string;
  mtu?: number;
  mac?: string;
  /** DNS servers given inline in ip= (fields 8 and 9 of the long form). */
  dns: string[];
  source: SourceRef;
}

/** dracut's ifname=<name>:<MAC>: the interface with this MAC is renamed <name> before ip= applies. */
export interface IfnameSpec {
  name: string;
  mac: string;
  source: SourceRef;
}

export interface NetworkPlan {
  ip: IpSpec[];
  ifnames: IfnameSpec[];
  /** nameserver= entries. */
  nameservers: string[];
  /** Seconds to wait for a link / a DHCP lease (rd.net.timeout.dhcp, lastword.net_timeout=). */
  timeoutMs: number;
  /** Fedora kdump_remote_ip=: the address whose route picks the dump NIC (for the HOST_IP name). */
  remoteIp?: string;
}

/** Settings for the first kernel's `lastword load` (kexec -p), not used in the capture itself. */
export interface KexecPlan {
  kernel?: string;
  initrd?: string;
  kernelVersion?: string;
  /** Fedora KDUMP_BOOTDIR: the directories searched for the kernel (words), default /boot /boot/efi /efi /. */
  bootDirs?: string[];
  /** Fedora KDUMP_IMG (default vmlinuz) and KDUMP_IMG_EXT. */
  image?: string;
  imageExt?: string;
  /** Base command line (KDUMP_COMMANDLINE / KDUMP_CMDLINE); undefined = /proc/cmdline. */
  commandline?: string;
  /** KDUMP_COMMANDLINE_APPEND / KDUMP_CMDLINE_APPEND, split into words. */
  commandlineAppend: string[];
  /** KDUMP_COMMANDLINE_REMOVE: parameter names removed from the base. */
  commandlineRemove: string[];
  /** KEXEC_ARGS / KDUMP_KEXEC_ARGS. */
  kexecArgs: string[];
  /** Debian DEBUG_KERNEL. */
  debugKernel?: string;
}

/**
 * kdump.conf fence_kdump_nodes / fence_kdump_args: while the capture runs, tell the cluster nodes
 * (their fence_kdump agent) that this node is dumping, so they do not power-fence it mid-dump.
 * fence_kdump_send's message and options: an 8-byte UDP datagram (magic, version) to each node.
 */
export interface FencePlan {
  nodes: string[];
  /** -p, --ipport (default 7410) */
  port: number;
  /** -f, --family: auto, ipv4, ipv6 */
  family: 'auto' | 'ipv4' | 'ipv6';
  /** -c, --count: messages to send to each node; 0 = until the capture ends (default) */
  count: number;
  /** -i, --interval: seconds between messages (default 10) */
  intervalS: number;
  source: SourceRef;
}

export const FENCE_KDUMP_PORT = 7410;
export const FENCE_KDUMP_INTERVAL_S = 10;

/** The capture needs the network: a network target, or cluster nodes to notify. */
export function needsNetwork(plan: Plan): boolean {
  return planTargets(plan).some(isNetworkTarget) || (plan.fence?.nodes.length ?? 0) > 0;
}

/** Every target a dump goes to, in the order they are written. */
export function planTargets(plan: Plan): Target[] {
  return [plan.target, ...plan.alsoTargets];
}

/** The plan for one of planTargets(plan): the same settings, that target only. */
export function planFor(plan: Plan, target: Target): Plan {
  return target === plan.target && plan.alsoTargets.length === 0 ? plan : { ...plan, target, alsoTargets: [] };
}

/** Settings only the initramfs builder reads (dracut_args, extra_bins...). */
export interface ImagePlan {
  /** kdump.conf extra_bins: programs and scripts the image must carry at their paths (for the hooks) */
  extraBins: { path: string; source: SourceRef }[];
  dracutArgs: string[];
  forceRebuild: boolean;
  forceNoRebuild: boolean;
}

export interface Plan {
  /** Config files that were read, in order; later ones override earlier ones. */
  sources: string[];
  layout: Layout;
  /** Debian USE_KDUMP=0 turns the capture off; Fedora has no such switch. */
  enabled: boolean;
  target: Target;
  /**
   * Debian: kdump-config savecore writes one dump to each of FTP=, SSH= and NFS= (or the local
   * KDUMP_COREDIR when neither FTP nor SSH is set), in that order; `target` is the first of them
   * and these are the others. Empty for Fedora (one target) and for a command-line target.
   */
  alsoTargets: Target[];
  /**
   * Directory for dumps: relative to the target's root for local-fs/nfs/ssh (Fedora `path`,
   * default /var/crash), Debian KDUMP_COREDIR.
   */
  path: string;
  naming: Naming;
  collector: CoreCollector;
  /** Debian KDUMP_COMPRESSION: the whole dump file compressed again, with the program's extension. */
  postCompression?: { method: PostCompression; source: SourceRef };
  /** Save the kernel log next to the dump (vmcore-dmesg.txt / dmesg.<stamp>). */
  dmesg: boolean;
  /** Debian KDUMP_NUM_DUMPS: keep this many dumps (local targets); 0 = keep all. */
  numDumps: number;
  /** A dump target that accepts no byte for this long fails the dump (lastword.stall_timeout=; 0 = never). */
  stallTimeoutMs: number;
  hooks: Hooks;
  finalAction: FinalAction;
  failureAction: FailureAction;
  /** Debian KDUMP_FAIL_CMD when it is not one of the actions: run it, then the failure action. */
  failureCommand?: string;
  modules: ModulesPlan;
  network: NetworkPlan;
  /** fence_kdump_nodes: cluster nodes to notify while dumping */
  fence?: FencePlan;
  kexec: KexecPlan;
  image: ImagePlan;
  warnings: PlanWarning[];
}

// Defaults named once; the parsers and tests use these, not literals.
export const DEFAULT_PATH = '/var/crash';
export const DEFAULT_SSH_KEY = '/root/.ssh/kdump_id_rsa';
export const DEFAULT_KNOWN_HOSTS = '/root/.ssh/known_hosts';
export const DEFAULT_HOOK_TIMEOUT_MS = 300_000;
/** How long a dump target may take to accept one write before the capture gives up on it. */
export const DEFAULT_STALL_TIMEOUT_MS = 300_000;
export const DEFAULT_DISK_TIMEOUT_MS = 180_000;
export const DEFAULT_NET_TIMEOUT_MS = 120_000;
/** kdump-utils kdump.conf default core_collector. */
export const FEDORA_DEFAULT_COLLECTOR = 'makedumpfile -l --message-level 7 -d 31';
/** kdump-tools' documented MAKEDUMP_ARGS. */
export const DEBIAN_DEFAULT_MAKEDUMP_ARGS = '-c -d 31';
