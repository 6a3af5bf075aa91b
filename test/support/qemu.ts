// Harness for QEMU guests (x86_64, TCG): images of the guest's primary initramfs, the guest
// process with its serial console as a stream the test can wait on and type into, and disks.
// Used by the E2E tests and `npm run demo`; other tests may reuse it.
//
// The primary initramfs is a plain busybox userland (the approach of ../shared/lab/make-initrd.sh)
// built with the host's cpio; what a test puts into it (lastword, kexec, the capture kernel and
// its initramfs, configs) comes in as files. The capture initramfs is never built here: that is
// `lastword initramfs`' job.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bzImageRelease, tcgAccel } from './lab.ts';

/** The guest NIC's MAC unless GuestOptions.mac says otherwise (QEMU's own default). */
export const DEFAULT_GUEST_MAC = '52:54:00:12:34:56';

export interface InitramfsSpec {
  /** guest path -> host file (copied) */
  files?: Record<string, string>;
  /** guest path -> content */
  texts?: Record<string, { data: string | Buffer; mode?: number }>;
  /** guest path -> link target */
  symlinks?: Record<string, string>;
  /** host executables copied to the same path with the shared libraries ldd names */
  binaries?: string[];
  /** host executables copied to another guest path (guest path -> host file), with their libraries */
  binariesAt?: Record<string, string>;
  /** host executables whose shared libraries only are copied (the executable comes another way) */
  librariesOf?: string[];
  /** kernel modules to insmod at boot, resolved with their dependencies: /etc/modules.list */
  modules?: { kver: string; names: string[] };
  /** a static busybox with its applet links (default true) */
  busybox?: boolean;
}

/** Builds a newc cpio, zstd-compressed (the 6.1 and 6.12 kernels unpack zstd, faster than gzip in TCG). */
export function buildInitramfs(spec: InitramfsSpec, outFile: string): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-initramfs-'));
  try {
    for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'proc', 'sys', 'dev', 'tmp', 'etc', 'mnt', 'run', 'root']) {
      fs.mkdirSync(path.join(root, d), { recursive: true });
    }
    if (spec.busybox !== false) {
      const bb = busyboxPath();
      fs.copyFileSync(bb, path.join(root, 'bin/busybox'));
      fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
      const applets = execFileSync(bb, ['--list-full'], { encoding: 'utf8' }).split('\n').filter(Boolean);
      for (const a of applets) {
        if (a === 'bin/busybox') continue;
        const p = path.join(root, a);
        fs.mkdirSync(path.dirname(p), { recursive: true });
        if (!fs.existsSync(p)) fs.symlinkSync('/bin/busybox', p);
      }
    }
    for (const bin of spec.binaries ?? []) copyBinary(root, bin, bin);
    for (const [guest, host] of Object.entries(spec.binariesAt ?? {})) copyBinary(root, host, guest);
    for (const host of spec.librariesOf ?? []) copyLibraries(root, host);
    for (const [guest, host] of Object.entries(spec.files ?? {})) {
      const p = path.join(root, guest);
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.rmSync(p, { force: true });
      fs.copyFileSync(host, p);
      fs.chmodSync(p, fs.statSync(host).mode & 0o777);
    }
    for (const [guest, t] of Object.entries(spec.texts ?? {})) {
      const p = path.join(root, guest);
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.rmSync(p, { force: true });
      fs.writeFileSync(p, t.data, { mode: t.mode ?? 0o644 });
      fs.chmodSync(p, t.mode ?? 0o644);
    }
    for (const [guest, target] of Object.entries(spec.symlinks ?? {})) {
      const p = path.join(root, guest);
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.rmSync(p, { force: true });
      fs.symlinkSync(target, p);
    }
    if (spec.modules) copyModules(root, spec.modules.kver, spec.modules.names);
    fs.mkdirSync(path.dirname(outFile), { recursive: true });
    const sh = `cd '${root}' && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0 | zstd -q -3 -T0 -f -o '${outFile}'`;
    const r = spawnSync('bash', ['-o', 'pipefail', '-c', sh], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`building ${outFile} failed: ${r.stderr}`);
    return outFile;
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

function busyboxPath(): string {
  for (const p of ['/usr/bin/busybox', '/bin/busybox']) if (fs.existsSync(p)) return p;
  throw new Error('no busybox on the host (apt-get install busybox-static)');
}

