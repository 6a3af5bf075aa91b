// The one injected interface between lastword and the OS. Pure cores never touch the OS; the
// stages that act (pid1, modules, network, targets) receive a System and tests may hand them a
// recording fake. The real implementation (system/real.ts) calls the native addon and node:fs /
// node:child_process, and is tested for real (inside unshare, on loop devices, in QEMU).

/** reboot(2) commands, linux/reboot.h */
export type RebootCommand = 'restart' | 'power-off' | 'halt';

export interface ExecResult {
  exitCode: number;
  signal?: string;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface ExecOptions {
  timeoutMs?: number;
  input?: string | Buffer;
  env?: Record<string, string>;
  /** Inherit the console instead of capturing output (kdump_pre, the rescue shell). */
  inherit?: boolean;
  cwd?: string;
}

export interface Syscalls {
  mount(source: string, target: string, fstype: string, flags: number, data: string): void;
  umount2(target: string, flags: number): void;
  /** Does not return on success. */
  reboot(cmd: RebootCommand): void;
  sync(): void;
  sethostname(name: string): void;
  /** setsid() then ioctl(fd, TIOCSCTTY, 1): make fd the controlling terminal of a new session. */
  setControllingTerminal(fd: number): void;
  /** finit_module(2) on an open .ko file; params like "opt=1 other=2". */
  finitModule(fd: number, params: string, flags: number): void;
  /** waitpid(-1, WNOHANG) restricted to pids not in `keep`; returns reaped pids. */
  reapOrphans(keep: ReadonlySet<number>): number[];
  getpid(): number;
  /** dup2(2): PID 1 puts /dev/console on fds 0, 1 and 2. */
  dup2(from: number, to: number): void;
}

export interface System extends Syscalls {
  exec(file: string, args: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Monotonic milliseconds; injected so timeouts are testable. */
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Console / log sink for messages meant for the admin. */
  log(line: string): void;
}

/** mount(2) flags, linux/mount.h */
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  REMOUNT: 32,
  BIND: 4096,
} as const;

/** umount2(2) flags */
export const MNT = { FORCE: 1, DETACH: 2 } as const;
