// E2E, SSH target: the guest's NIC is a tap inside a network namespace the test creates, where a
// real OpenSSH sshd listens; the capture kernel brings the network up from ip= and lastword sends
// the dump over ssh2 with strict host-key checking. Also the fault: an unknown host key is refused.
// And without any ip=: the image builder, run in a namespace standing in for the guest's network
// (a NIC with the guest's MAC and static address), carries that network into the image by MAC.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { crashBinary, debugVmlinux } from '../support/lab.ts';
import { Netns, startSshd, type SshServer } from '../support/netns.ts';
import {
  CAPTURE_APPEND, CAPTURE_APPEND_NET, classifyDumpFiles, crashReport, DEFAULT_LAYOUT, e2eDir, finalAction, GUEST_IP,
  GUEST_MAC, HOST_IP, INIT_DIED, listFiles, missingPrerequisite, reassemble, runCycle, type CycleRun,
} from './cycle.ts';

// The capture image is built on the host for the guest, so the guest NIC's driver is named with
// kdump.conf extra_modules, as for any image built for another machine.
const skip = missingPrerequisite();

interface SshCycleOptions {
  /** build the image inside a namespace whose NIC has the guest's MAC and address, with no ip= anywhere */
  hostNetwork?: boolean;
}

async function sshCycle(base: string, name: string, knownHostsLine: (s: SshServer) => string, final: string, failure: string, opts: SshCycleOptions = {}): Promise<{ run: CycleRun; crashDir: string; ns: Netns }> {
  const ns = Netns.create('lwssh');
  const builder = opts.hostNetwork ? Netns.create('lwsshb') : undefined;
  try {
    if (builder) {
      // The guest as the builder sees it: its NIC (QEMU's default MAC) with its static address.
      builder.ip('link', 'add', 'ens3', 'address', GUEST_MAC, 'type', 'veth', 'peer', 'name', 'ens3peer');
      builder.ip('addr', 'add', `${GUEST_IP}/24`, 'dev', 'ens3');
      builder.ip('link', 'set', 'ens3', 'up');
      builder.ip('link', 'set', 'ens3peer', 'up');
    }
    ns.addTap('lwtap0', `${HOST_IP}/24`);
    const server = await startSshd(ns, path.join(base, 'sshd'), HOST_IP);
    const crashDir = path.join(base, 'crash');
    fs.mkdirSync(crashDir);
    const run = await runCycle({
      name, baseDir: base,
      kdumpConf: [
        `ssh root@${HOST_IP}`, 'sshkey /root/.ssh/kdump_id_ed25519', `path ${crashDir}`,
        'core_collector makedumpfile -l --message-level 7 -d 31', 'extra_modules virtio_net',
        `final_action ${final}`, `failure_action ${failure}`, '',
      ].join('\n'),
      sysconfig: `KDUMP_COMMANDLINE_APPEND="${opts.hostNetwork ? CAPTURE_APPEND : CAPTURE_APPEND_NET}"\n`,
      ...(builder ? { builderNetns: builder.name, initramfsArgs: ['--layout', DEFAULT_LAYOUT, '--host-network'] } : {}),
      // the guest's own files: the key kdumpctl propagate would have made, and known_hosts
      guestFiles: {
        '/root/.ssh/kdump_id_ed25519': { data: fs.readFileSync(server.clientKey), mode: 0o600 },
        '/root/.ssh/kdump_id_ed25519.pub': { data: fs.readFileSync(server.clientKeyPub) },
        '/root/.ssh/known_hosts': { data: knownHostsLine(server) + '\n' },
      },
      net: { netns: ns.name, tap: 'lwtap0' },
    });
    return { run, crashDir, ns };
  } catch (err) {
    ns.destroy();
    throw err;
  } finally {
    builder?.destroy();
  }
}