/** Copies an executable and the libraries ldd names for it (test harness only; lastword resolves DT_NEEDED itself). */
function copyBinary(root: string, host: string, guest: string): void {
  const dst = path.join(root, guest);
  fs.mkdirSync(path.dirname(dst), { recursive: true });
  fs.copyFileSync(host, dst);
  fs.chmodSync(dst, 0o755);
  copyLibraries(root, host);
}

function copyLibraries(root: string, host: string): void {
  const r = spawnSync('ldd', [host], { encoding: 'utf8' });
  if (r.status !== 0) return; // static
  for (const line of r.stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s/.exec(line);
    if (!m) continue;
    const lib = m[1]!;
    const p = path.join(root, lib);
    if (fs.existsSync(p)) continue;
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.copyFileSync(fs.realpathSync(lib), p);
  }
  const ld = path.join(root, 'lib64/ld-linux-x86-64.so.2');
  if (!fs.existsSync(ld)) {
    fs.mkdirSync(path.dirname(ld), { recursive: true });
    fs.copyFileSync(fs.realpathSync('/lib64/ld-linux-x86-64.so.2'), ld);
  }
}

/** Modules and their dependencies in load order (modprobe --show-depends), listed in /etc/modules.list. */
function copyModules(root: string, kver: string, names: string[]): void {
  const dir = path.join(root, 'lib/modules', kver);
  fs.mkdirSync(dir, { recursive: true });
  const order: string[] = [];
  for (const name of names) {
    const out = execFileSync('modprobe', ['-S', kver, '--show-depends', name], { encoding: 'utf8' });
    for (const line of out.split('\n')) {
      const m = /^insmod (\S+)/.exec(line);
      if (!m) continue;
      const bn = path.basename(m[1]!);
      if (order.includes(bn)) continue;
      fs.copyFileSync(m[1]!, path.join(dir, bn));
      order.push(bn);
    }
  }
  fs.writeFileSync(path.join(root, 'etc/modules.list'), order.join('\n') + '\n');
}

/** A sparse raw disk image; with `label`, an ext4 filesystem made by the host's mkfs.ext4 -L (filled from `fromDir`). */
export function makeDisk(file: string, sizeMiB: number, opts: { ext4Label?: string; fromDir?: string } = {}): string {
  fs.rmSync(file, { force: true });
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.closeSync(fs.openSync(file, 'w'));
  fs.truncateSync(file, sizeMiB * 1024 * 1024);
  if (opts.ext4Label) {
    const from = opts.fromDir ? ['-d', opts.fromDir] : [];
    execFileSync('mkfs.ext4', ['-q', '-F', '-L', opts.ext4Label, '-E', 'lazy_itable_init=0,lazy_journal_init=0', ...from, file], { stdio: 'ignore' });
  }
  return file;
}

/**
 * Copies what the guest wrote under `dir` of an ext4 image to `dest` on the host, with debugfs
 * (no mount, so no loop device and nothing to clean up). Returns the host paths copied.
 */
export function extractExt4Tree(image: string, dest: string): string[] {
  fs.mkdirSync(dest, { recursive: true });
  const r = spawnSync('debugfs', ['-R', `rdump / ${dest}`, image], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`debugfs rdump of ${image} failed: ${r.stderr}`);
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(dest);
  return out;
}

export interface GuestOptions {
  kernel: string;
  initrd: string;
  append: string;
  memMiB?: number;
  smp?: number;
  /** raw disk images, attached as virtio (vda, vdb, ...) */
  disks?: string[];
  /**
   * q35: a PCIe machine where each disk sits behind its own pcie-root-port (disk i on bus i+1,
   * function 0000:0<i+1>:00.0), so its virtio-pci function is PCIe and offers FLR; default i440fx.
   */
  machine?: 'q35';
  /** a tap device (already made, in `netns`) for a virtio NIC */
  tap?: string;
  mac?: string;
  /** run QEMU inside this network namespace (ip netns exec) */
  netns?: string;
  /** false: keep running across a guest reboot (to see the second primary boot) */
  noReboot?: boolean;
  /** console log copy on the host */
  logFile?: string;
  /** echo the console to this stream as it arrives (the demo) */
  echo?: NodeJS.WritableStream;
  /** more QEMU arguments (devices, -qmp) */
  qemuArgs?: string[];
}

/** A running guest: its serial console is QEMU's stdio, so tests read and type on it. */
export class Guest {
  readonly proc: ChildProcess;
  console = '';
  /** Date.now() of the last console output */
  lastOutputAt = Date.now();
  readonly exited: Promise<number | null>;
  private waiters: Array<() => void> = [];
  private exitCode: number | null | undefined;
  private log?: number;

