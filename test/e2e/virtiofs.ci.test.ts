// E2E, virtiofs target (kdump.conf `virtiofs <tag>`, as kdumpctl takes it): the guest has a
// vhost-user-fs device served by QEMU's virtiofsd from a host directory; the capture kernel loads
// the virtiofs driver, mounts the tag (no block device to wait for) and writes the dump there, where
// the host sees it and crash opens it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { crashBinary, debugVmlinux } from '../support/lab.ts';
import {
  CAPTURE_APPEND, classifyDumpFiles, crashReport, e2eDir, finalAction, INIT_DIED, listFiles, missingPrerequisite,
  runCycle,
} from './cycle.ts';

const VIRTIOFSD = '/usr/lib/qemu/virtiofsd';
const skip = missingPrerequisite() ?? (fs.existsSync(VIRTIOFSD) ? undefined : `${VIRTIOFSD} is missing (qemu-system-common)`);
const MEM_MIB = 1024;

test('a virtiofs tag as the target: the capture mounts it and the dump lands in the host directory, where crash opens it', { skip, timeout: 900_000 }, async (t) => {
  const base = e2eDir(t, 'virtiofs');
  const share = path.join(base, 'share');
  fs.mkdirSync(share);
  const sock = path.join(base, 'virtiofsd.sock');
  // virtiofsd serves one connection: the guest's, across the kexec into the capture kernel
  const daemon = spawn(VIRTIOFSD, [`--socket-path=${sock}`, '-o', `source=${share}`, '-o', 'cache=none'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let daemonLog = '';
  daemon.stderr.setEncoding('utf8').on('data', (s: string) => { daemonLog += s; });
  t.after(() => { daemon.kill('SIGKILL'); });
  for (let i = 0; i < 100 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(fs.existsSync(sock), `virtiofsd did not start: ${daemonLog}`);
  const run = await runCycle({
    name: 'virtiofs', baseDir: base, memMiB: MEM_MIB,
    kdumpConf: 'virtiofs dumpfs\npath /crash\ncore_collector makedumpfile -l --message-level 7 -d 31\nfinal_action poweroff\nfailure_action reboot\n',
    sysconfig: `KDUMP_COMMANDLINE_APPEND="${CAPTURE_APPEND}"\n`,
    // vhost-user needs the guest's memory shared with virtiofsd
    qemuArgs: [
      '-object', `memory-backend-memfd,id=mem,size=${MEM_MIB}M,share=on`, '-numa', 'node,memdev=mem',
      '-chardev', `socket,id=vfs,path=${sock}`, '-device', 'vhost-user-fs-pci,chardev=vfs,tag=dumpfs',
    ],
  });
  const tail = `${run.guest.tail(60)}\nvirtiofsd:\n${daemonLog.slice(-1500)}`;
  assert.ok(run.capture, `the capture kernel never booted:\n${tail}`);
  assert.doesNotMatch(run.capture, INIT_DIED, `PID 1 died in the capture kernel:\n${tail}`);
  assert.equal(finalAction(run.capture), 'poweroff', `final_action poweroff was not taken:\n${tail}`);
  assert.match(run.capture, /target: +virtiofs dumpfs/);
  const files = classifyDumpFiles(listFiles(path.join(share, 'crash')));
  assert.ok(files.vmcore, `no vmcore under the shared directory: ${listFiles(share).join(' ')}\n${tail}`);
  assert.equal(files.incomplete, undefined, `an incomplete dump was left: ${files.incomplete}`);
  const report = crashReport(crashBinary(), debugVmlinux(run.prepared.kver), files.vmcore!);
  assert.ok(report.ok, `crash could not open the dump:\n${report.output.slice(-3000)}`);
  assert.match(report.output, /LASTWORD-E2E-MARKER primary workload/);
});