test('saves a dump over SSH to a real sshd in a network namespace, which crash opens', { skip, timeout: 900_000 }, async (t) => {
  const base = e2eDir(t, 'ssh');
  const { run, crashDir, ns } = await sshCycle(base, 'ssh', (s) => s.knownHostsLine, 'poweroff', 'reboot');
  ns.destroy();
  const tail = run.guest.tail(60);
  assert.ok(run.capture, `the capture kernel never booted:\n${tail}`);
  assert.doesNotMatch(run.capture, INIT_DIED, `PID 1 died in the capture kernel:\n${tail}`);
  assert.equal(finalAction(run.capture), 'poweroff', `final_action poweroff was not taken:\n${tail}`);
  // the capture kernel's executable loaded ssh2's native ciphers from its own SEA asset
  assert.doesNotMatch(run.capture, /JavaScript ciphers/, `ssh2 fell back to its JavaScript ciphers in the capture kernel:\n${tail}`);
  const dump = classifyDumpFiles(listFiles(crashDir));
  assert.ok(dump.vmcore ?? dump.flat, `no finished dump arrived on the server (${listFiles(crashDir).join(', ')}):\n${tail}`);
  assert.equal(dump.incomplete, undefined, 'an incomplete dump was left next to the finished one');
  // Fedora's layout on the server: <path>/<guest ip>-<YYYY-MM-DD-HH:MM:SS>/
  assert.match(path.basename(dump.dir!), /^10\.0\.2\.15-\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d$/);
  const vmcore = dump.vmcore ?? reassemble(dump.flat!, path.join(base, 'vmcore.reassembled'));
  const report = crashReport(crashBinary(), debugVmlinux(run.prepared.kver), vmcore);
  assert.ok(report.ok, `crash could not open the dump:\n${report.output.slice(-3000)}`);
  assert.match(report.output, /LASTWORD-E2E-MARKER primary workload/);
});

test('refuses an unknown ssh host key in the capture kernel, saves nothing there and runs the failure action', { skip, timeout: 900_000 }, async (t) => {
  const base = e2eDir(t, 'sshkey');
  const { run, crashDir, ns } = await sshCycle(base, 'ssh-unknown-key', (s) => s.otherKnownHostsLine, 'reboot', 'poweroff');
  ns.destroy();
  const tail = run.guest.tail(60);
  assert.ok(run.capture, `the capture kernel never booted:\n${tail}`);
  assert.doesNotMatch(run.capture, INIT_DIED, `PID 1 died in the capture kernel:\n${tail}`);
  assert.match(run.capture, /host key/i, `no console message about the host key:\n${tail}`);
  assert.equal(finalAction(run.capture), 'poweroff', `failure_action poweroff was not taken:\n${tail}`);
  const dump = classifyDumpFiles(listFiles(crashDir));
  assert.equal(dump.vmcore ?? dump.flat, undefined, 'a dump was written to a server whose host key is unknown');
});

test('with no ip= anywhere, the capture brings up the static network the image builder saw, by MAC, and saves the dump', { skip, timeout: 900_000 }, async (t) => {
  const base = e2eDir(t, 'sshhost');
  const { run, crashDir, ns } = await sshCycle(base, 'ssh-host-network', (s) => s.knownHostsLine, 'poweroff', 'reboot', { hostNetwork: true });
  ns.destroy();
  const tail = run.guest.tail(60);
  assert.ok(run.capture, `the capture kernel never booted:\n${tail}`);
  const cmdline = /Command line: (.*)/.exec(run.capture)?.[1];
  assert.ok(cmdline !== undefined && !/(^|\s)ip=/.test(cmdline), `the capture kernel's command line has ip= after all: ${cmdline}`);
  // the capture kernel named the NIC eth0; ifname= from the image renamed it as the builder saw it
  assert.match(run.capture, /eth0 \(52:54:00:12:34:56\) is now ens3/, `the NIC was not renamed by MAC:\n${tail}`);
  assert.match(run.capture, /network: ens3 10\.0\.2\.15\/24 \(static\)/, `the builder's static address was not used:\n${tail}`);
  assert.equal(finalAction(run.capture), 'poweroff', `final_action poweroff was not taken:\n${tail}`);
  const dump = classifyDumpFiles(listFiles(crashDir));
  assert.ok(dump.vmcore ?? dump.flat, `no finished dump arrived on the server (${listFiles(crashDir).join(', ')}):\n${tail}`);
  assert.match(path.basename(dump.dir!), /^10\.0\.2\.15-/);
});