  constructor(opts: GuestOptions) {
    const args = [
      '-accel', tcgAccel(bzImageRelease(opts.kernel) ?? ''), '-m', String(opts.memMiB ?? 1024), '-smp', String(opts.smp ?? 2),
      '-display', 'none', '-vga', 'none', '-monitor', 'none', '-serial', 'stdio',
      '-kernel', opts.kernel, '-initrd', opts.initrd, '-append', opts.append,
    ];
    if (opts.noReboot !== false) args.push('-no-reboot');
    if (opts.machine === 'q35') {
      args.push('-machine', 'q35');
      (opts.disks ?? []).forEach((d, i) => args.push(
        '-device', `pcie-root-port,id=rp${i},bus=pcie.0,chassis=${i + 1},addr=0x${(0x10 + i).toString(16)}`,
        '-drive', `file=${d},format=raw,if=none,id=disk${i},cache=unsafe`,
        '-device', `virtio-blk-pci,drive=disk${i},bus=rp${i}`,
      ));
    } else {
      for (const d of opts.disks ?? []) args.push('-drive', `file=${d},format=raw,if=virtio,cache=unsafe`);
    }
    if (opts.tap) {
      args.push('-netdev', `tap,id=n0,ifname=${opts.tap},script=no,downscript=no`,
        '-device', `virtio-net-pci,netdev=n0,mac=${opts.mac ?? DEFAULT_GUEST_MAC}`);
    } else {
      args.push('-nic', 'none');
    }
    args.push(...(opts.qemuArgs ?? []));
    const cmd = opts.netns ? 'ip' : 'qemu-system-x86_64';
    const full = opts.netns ? ['netns', 'exec', opts.netns, 'qemu-system-x86_64', ...args] : args;
    if (opts.logFile) {
      fs.mkdirSync(path.dirname(opts.logFile), { recursive: true });
      this.log = fs.openSync(opts.logFile, 'w');
    }
    this.proc = spawn(cmd, full, { stdio: ['pipe', 'pipe', 'pipe'] });
    const onData = (b: Buffer): void => {
      const s = b.toString('latin1');
      this.console += s;
      this.lastOutputAt = Date.now();
      if (this.log !== undefined) fs.writeSync(this.log, b);
      opts.echo?.write(s);
      this.wake();
    };
    this.proc.stdout!.on('data', onData);
    this.proc.stderr!.on('data', onData);
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code) => {
        this.exitCode = code;
        if (this.log !== undefined) fs.closeSync(this.log);
        this.log = undefined;
        this.wake();
        resolve(code);
      });
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /**
   * Resolves with the match once `re` appears in the console after `from` (an offset into it);
   * rejects when the guest exits first or `timeoutMs` passes (a hang guard, not a speed check).
   */
  async waitFor(re: RegExp, timeoutMs: number, from = 0): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(this.console.slice(from));
      if (m) return m;
      if (!this.running) throw new Error(`guest exited (${this.exitCode}) before ${re} appeared; console tail:\n${this.tail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${re} did not appear in ${timeoutMs / 1000} s; console tail:\n${this.tail()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  /** Waits for QEMU to end by itself (poweroff, -no-reboot), killing it after `timeoutMs`. */
  async waitExit(timeoutMs: number): Promise<number | null> {
    const t = setTimeout(() => this.kill(), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(t);
    }
  }

  /**
   * Waits for QEMU to end by itself; kills it when the console has been silent for `idleMs` (a
   * guest stuck in a shell or a hang) or after `timeoutMs`. Returns whether it ended by itself.
   */
  async waitExitOrIdle(idleMs: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.running) {
      if (Date.now() - this.lastOutputAt > idleMs || Date.now() > deadline) {
        this.kill();
        await this.exited;
        return false;
      }
      await Promise.race([this.exited, new Promise((res) => setTimeout(res, 1000))]);
    }
    return true;
  }

  type(text: string): void {
    this.proc.stdin!.write(text);
  }

  kill(): void {
    if (this.running) this.proc.kill('SIGKILL');
  }

  tail(lines = 40): string {
    return this.console.split('\n').slice(-lines).join('\n');
  }
}

/** Seconds since `t0` (Date.now()), one decimal. */
export function since(t0: number): string {
  return ((Date.now() - t0) / 1000).toFixed(1);
}
