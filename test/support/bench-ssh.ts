// The SSH leg of the bench: an OpenSSH sshd on 127.0.0.1 with its own config, keys and
// known_hosts in a temp dir (root login by a fresh ed25519 key only), stopped and removed by
// stop(). The same server receives OpenSSH's `cat | ssh` and lastword's ssh2 stream.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export interface BenchSshd {
  dir: string;
  port: number;
  clientKey: string;
  knownHosts: string;
  /** Where the server writes what it receives (under `dir`). */
  inbox: string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function listening(port: number, server: ChildProcess): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (server.exitCode !== null) throw new Error(`bench: sshd exited ${server.exitCode}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`bench: sshd did not listen on 127.0.0.1:${port}`);
}

export async function startBenchSshd(): Promise<BenchSshd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-bench-sshd-'));
  let server: ChildProcess | undefined;
  try {
    const hostKey = path.join(dir, 'ssh_host_ed25519_key');
    const clientKey = path.join(dir, 'client_ed25519');
    for (const k of [hostKey, clientKey]) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'lastword-bench', '-f', k]);
    fs.copyFileSync(clientKey + '.pub', path.join(dir, 'authorized_keys'));
    const port = await freePort();
    const pub = fs.readFileSync(hostKey + '.pub', 'utf8').trim().split(' ').slice(0, 2).join(' ');
    const knownHosts = path.join(dir, 'known_hosts');
    fs.writeFileSync(knownHosts, `[127.0.0.1]:${port} ${pub}\n`);
    const inbox = path.join(dir, 'inbox');
    fs.mkdirSync(inbox);
    fs.writeFileSync(path.join(dir, 'sshd_config'), [
      'ListenAddress 127.0.0.1', `Port ${port}`, `HostKey ${hostKey}`, `PidFile ${dir}/sshd.pid`,
      `AuthorizedKeysFile ${dir}/authorized_keys`, 'PermitRootLogin prohibit-password',
      'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no',
      'Subsystem sftp internal-sftp', 'LogLevel ERROR',
    ].join('\n') + '\n');
    fs.mkdirSync('/run/sshd', { recursive: true }); // privilege separation directory sshd insists on
    server = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', path.join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'inherit'] });
    await listening(port, server);
    const srv = server;
    return {
      dir, port, clientKey, knownHosts, inbox,
      async stop() {
        if (srv.exitCode === null) {
          const gone = new Promise((r) => srv.once('exit', r));
          srv.kill('SIGTERM');
          await gone;
        }
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    server?.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** OpenSSH client arguments for the bench server: strict host keys, batch mode, the bench key only. */
export function opensshArgs(s: BenchSshd): string[] {
  return ['-p', String(s.port), '-i', s.clientKey, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes',
    '-o', `UserKnownHostsFile=${s.knownHosts}`, '-o', 'IdentitiesOnly=yes', '-F', '/dev/null', 'root@127.0.0.1'];
}
