// E2E, Debian's several targets: a kdump-tools file with FTP=, SSH= and NFS= at once, the way
// kdump-config savecore writes a dump to each. vsftpd, OpenSSH's sshd and NFS-Ganesha serve in a
// network namespace the test creates, the guest's NIC on a tap there. The capture kernel brings up
// ip=, then sends a flattened dump by FTP, one by SSH, and writes the last onto the NFS export, in
// that order; each is read back on the host (makedumpfile -R for the flattened ones) and opened by crash.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { crashBinary, debugVmlinux } from '../support/lab.ts';
import { Netns, startFtpd, startNfsServer, startSshd } from '../support/netns.ts';
import { VSFTPD } from '../targets/ftpd.ts';
import {
  CAPTURE_APPEND_NET, classifyDumpFiles, crashReport, DEFAULT_LAYOUT, e2eDir, finalAction, HOST_IP, INIT_DIED,
  listFiles, missingPrerequisite, reassemble, runCycle,
} from './cycle.ts';

const skip = missingPrerequisite()
  ?? (spawnSync('sh', ['-c', 'command -v ganesha.nfsd']).status !== 0 ? 'ganesha.nfsd is missing (bash .ci/setup)' : undefined)
  ?? (fs.existsSync(VSFTPD) ? undefined : 'vsftpd is missing (bash .ci/setup)');

test('FTP=, SSH= and NFS= together: kdump-config\'s order, a dump on each server, every one opens in crash', { skip, timeout: 900_000 }, async (t) => {
  const ns = Netns.create('lwdeb');
  t.after(() => ns.destroy());      // first: its servers work in base
  const base = e2eDir(t, 'debian3');
  fs.chmodSync(base, 0o755);
  ns.addTap('lwtap0', `${HOST_IP}/24`);
  const ftp = await startFtpd(ns, path.join(base, 'ftpd'), HOST_IP);
  const ssh = await startSshd(ns, path.join(base, 'sshd'), HOST_IP);
  const nfs = await startNfsServer(ns, path.join(base, 'nfsd'), HOST_IP);
  // KDUMP_COREDIR is the directory on the SSH server (and the NFS mount point in the capture)
  const coredir = path.join(base, 'ssh-crash');
  fs.mkdirSync(coredir);
  const kdumpTools = path.join(base, 'kdump-tools');
  fs.writeFileSync(kdumpTools, [
    'USE_KDUMP=1', `KDUMP_COREDIR="${coredir}"`, 'MAKEDUMP_ARGS="-c -d 31"', 'HOSTTAG="ip"',
    `FTP="${HOST_IP}:/incoming"`, `SSH="root@${HOST_IP}"`, 'SSH_KEY="/root/.ssh/kdump_id_ed25519"', `NFS="${HOST_IP}:${nfs.pseudo}"`, '',
  ].join('\n'));
  const run = await runCycle({
    name: 'debian3', baseDir: base,
    kdumpConf: '',
    sysconfig: `KDUMP_COMMANDLINE_APPEND="${CAPTURE_APPEND_NET}"\n`,
    initramfsArgs: ['--layout', DEFAULT_LAYOUT, '--config', kdumpTools],
    guestFiles: {
      '/root/.ssh/kdump_id_ed25519': { data: fs.readFileSync(ssh.clientKey), mode: 0o600 },
      '/root/.ssh/kdump_id_ed25519.pub': { data: fs.readFileSync(ssh.clientKeyPub) },
      '/root/.ssh/known_hosts': { data: ssh.knownHostsLine + '\n' },
    },
    net: { netns: ns.name, tap: 'lwtap0' },
  });
  const tail = run.guest.tail(80);
  assert.ok(run.capture, `the capture kernel never booted:\n${tail}`);
  assert.doesNotMatch(run.capture, INIT_DIED, `PID 1 died in the capture kernel:\n${tail}`);
  assert.equal(finalAction(run.capture), 'reboot', `kdump-tools' reboot after the dumps was not taken:\n${tail}`);
  // one summary per target, in kdump-config savecore's order
  const order = [...run.capture.matchAll(/dump saved\s*\n.*target: +(\S+)/g)].map((m) => m[1]);
  assert.deepEqual(order, ['ftp', 'ssh', 'nfs'], `the summaries:\n${tail}`);

  const ftpFiles = listFiles(path.join(ftp.root, 'incoming'));
  const ftpDump = ftpFiles.find((f) => /\/10\.0\.2\.15-dump\.\d{12}$/.test(f));
  assert.ok(ftpDump, `no dump on the FTP server: ${ftpFiles.join(' ')}\n${tail}`);
  assert.ok(ftpFiles.some((f) => /\/10\.0\.2\.15-dmesg\.\d{12}$/.test(f)), `no dmesg on the FTP server: ${ftpFiles.join(' ')}`);
  const sshDump = classifyDumpFiles(listFiles(coredir));
  assert.ok(sshDump.vmcore && sshDump.dmesg, `no dump and dmesg on the SSH server: ${listFiles(coredir).join(' ')}\n${tail}`);
  assert.match(path.relative(coredir, sshDump.vmcore), /^10\.0\.2\.15-\d{12}\/dump\.\d{12}$/);
  const nfsDump = classifyDumpFiles(listFiles(nfs.exportDir));
  assert.ok(nfsDump.vmcore, `no dump on the NFS export: ${listFiles(nfs.exportDir).join(' ')}\n${tail}`);
  assert.match(path.relative(nfs.exportDir, nfsDump.vmcore), /^10\.0\.2\.15-\d{12}\/dump\.\d{12}$/);

  const vmlinux = debugVmlinux(run.prepared.kver);
  for (const [what, dump] of [
    ['FTP', reassemble(ftpDump, path.join(base, 'ftp.kdump'))],
    ['SSH', reassemble(sshDump.vmcore, path.join(base, 'ssh.kdump'))],
    ['NFS', nfsDump.vmcore],
  ] as const) {
    const report = crashReport(crashBinary(), vmlinux, dump);
    assert.ok(report.ok, `crash could not open the ${what} dump:\n${report.output.slice(-3000)}`);
    assert.match(report.output, /LASTWORD-E2E-MARKER primary workload/, `the ${what} dump`);
  }
});
