// Network namespaces made by a test, with a tap device for a QEMU guest and real servers (OpenSSH's
// sshd, the kernel's nfsd) listening inside them. Nothing here touches the host's own network:
// every address lives in the namespace, and destroy() removes the namespace with all it holds.
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExecOptions, ExecResult, System } from '../../runtime/system/types.ts';
import { VSFTPD, vsftpdConfig } from '../targets/ftpd.ts';
import { onSignal } from './on-signal.ts';

export class Netns {
  readonly name: string;
  private children: ChildProcess[] = [];
  /**
   * Unregisters the destroy that runs on SIGTERM, SIGINT or SIGHUP: the servers are detached (their
   * own process group) and a namespace outlives its creator, so a cancelled run would leave sshd,
   * vsftpd and ganesha running in an orphaned namespace.
   */
  private forget: () => void = () => {};

  private constructor(name: string) {
    this.name = name;
  }

  /** A fresh namespace with lo up; the name carries the pid so concurrent tests never collide. */
  static create(prefix: string): Netns {
    const name = `${prefix}-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
    execFileSync('ip', ['netns', 'add', name]);
    const ns = new Netns(name);
    ns.forget = onSignal(() => ns.destroy());
    ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  ip(...args: string[]): string {
    return execFileSync('ip', ['-n', this.name, ...args], { encoding: 'utf8' });
  }

  exec(cmd: string, args: string[], opts: { input?: string } = {}): string {
    return execFileSync('ip', ['netns', 'exec', this.name, cmd, ...args], { encoding: 'utf8', input: opts.input });
  }

  /** A tap device for QEMU (-netdev tap,ifname=...), with the host side's address on it. */
  addTap(dev: string, hostCidr: string): void {
    this.ip('tuntap', 'add', 'dev', dev, 'mode', 'tap');
    this.ip('addr', 'add', hostCidr, 'dev', dev);
    this.ip('link', 'set', dev, 'up');
  }

  /** A long-running process inside the namespace, killed by destroy(). */
  spawn(cmd: string, args: string[], logFile?: string): ChildProcess {
    const out = logFile ? fs.openSync(logFile, 'a') : 'ignore';
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: ['ignore', out, out], detached: true });
    if (typeof out === 'number') fs.closeSync(out);
    this.children.push(child);
    return child;
  }

  destroy(): void {
    this.forget();
    for (const c of this.children) {
      if (c.exitCode === null && c.pid !== undefined) {
        try { process.kill(-c.pid, 'SIGKILL'); } catch { /* already gone */ }
      }
    }
    // Processes started in the namespace by others (QEMU) must not keep it alive.
    spawnSync('ip', ['netns', 'pids', this.name], { encoding: 'utf8' }).stdout?.split('\n').filter(Boolean)
      .forEach((pid) => { try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ } });
    spawnSync('ip', ['netns', 'del', this.name]);
  }
}

export interface SshServer {
  address: string;
  port: number;
  /** known_hosts line for the server's host key */
  knownHostsLine: string;
  /** private key (OpenSSH format) authorized for root */
  clientKey: string;
  clientKeyPub: string;
  /** a host key the server does NOT use: known_hosts for the "unknown host key" case */
  otherKnownHostsLine: string;
  logFile: string;
}

/** OpenSSH's sshd in `ns` on `address`:22, root login with a fresh ed25519 key only. */
export async function startSshd(ns: Netns, dir: string, address: string): Promise<SshServer> {
  fs.mkdirSync(dir, { recursive: true });
  const keygen = (file: string): void => {
    fs.rmSync(file, { force: true });
    fs.rmSync(file + '.pub', { force: true });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'lastword-e2e', '-f', file]);
  };
  const hostKey = path.join(dir, 'ssh_host_ed25519_key');
  const otherHostKey = path.join(dir, 'other_host_ed25519_key');
  const clientKey = path.join(dir, 'kdump_id_ed25519');
  keygen(hostKey);
  keygen(otherHostKey);
  keygen(clientKey);
  fs.copyFileSync(clientKey + '.pub', path.join(dir, 'authorized_keys'));
  const logFile = path.join(dir, 'sshd.log');
  const config = [
    `ListenAddress ${address}`, 'Port 22', `HostKey ${hostKey}`, `PidFile ${dir}/sshd.pid`,
    `AuthorizedKeysFile ${dir}/authorized_keys`, 'PermitRootLogin prohibit-password',
    'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no',
    'Subsystem sftp internal-sftp', 'LogLevel VERBOSE',
  ].join('\n') + '\n';
  fs.writeFileSync(path.join(dir, 'sshd_config'), config);
  fs.mkdirSync('/run/sshd', { recursive: true }); // privilege separation directory sshd insists on
  ns.spawn('/usr/sbin/sshd', ['-D', '-e', '-f', path.join(dir, 'sshd_config')], logFile);
  await listeningIn(ns, address, 22);
  const pub = (f: string): string => fs.readFileSync(f + '.pub', 'utf8').trim().split(' ').slice(0, 2).join(' ');
  return {
    address, port: 22, logFile,
    knownHostsLine: `${address} ${pub(hostKey)}`,
    otherKnownHostsLine: `${address} ${pub(otherHostKey)}`,
    clientKey, clientKeyPub: clientKey + '.pub',
  };
}

export interface FtpServer {
  address: string;
  /** what the server shows as / to an anonymous login; uploads go to <root>/incoming */
  root: string;
}

/** vsftpd in `ns` on `address`:21, anonymous uploads (busybox ftpput's login) into /incoming. */
export async function startFtpd(ns: Netns, dir: string, address: string): Promise<FtpServer> {
  fs.mkdirSync(dir, { recursive: true });
  const { conf, root } = vsftpdConfig(dir, address, 21);
  ns.spawn(VSFTPD, [conf], path.join(dir, 'vsftpd.stderr'));
  await listeningIn(ns, address, 21);
  return { address, root };
}

/** Waits until something in `ns` listens on `address`:`port`. */
async function listeningIn(ns: Netns, address: string, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = spawnSync('ip', ['netns', 'exec', ns.name, 'ss', '-ltnH', `src ${address}:${port}`], { encoding: 'utf8' });
    if (r.stdout.includes(`:${port}`)) return;
    await new Promise((res) => setTimeout(res, 100));
  }
}

export interface NfsServer {
  address: string;
  /** the NFSv4 path clients mount: `${address}:${pseudo}` */
  pseudo: string;
  /** host directory behind the export */
  exportDir: string;
  logFile: string;
}

/**
 * A real NFSv4 server in `ns`: NFS-Ganesha (Debian's nfs-ganesha + nfs-ganesha-vfs) exporting
 * `exportDir` as `pseudo`, rw, no root squash. The kernel's nfsd would be the first choice, but the
 * kernel this machine runs has no nfsd module; Ganesha speaks the same protocol from user space.
 */
export async function startNfsServer(ns: Netns, dir: string, address: string, pseudo = '/srv/crash'): Promise<NfsServer> {
  const exportDir = path.join(dir, 'export');
  fs.mkdirSync(exportDir, { recursive: true });
  const conf = path.join(dir, 'ganesha.conf');
  const logFile = path.join(dir, 'ganesha.log');
  fs.writeFileSync(conf, [
    `NFS_CORE_PARAM { Protocols = 4; Bind_addr = ${address}; NFS_Port = 2049; Enable_NLM = false; Enable_RQUOTA = false; }`,
    'NFSV4 { Graceless = true; RecoveryBackend = fs; }',
    'NFS_KRB5 { Active_krb5 = false; }',
    `EXPORT { Export_Id = 1; Path = ${exportDir}; Pseudo = ${pseudo}; Access_Type = RW; Squash = No_Root_Squash; SecType = sys; Protocols = 4; Transports = TCP; FSAL { Name = VFS; } }`,
    'LOG { Default_Log_Level = EVENT; }', '',
  ].join('\n'));
  ns.spawn('ganesha.nfsd', ['-F', '-f', conf, '-L', logFile, '-p', path.join(dir, 'ganesha.pid'), '-N', 'NIV_EVENT']);
  for (let i = 0; i < 150; i++) {
    if (fs.existsSync(logFile) && fs.readFileSync(logFile, 'utf8').includes('NFS SERVER INITIALIZED')) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  if (!fs.readFileSync(logFile, 'utf8').includes('NFS SERVER INITIALIZED')) throw new Error(`NFS-Ganesha did not start; see ${logFile}`);
  return { address, pseudo, exportDir, logFile };
}

/**
 * A System whose programs run inside `ns` (ip netns exec), for the capture's network code; only
 * sethostname and log are recorded instead of done, since a namespace does not isolate the host name.
 */
export function netnsSystem(ns: Netns): System & { hostnames: string[]; logs: string[] } {
  const hostnames: string[] = [];
  const logs: string[] = [];
  const exec = (file: string, args: readonly string[], o: ExecOptions = {}) => new Promise<ExecResult>((resolve) => {
    execFile('ip', ['netns', 'exec', ns.name, file, ...args], { timeout: o.timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { killed?: boolean; code?: number | string }) | null;
      resolve({ exitCode: e ? (typeof e.code === 'number' ? e.code : -1) : 0, stdout, stderr, timedOut: !!e?.killed });
    });
  });
  return {
    exec, hostnames, logs,
    now: () => performance.now(),
    sleep: (ms: number) => new Promise((r) => { setTimeout(r, ms); }),
    log: (l: string) => { logs.push(l); },
    sethostname: (n: string) => { hostnames.push(n); },
  } as unknown as System & { hostnames: string[]; logs: string[] };
}
