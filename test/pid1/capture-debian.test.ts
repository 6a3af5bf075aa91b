// Debian's kdump-config writes one dump to each target it has, in turn: FTP, then SSH, then NFS or
// the local KDUMP_COREDIR. The whole capture from a real /etc/default/kdump-tools to a real vsftpd
// and a real OpenSSH sshd on 127.0.0.1, with the real filter and writer on the lab vmcore: both
// dumps are makedumpfile -R streams that crash opens; a dead FTP server still leaves the SSH dump.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { loadPlan } from '../../runtime/config/load.ts';
import { planTargets, type Plan } from '../../runtime/config/plan.ts';
import { realStages } from '../../runtime/cli/save.ts';
import { capture } from '../../runtime/pid1/capture.ts';
import { realSystem } from '../../runtime/system/real.ts';
import { signature } from '../support/kdump-header.ts';
import { labVmcore } from '../support/lab.ts';
import { crashOpens, missingReference, reassemble } from '../targets/dumps.ts';
import { startLoopbackFtpd, VSFTPD, type LoopbackFtpd } from '../targets/ftpd.ts';
import { startLoopbackSshd, type LoopbackSshd } from '../targets/sshd.ts';

const skip = missingReference() ?? (fs.existsSync(VSFTPD) ? undefined : 'vsftpd is missing (bash .ci/setup)');
let sshd: LoopbackSshd;
let ftpd: LoopbackFtpd;
before(async () => {
  if (skip) return;
  sshd = await startLoopbackSshd();
  ftpd = await startLoopbackFtpd();
});
after(() => { sshd?.stop(); ftpd?.stop(); });

/** kdump-tools with FTP= and SSH=, read by loadPlan; the ssh port and known_hosts are the test sshd's. */
function debianPlan(name: string, ftpPort: number): { plan: Plan; coredir: string } {
  const coredir = path.join(sshd.dir, name);
  const file = path.join(sshd.dir, `${name}.kdump-tools`);
  fs.writeFileSync(file, [
    'USE_KDUMP=1', `KDUMP_COREDIR="${coredir}"`, 'MAKEDUMP_ARGS="-c -d 31"', 'KDUMP_FAIL_CMD="halt -f"',
    'FTP="127.0.0.1:/incoming"', `FTP_PORT=${ftpPort}`, 'SSH="root@127.0.0.1"', `SSH_KEY="${sshd.clientKey}"`, '',
  ].join('\n'));
  const plan = loadPlan({ config: file, cmdline: '' });
  assert.deepEqual(planTargets(plan).map((t) => t.kind), ['ftp', 'ssh']);
  for (const t of planTargets(plan)) {
    if (t.kind === 'ssh') { t.port = sshd.port; t.knownHosts = sshd.knownHosts; }
  }
  return { plan, coredir };
}

async function run(plan: Plan) {
  const lines: string[] = [];
  const sys = realSystem({ log: (l) => lines.push(l) });
  const out = await capture({ sys, plan, vmcore: labVmcore(), prepareSystem: false, emit: (l) => lines.push(l), stages: realStages(sys, {}) });
  return { out, text: lines.join('\n') };
}

test('FTP= and SSH=: a flattened dump on each server, in that order, both open in crash after makedumpfile -R', { skip, timeout: 600_000 }, async () => {
  const { plan, coredir } = debianPlan('both', ftpd.port);
  const { out, text } = await run(plan);
  assert.equal(out.ok, true, `${out.reason}\n${text}`);
  const ftpFiles = fs.readdirSync(path.join(ftpd.root, 'incoming')).sort();
  const ftpDump = ftpFiles.find((f) => /^127\.0\.0\.1-dump\.\d{12}$/.test(f));
  assert.ok(ftpDump, `on the FTP server: ${ftpFiles.join(' ')}`);
  assert.ok(ftpFiles.some((f) => /^127\.0\.0\.1-dmesg\.\d{12}$/.test(f)), ftpFiles.join(' '));
  const [sshDir, ...more] = fs.readdirSync(coredir);
  assert.match(sshDir ?? '', /^127\.0\.0\.1-\d{12}$/);
  assert.equal(more.length, 0);
  const sshFiles = fs.readdirSync(path.join(coredir, sshDir!)).sort();
  const sshDump = sshFiles.find((f) => /^dump\.\d{12}$/.test(f));
  assert.ok(sshDump, `on the SSH server: ${sshFiles.join(' ')}`);
  assert.ok(!sshFiles.some((f) => f.includes('incomplete')), sshFiles.join(' '));
  // FTP first: its summary says the SSH dump comes next; the capture's summary is SSH's
  assert.match(text, /dump saved\n.*target: +ftp [\s\S]*next: +the dump to ssh root@127\.0\.0\.1[\s\S]*dump saved\n.*target: +ssh [\s\S]*final action/);

  const ftpKdump = reassemble(path.join(ftpd.root, 'incoming', ftpDump!), path.join(sshd.dir, 'ftp.kdump'));
  const sshKdump = reassemble(path.join(coredir, sshDir!, sshDump!), path.join(sshd.dir, 'ssh.kdump'));
  for (const f of [ftpKdump, sshKdump]) assert.equal(signature(f), 'KDUMP   ', f);
  // the same pages went to both: same size once reassembled
  assert.equal(fs.statSync(ftpKdump).size, fs.statSync(sshKdump).size);
  const c = crashOpens(ftpKdump);
  assert.ok(c.ok, c.output.slice(-2000));
});

test('a dead FTP server does not stop the SSH dump, which decides the action as in kdump-config; FTP is named', { skip, timeout: 600_000 }, async () => {
  const { plan, coredir } = debianPlan('ftp-down', 1);
  const { out, text } = await run(plan);
  assert.equal(out.ok, true, out.reason);
  assert.equal(out.action, plan.finalAction);
  assert.match(out.reason, /^dump saved; no dump on: ftp 127\.0\.0\.1:\/incoming: /);
  assert.match(text, /dump FAILED\n.*target: +ftp [\s\S]*dump saved\n.*target: +ssh [\s\S]*reason: +no dump on: ftp [\s\S]*final action/);
  const [sshDir] = fs.readdirSync(coredir);
  const sshFiles = fs.readdirSync(path.join(coredir, sshDir!));
  assert.ok(sshFiles.some((f) => /^dump\.\d{12}$/.test(f)), sshFiles.join(' '));
});
