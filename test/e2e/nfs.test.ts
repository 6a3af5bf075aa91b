// E2E, NFS target: a real NFSv4 server (NFS-Ganesha, see test/support/netns.ts) in a network
// namespace the test creates, the guest's NIC on a tap there; lastword brings the network up from
// ip= in the capture kernel, mounts the export and saves the dump, which crash opens.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import { crashBinary, debugVmlinux } from '../support/lab.ts';
import { Netns, startNfsServer } from '../support/netns.ts';
import {
  CAPTURE_APPEND_NET, classifyDumpFiles, crashReport, DEFAULT_LAYOUT, e2eDir, finalAction, HOST_IP, INIT_DIED,
  listFiles, missingPrerequisite, runCycle,
} from './cycle.ts';
import { spawnSync } from 'node:child_process';

// The capture image is built on the host for the guest, so the guest NIC's driver is named with
// kdump.conf extra_modules, as for any image built for another machine.
const skip = missingPrerequisite()
  ?? (spawnSync('sh', ['-c', 'command -v ganesha.nfsd']).status !== 0 ? 'ganesha.nfsd is missing (bash .ci/setup)' : undefined);

/** A work directory, a network namespace with the guest's tap, and NFS-Ganesha serving in it; all gone after the test. */
async function nfsServerForGuest(t: TestContext, prefix: string, nsName: string) {
  const ns = Netns.create(nsName);
  t.after(() => ns.destroy());      // first: its server works in base
  const base = e2eDir(t, prefix);
  ns.addTap('lwtap0', `${HOST_IP}/24`);
  // Not under base/nfs: that is the cycle's own work directory, which runCycle empties first.
  const server = await startNfsServer(ns, path.join(base, 'server'), HOST_IP);
  return { base, ns, server };
}

test('saves a dump over NFS to a real NFSv4 server in a network namespace, which crash opens', { skip, timeout: 900_000 }, async (t) => {
  const { base, ns, server } = await nfsServerForGuest(t, 'nfs', 'lwnfs');
  const run = await runCycle({
    name: 'nfs', baseDir: base,
    kdumpConf: [
      `nfs ${HOST_IP}:${server.pseudo}`, 'path /var/crash', 'core_collector makedumpfile -l --message-level 7 -d 31',
      'extra_modules virtio_net', 'final_action poweroff', 'failure_action reboot', '',
    ].join('\n'),
    sysconfig: `KDUMP_COMMANDLINE_APPEND="${CAPTURE_APPEND_NET}"\n`,
    net: { netns: ns.name, tap: 'lwtap0' },
  });
  const tail = run.guest.tail(60);
  assert.ok(run.capture, `the capture kernel never booted:\n${tail}`);
  assert.doesNotMatch(run.capture, INIT_DIED, `PID 1 died in the capture kernel:\n${tail}`);
  assert.equal(finalAction(run.capture), 'poweroff', `final_action poweroff was not taken:\n${tail}`);
  // mount.nfs negotiates the version; Ganesha here serves NFSv4 only, so 4.0, 4.1 or 4.2
  const mounted = /lastword: mounted nfs 10\.0\.2\.1:\/srv\/crash on \S+ \(NFS version (4(?:\.\d)?) over tcp, hard, timeo=600, retrans=2\)/.exec(run.capture);
  assert.ok(mounted, `no console line naming the mounted export and its NFS version:\n${tail}`);
  t.diagnostic(`NFS-Ganesha export mounted with NFS version ${mounted[1]}`);
  const files = listFiles(server.exportDir);
  const dump = classifyDumpFiles(files);
  assert.ok(dump.vmcore, `no finished vmcore on the export (${files.join(', ')}):\n${tail}`);
  // Fedora's layout: <export>/<path>/<guest ip>-<YYYY-MM-DD-HH:MM:SS>/vmcore
  assert.match(path.relative(server.exportDir, dump.vmcore), /^var\/crash\/10\.0\.2\.15-\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d\/vmcore$/);
  const report = crashReport(crashBinary(), debugVmlinux(run.prepared.kver), dump.vmcore);
  assert.ok(report.ok, `crash could not open the dump:\n${report.output.slice(-3000)}`);
  assert.match(report.output, /LASTWORD-E2E-MARKER primary workload/);
});

test("Debian's kdump-tools NFS= with NFS_TIMEO / NFS_RETRANS: mounted like kdump-config, the dump in Debian's layout at the export's top", { skip, timeout: 900_000 }, async (t) => {
  const { base, ns, server } = await nfsServerForGuest(t, 'nfs-debian', 'lwnfsd');
  // The capture image carries only this file (--config); the primary's `lastword load` takes the
  // capture command line (ip=) from the guest's sysconfig.
  const kdumpTools = path.join(base, 'kdump-tools');
  fs.writeFileSync(kdumpTools, [
    'USE_KDUMP=1', 'KDUMP_COREDIR="/var/crash"', `NFS="${HOST_IP}:${server.pseudo}"`, 'NFS_TIMEO="100"', 'NFS_RETRANS="2"',
    'HOSTTAG="ip"', 'MAKEDUMP_ARGS="-c -d 31"', '',
  ].join('\n'));
  const run = await runCycle({
    name: 'nfs-debian', baseDir: base,
    kdumpConf: '',
    sysconfig: `KDUMP_COMMANDLINE_APPEND="${CAPTURE_APPEND_NET}"\n`,
    initramfsArgs: ['--layout', DEFAULT_LAYOUT, '--config', kdumpTools],
    net: { netns: ns.name, tap: 'lwtap0' },
  });
  const tail = run.guest.tail(60);
  assert.ok(run.capture, `the capture kernel never booted:\n${tail}`);
  assert.doesNotMatch(run.capture, INIT_DIED, `PID 1 died in the capture kernel:\n${tail}`);
  // kdump-config: mount -t nfs -o nolock -o tcp -o soft -o timeo=$NFS_TIMEO -o retrans=$NFS_RETRANS
  assert.match(run.capture, /lastword: mounted nfs 10\.0\.2\.1:\/srv\/crash on \S+ \(NFS version 4(\.\d)? over tcp, soft, timeo=100, retrans=2\)/, `the export was not mounted with kdump-config's options:\n${tail}`);
  assert.equal(finalAction(run.capture), 'reboot', `kdump-tools' reboot after the dump was not taken:\n${tail}`);
  const files = listFiles(server.exportDir);
  const dump = classifyDumpFiles(files);
  assert.ok(dump.vmcore && dump.dmesg, `no finished dump and dmesg on the export (${files.join(', ')}):\n${tail}`);
  // Debian's layout: the export is KDUMP_COREDIR, so <export>/<ip>-<YYYYMMDDHHMM>/dump.<stamp>
  const m = /^10\.0\.2\.15-(\d{12})\/dump\.(\d{12})$/.exec(path.relative(server.exportDir, dump.vmcore));
  assert.ok(m && m[1] === m[2], `not Debian's layout: ${path.relative(server.exportDir, dump.vmcore)}`);
  assert.equal(path.basename(dump.dmesg), `dmesg.${m[1]}`);
  const report = crashReport(crashBinary(), debugVmlinux(run.prepared.kver), dump.vmcore);
  assert.ok(report.ok, `crash could not open the dump:\n${report.output.slice(-3000)}`);
  assert.match(report.output, /LASTWORD-E2E-MARKER primary workload/);
});
