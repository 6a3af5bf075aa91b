// A real vsftpd for the FTP target tests: anonymous uploads (busybox ftpput's default login, which
// Debian's kdump-config uses without FTP_USER) into <root>/incoming on 127.0.0.1 and a free port,
// everything in one temp dir that stop() removes with the server.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort, serverWorkspace, waitListening } from './sshd.ts';

export const VSFTPD = '/usr/sbin/vsftpd';

export interface LoopbackFtpd {
  dir: string;
  port: number;
  /** what the server shows as / to an anonymous login */
  root: string;
  /** pids of the per-connection vsftpd processes */
  sessionPids(): number[];
  stop(): void;
}

/**
 * vsftpd's config and directories in `dir` for anonymous uploads into <dir>/root/incoming on
 * `address`:`port`; returns the config file and what the server shows as /.
 */
export function vsftpdConfig(dir: string, address: string, port: number): { conf: string; root: string } {
  // vsftpd refuses an anonymous root the ftp user can write to; uploads go below it.
  const root = path.join(dir, 'root');
  fs.mkdirSync(path.join(root, 'incoming'), { recursive: true, mode: 0o755 });
  fs.chmodSync(dir, 0o755);
  fs.chmodSync(root, 0o755);
  spawnSync('chown', ['ftp', path.join(root, 'incoming')]);
  fs.mkdirSync(path.join(dir, 'empty'), { recursive: true, mode: 0o755 });
  const conf = path.join(dir, 'vsftpd.conf');
  fs.writeFileSync(conf, [
    'listen=YES', 'listen_ipv6=NO', `listen_address=${address}`, `listen_port=${port}`, 'background=NO',
    'anonymous_enable=YES', 'local_enable=NO', 'no_anon_password=YES', `anon_root=${root}`, 'write_enable=YES',
    'anon_upload_enable=YES', 'anon_mkdir_write_enable=YES', 'anon_other_write_enable=YES', 'anon_umask=077',
    `secure_chroot_dir=${path.join(dir, 'empty')}`, 'ftp_username=ftp', 'seccomp_sandbox=NO', 'isolate_network=NO',
    'xferlog_enable=NO', `vsftpd_log_file=${path.join(dir, 'vsftpd.log')}`, 'log_ftp_protocol=YES', 'pasv_enable=YES', '',
  ].join('\n'));
  return { conf, root };
}

export async function startLoopbackFtpd(): Promise<LoopbackFtpd> {
  const ws = serverWorkspace('lw-ftpd-');
  const { dir, stop } = ws;
  try {
    const port = await freePort();
    const { conf, root } = vsftpdConfig(dir, '127.0.0.1', port);
    const child = spawn(VSFTPD, [conf], { stdio: 'ignore', detached: true });
    ws.started(child);
    await waitListening(port);
    const listener = child.pid!;
    const sessionPids = () => {
      // vsftpd forks a session process per connection, which forks its unprivileged helper.
      const kids = (pid: number): number[] => (spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).stdout ?? '')
        .split('\n').filter(Boolean).map(Number);
      return kids(listener).flatMap((p) => [p, ...kids(p)]);
    };
    return { dir, port, root, sessionPids, stop };
  } catch (err) {
    stop();
    throw err;
  }
}
