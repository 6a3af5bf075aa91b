// E2E, fence_kdump: a cluster node's real fence_kdump agent (Debian's fence-agents) waits in a
// network namespace for the crashed node's notification, as pacemaker runs it before it would
// power-fence the node. The guest dumps to its own ext4 disk; kdump.conf fence_kdump_nodes names
// the agent's address, so the capture brings the network up from ip= only for the notification.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { cacheDir, crashBinary, debugVmlinux } from '../support/lab.ts';
import { Netns } from '../support/netns.ts';
import { extractExt4Tree } from '../support/qemu.ts';
import {
  CAPTURE_APPEND_NET, classifyDumpFiles, crashReport, e2eDir, finalAction, GUEST_IP, HOST_IP, INIT_DIED,
  missingPrerequisite, runCycle,
} from './cycle.ts';

const agent = path.join(cacheDir, 'fence-agents', 'usr', 'sbin', 'fence_kdump');
const skip = missingPrerequisite() || (fs.existsSync(agent) ? false : 'fence-agents not unpacked in .cache (.ci/setup does it)');

test('the capture notifies the cluster node\'s real fence_kdump agent while it saves the dump to a local disk', { skip, timeout: 900_000 }, async (t) => {
  const base = e2eDir(t, 'fence');
  const ns = Netns.create('lwfence');
  t.after(() => ns.destroy());
  ns.addTap('lwtap0', `${HOST_IP}/24`);
  // the agent accepts only a valid message from the node's own address
  const agentLog = path.join(base, 'fence_kdump.log');
  const child = ns.spawn(agent, ['-n', GUEST_IP, '-p', '7410', '-t', '1200', '-v'], agentLog);
  const agentExit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const run = await runCycle({
    name: 'fence', baseDir: base,
    kdumpConf: [
      'ext4 LABEL=LWFENCE', 'path /var/crash', 'core_collector makedumpfile -l --message-level 7 -d 31',
      `fence_kdump_nodes ${HOST_IP}`, 'fence_kdump_args -p 7410 -i 2', 'final_action poweroff', 'failure_action reboot', '',
    ].join('\n'),
    sysconfig: `KDUMP_COMMANDLINE_APPEND="${CAPTURE_APPEND_NET}"\n`,
    disks: [{ name: 'dump', sizeMiB: 1024, ext4Label: 'LWFENCE' }],
    net: { netns: ns.name, tap: 'lwtap0' },
  });
  const tail = run.guest.tail(60);
  assert.ok(run.capture, `the capture kernel never booted:\n${tail}`);
  assert.doesNotMatch(run.capture, INIT_DIED, `PID 1 died in the capture kernel:\n${tail}`);
  assert.match(run.capture, new RegExp(`fence_kdump: notifying ${HOST_IP.replace(/\./g, '\\.')} on udp port 7410 every 2 s`), tail);
  const code = await Promise.race([agentExit, new Promise<'running'>((resolve) => setTimeout(() => resolve('running'), 10_000))]);
  const said = fs.readFileSync(agentLog, 'utf8');
  assert.equal(code, 0, `fence_kdump did not take the node as fenced (${code}):\n${said}\n${tail}`);
  assert.match(said, new RegExp(`received valid message from '${GUEST_IP.replace(/\./g, '\\.')}'`));
  assert.equal(finalAction(run.capture), 'poweroff', `final_action poweroff was not taken:\n${tail}`);

  const files = extractExt4Tree(run.prepared.disks.dump!, path.join(base, 'tree')).filter((f) => !f.includes('lost+found'));
  const dump = classifyDumpFiles(files);
  assert.ok(dump.vmcore, `no finished vmcore on the disk (files: ${files.map((f) => path.relative(base, f)).join(', ')}):\n${tail}`);
  // a local dump keeps kdump.sh's 127.0.0.1 name, network or not
  assert.match(path.relative(path.join(base, 'tree'), dump.vmcore), /^var\/crash\/127\.0\.0\.1-\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d\/vmcore$/);
  const report = crashReport(crashBinary(), debugVmlinux(run.prepared.kver), dump.vmcore);
  assert.ok(report.ok, `crash could not open the dump:\n${report.output.slice(-3000)}`);
});
