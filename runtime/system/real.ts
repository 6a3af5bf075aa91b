// The real System: syscalls through lastword's native addon (runtime/system/native), programs
// through execa with timeouts. It remembers the children it spawned, so reaping orphans as PID 1
// never takes a child libuv is about to wait for (libuv would then lose its exit status).
import { execa } from 'execa';
import { LastwordError } from '../errors.ts';
import { loadNative } from './native-loader.ts';
import type { ExecOptions, ExecResult, RebootCommand, System } from './types.ts';
import { writeStderr } from './stderr.ts';

/** The addon's exports (system.cc). */
export interface SystemAddon {
  mount(source: string, target: string, fstype: string, flags: number, data: string): void;
  umount2(target: string, flags: number): void;
  reboot(cmd: number): void;
  sync(): void;
  sethostname(name: string): void;
  setControllingTerminal(fd: number): void;
  setsid(): number;
  finitModule(fd: number, params: string, flags: number): void;
  dup2(from: number, to: number): void;
  /** pipe2(O_CLOEXEC): [readFd, writeFd], blocking. */
  pipe(): [number, number];
  reapOrphans(keep: number[]): number[];
  getpid(): number;
  constants: { RB_AUTOBOOT: number; RB_POWER_OFF: number; RB_HALT_SYSTEM: number };
}

export function systemAddon(): SystemAddon {
  return loadNative<SystemAddon>('system');
}

const REBOOT_CMD: Record<RebootCommand, keyof SystemAddon['constants']> = {
  'restart': 'RB_AUTOBOOT',
  'power-off': 'RB_POWER_OFF',
  'halt': 'RB_HALT_SYSTEM',
};

export interface RealSystemOptions {
  /** where System.log writes; stderr (the console as PID 1) by default */
  log?: (line: string) => void;
}

export function realSystem(opts: RealSystemOptions = {}): System {
  const addon = systemAddon();
  const spawned = new Set<number>();
  const log = opts.log ?? ((line: string) => { writeStderr(line.endsWith('\n') ? line : line + '\n'); });

  async function exec(file: string, args: readonly string[], o: ExecOptions = {}): Promise<ExecResult> {
    const child = execa(file, args, {
      reject: false,
      timeout: o.timeoutMs,
      // a child that ignores SIGTERM on timeout gets SIGKILL 2 s later
      forceKillAfterDelay: 2000,
      input: o.input,
      env: o.env,
      extendEnv: o.env === undefined,
      cwd: o.cwd,
      stdio: o.inherit ? 'inherit' : 'pipe',
      stripFinalNewline: false,
      encoding: 'utf8',
    });
    if (child.pid !== undefined) spawned.add(child.pid);
    try {
      const r = await child;
      if (r.failed && r.exitCode === undefined && r.signal === undefined && !r.timedOut) {
        // spawn itself failed (ENOENT, EACCES): no process ever ran
        const code = (r.cause as NodeJS.ErrnoException | undefined)?.code ?? 'ESPAWN';
        throw new LastwordError('EEXEC', `cannot run ${file}: ${code}`, { cause: r.cause });
      }
      return {
        exitCode: r.exitCode ?? -1,
        signal: r.signal ?? undefined,
        stdout: typeof r.stdout === 'string' ? r.stdout : '',
        stderr: typeof r.stderr === 'string' ? r.stderr : '',
        timedOut: r.timedOut,
      };
    } finally {
      if (child.pid !== undefined) spawned.delete(child.pid);
    }
  }

  return {
    mount: (source, target, fstype, flags, data) => addon.mount(source, target, fstype, flags, data),
    umount2: (target, flags) => addon.umount2(target, flags),
    reboot: (cmd) => addon.reboot(addon.constants[REBOOT_CMD[cmd]]),
    sync: () => addon.sync(),
    sethostname: (name) => addon.sethostname(name),
    setControllingTerminal: (fd) => addon.setControllingTerminal(fd),
    finitModule: (fd, params, flags) => addon.finitModule(fd, params, flags),
    reapOrphans: (keep) => addon.reapOrphans([...keep, ...spawned]),
    getpid: () => addon.getpid(),
    dup2: (from, to) => addon.dup2(from, to),
    exec,
    now: () => process.uptime() * 1000,      // not performance.now(): its first use loads 11 perf modules
    sleep: (ms) => new Promise((resolve) => { setTimeout(resolve, ms); }),
    log,
  };
}
