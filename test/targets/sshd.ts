// A real OpenSSH sshd for the target tests: own config, fresh host and client keys, 127.0.0.1 on
// a free port, everything in one temp dir that stop() removes with the server.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export interface LoopbackSshd {
  dir: string;
  port: number;
  clientKey: string;
  /** known_hosts holding the server's real key for [127.0.0.1]:port */
  knownHosts: string;
  /** known_hosts holding another ed25519 key for the same host: a "changed" key */
  changedKnownHosts: string;
  /** known_hosts that only knows some other host */
  unknownKnownHosts: string;
  hostFingerprint: string;
  /** pids of the per-connection sshd processes (children of the listener) */
  sessionPids(): number[];
  stop(): void;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Waits (up to 5 s) until something accepts connections on 127.0.0.1:port. */
export async function waitListening(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A server's temp dir and its process (started detached), both gone after stop(). */
export function serverWorkspace(prefix: string): { dir: string; started(c: ChildProcess): void; stop(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  let child: ChildProcess | undefined;
  return {
    dir,
    started: (c) => { child = c; },
    stop: () => {
      if (child?.pid !== undefined && child.exitCode === null) {
        try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startLoopbackSshd(opts: { sftp?: boolean } = {}): Promise<LoopbackSshd> {
  const ws = serverWorkspace('lw-sshd-');
  const { dir, stop } = ws;
  let child: ChildProcess | undefined;
  try {
    const keygen = (name: string): string => {
      const f = path.join(dir, name);
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'lastword-test', '-f', f]);
      return f;
    };
    const hostKey = keygen('ssh_host_ed25519_key');
    const otherKey = keygen('other_host_ed25519_key');
    const clientKey = keygen('kdump_id_ed25519');
    fs.copyFileSync(clientKey + '.pub', path.join(dir, 'authorized_keys'));
    const port = await freePort();
    const config = [
      'ListenAddress 127.0.0.1', `Port ${port}`, `HostKey ${hostKey}`, `PidFile ${dir}/sshd.pid`,
      `AuthorizedKeysFile ${dir}/authorized_keys`, 'PermitRootLogin prohibit-password',
      'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no',
      ...(opts.sftp === false ? [] : ['Subsystem sftp internal-sftp']), 'LogLevel VERBOSE',
    ].join('\n') + '\n';
    fs.writeFileSync(path.join(dir, 'sshd_config'), config);
    fs.mkdirSync('/run/sshd', { recursive: true });
    const log = fs.openSync(path.join(dir, 'sshd.log'), 'a');
    child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', path.join(dir, 'sshd_config')], { stdio: ['ignore', log, log], detached: true });
    ws.started(child);
    fs.closeSync(log);
    await waitListening(port);
    const pub = (f: string) => fs.readFileSync(f + '.pub', 'utf8').trim().split(' ').slice(0, 2).join(' ');
    const write = (name: string, text: string) => {
      const f = path.join(dir, name);
      fs.writeFileSync(f, text);
      return f;
    };
    const hostFingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', hostKey + '.pub'], { encoding: 'utf8' }).split(' ')[1]!;
    const listener = child.pid!;
    return {
      dir, port, clientKey, hostFingerprint,
      knownHosts: write('known_hosts', `[127.0.0.1]:${port} ${pub(hostKey)}\n`),
      changedKnownHosts: write('known_hosts.changed', `[127.0.0.1]:${port} ${pub(otherKey)}\n`),
      unknownKnownHosts: write('known_hosts.unknown', `otherhost.example ${pub(hostKey)}\n`),
      sessionPids: () => {
        const out = execFileSync('ps', ['-o', 'pid=', '--ppid', String(listener)], { encoding: 'utf8' });
        return out.split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);
      },
      stop,
    };
  } catch (err) {
    stop();
    throw err;
  }
}
