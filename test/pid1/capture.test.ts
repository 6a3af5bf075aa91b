// The capture flow with a recording fake System and fake stages: order of the steps, what each
// failure leads to, and that nothing is lost. reboot(2) is never called for real (nor by the flow).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { defaultPlan } from '../../runtime/config/defaults.ts';
import type { Plan } from '../../runtime/config/plan.ts';
import { LastwordError } from '../../runtime/errors.ts';
import { runSave } from '../../runtime/cli/save.ts';
import { capture, type CaptureStages } from '../../runtime/pid1/capture.ts';
import type { ExecOptions, ExecResult, System } from '../../runtime/system/types.ts';
import { FsTarget } from '../../runtime/targets/target.ts';

interface Fake extends System {
  calls: string[];
  lines: string[];
}

function fakeSystem(exitCodes: Record<string, number> = {}): Fake {
  let t = 0;
  const calls: string[] = [];
  const lines: string[] = [];
  const never = (name: string) => () => { throw new Error(`${name} must not be called by the capture`); };
  return {
    calls, lines,
    async exec(file: string, args: readonly string[], _o?: ExecOptions): Promise<ExecResult> {
      calls.push(`exec ${[file, ...args].join(' ')}`);
      return { exitCode: exitCodes[file] ?? 0, stdout: '', stderr: '', timedOut: false };
    },
    now: () => (t += 10),
    sleep: async () => {},
    log: (l: string) => { lines.push(l); },
    mount: never('mount'), umount2: never('umount2'), reboot: never('reboot'), sync: () => {}, sethostname: never('sethostname'),
    setControllingTerminal: never('setControllingTerminal'), finitModule: never('finitModule'), reapOrphans: () => [], getpid: () => 1234,
  } as unknown as Fake;
}

function plan(over: (p: Plan) => void = () => {}): Plan {
  const p = defaultPlan('fedora');
  p.finalAction = 'poweroff';
  p.failureAction = 'halt';
  p.hooks.pre.push({ path: '/bin/pre', args: [], timeoutMs: 1000, source: { file: 'kdump.conf', line: 3 } });
  p.hooks.post.push({ path: '/bin/post', args: [], timeoutMs: 1000, source: { file: 'kdump.conf', line: 4 } });
  over(p);
  return p;
}

/** Stages writing into a temp dir; `failAfter` makes the writer fail after that many bytes. */
function stages(root: string, sys: Fake, o: { failAfter?: number; openFails?: boolean; networkFails?: boolean } = {}): CaptureStages {
  return {
    async writeDump({ sink, progress }) {
      sys.calls.push(sink.kind === 'positional' ? 'writeDump' : 'writeDump stream');
      const page = Buffer.alloc(4096, 0x5a);
      for (let i = 0; i < 8; i++) {
        if (o.failAfter !== undefined && i * 4096 >= o.failAfter) {
          throw new LastwordError('ETARGET_FULL', 'no space left on the target (ENOSPC)');
        }
        if (sink.kind === 'positional') await sink.pwrite(page, i * 4096);
        else await sink.write(page);
        progress(i + 1, 8, 4096);
      }
      await sink.close();
      return { bytes: 8 * 4096, ramPages: 8, dumpablePages: 8, zeroPages: 0 };
    },
    async dmesg() { sys.calls.push('dmesg'); return Buffer.from('[    0.000000] Linux version 6.1\n'); },
    async loadModules() { sys.calls.push('loadModules'); },
    async bringUpNetwork() {
      sys.calls.push('bringUpNetwork');
      if (o.networkFails) throw new LastwordError('ENET_NO_LINK', 'eth0: no carrier');
      return { hostIp: '10.0.0.5' };
    },
    async startFence(p, log) {
      sys.calls.push(`startFence ${p.fence!.nodes.join(',')}`);
      log('fence started');
      return { stop: async () => { sys.calls.push('stopFence'); } };
    },
    kernelLog: () => '[    0.000000] Linux version 6.1.0-capture\n[    1.234567] virtio_blk virtio1: [vdb] 2097152 512-byte logical blocks\n',
    async openTarget() {
      sys.calls.push('openTarget');
      if (o.openFails) throw new LastwordError('EDEVICE_TIMEOUT', 'no block device LABEL=dump after 180 s');
      return new FsTarget({ root, description: `test dir ${root}` });
    },
  };
}

function tempRoot(t: { after: (fn: () => void) => void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-capture-'));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

const time = new Date(2024, 5, 23, 21, 7, 6);
const fedoraDir = 'var/crash/127.0.0.1-2024-06-23-21:07:06';

test('saves dmesg then the dump in kdump.sh order, renames it, runs kdump_post with 0 and takes the final action', async (t) => {
  const root = tempRoot(t);
  const sys = fakeSystem();
  const out = await capture({ sys, plan: plan(), vmcore: '/proc/vmcore', stages: stages(root, sys), time, prepareSystem: true });
  assert.deepEqual(out, { ok: true, action: 'poweroff', reason: 'dump saved', dump: `/${fedoraDir}/vmcore`, incomplete: false });
  // no network for a local target
  // modules and the mounted target before kdump_pre: dracut has loaded and mounted them before
  // kdump.sh runs the hook
  assert.deepEqual(sys.calls, ['loadModules', 'openTarget', 'exec /bin/pre', 'dmesg', 'writeDump', 'exec /bin/post 0']);
  assert.deepEqual(fs.readdirSync(path.join(root, fedoraDir)).sort(), ['kexec-dmesg.log', 'vmcore', 'vmcore-dmesg.txt']);
  for (const f of fs.readdirSync(path.join(root, fedoraDir))) assert.equal(fs.statSync(path.join(root, fedoraDir, f)).mode & 0o777, 0o600, f);
  const runLog = fs.readFileSync(path.join(root, fedoraDir, 'kexec-dmesg.log'), 'utf8');
  assert.match(runLog, /saving 100% \(8 of 8 pages\)/);
  // kdump.sh's kexec-dmesg.log is the capture kernel's dmesg: it comes first, lastword's lines after
  assert.match(runLog, /^=== capture kernel log \(\/dev\/kmsg\) ===\n\[    0\.000000\] Linux version 6\.1\.0-capture\n[\s\S]*=== lastword ===\n/);
  assert.match(runLog, /dump saved[\s\S]*final action: poweroff/);
  assert.deepEqual(sys.lines.filter((l) => /saving|dump saved/.test(l)).length >= 2, true, 'progress and summary were not on the console');
});

test('kdump_test_id= (kdumpctl test): the dump goes to kdump-test-<id>/ with vmcore-creation.status, "fail" until the dump is saved, then "success"', async (t) => {
  const root = tempRoot(t);
  const sys = fakeSystem();
  const out = await capture({ sys, plan: plan((x) => { x.naming.testId = '1764000000-123'; }), vmcore: '/proc/vmcore', stages: stages(root, sys), time, prepareSystem: false });
  assert.equal(out.ok, true, out.reason);
  const dir = path.join(root, 'var/crash/kdump-test-1764000000-123');
  assert.deepEqual(fs.readdirSync(dir).sort(), ['kexec-dmesg.log', 'vmcore', 'vmcore-creation.status', 'vmcore-dmesg.txt']);
  assert.equal(fs.readFileSync(path.join(dir, 'vmcore-creation.status'), 'utf8'), 'success kdump_test_id=1764000000-123\n');

  const root2 = tempRoot(t);
  const failed = await capture({ sys: fakeSystem(), plan: plan((x) => { x.naming.testId = '7'; }), vmcore: '/proc/vmcore', stages: stages(root2, sys, { failAfter: 4096 }), time, prepareSystem: false });
  assert.equal(failed.ok, false);
  assert.equal(fs.readFileSync(path.join(root2, 'var/crash/kdump-test-7/vmcore-creation.status'), 'utf8'), 'fail kdump_test_id=7\n');
});

test('a failing kdump_pre stops the capture: no dump, no kdump_post, the final action (kdump.sh), and the pre.d hooks after it do not run', async (t) => {
  const root = tempRoot(t);
  const sys = fakeSystem({ '/bin/pre': 3 });
  const p = plan((x) => x.hooks.pre.push({ path: '/etc/kdump/pre.d/10-more', args: [], timeoutMs: 1000, fromDir: true, source: { file: '/etc/kdump/pre.d/10-more' } }));
  const out = await capture({ sys, plan: p, vmcore: '/proc/vmcore', stages: stages(root, sys), time, prepareSystem: true });
  assert.equal(out.ok, false);
  assert.equal(out.action, 'poweroff', 'final_action, not failure_action (halt)');
  assert.match(out.reason, /kdump_pre \/bin\/pre exited 3/);
  assert.deepEqual(sys.calls, ['loadModules', 'openTarget', 'exec /bin/pre']);
  assert.ok(sys.lines.some((l) => /kdump_pre failed, no dump; final action: poweroff/.test(l)), sys.lines.join('\n'));
});

test('a failing hook from /etc/kdump/pre.d is a warning: the dump is saved', async (t) => {
  const root = tempRoot(t);
  const sys = fakeSystem({ '/etc/kdump/pre.d/10-fails': 2 });
  const p = plan((x) => x.hooks.pre.push({ path: '/etc/kdump/pre.d/10-fails', args: [], timeoutMs: 1000, fromDir: true, source: { file: '/etc/kdump/pre.d/10-fails' } }));
  const out = await capture({ sys, plan: p, vmcore: '/proc/vmcore', stages: stages(root, sys), time, prepareSystem: true });
  assert.equal(out.ok, true, out.reason);
  assert.equal(out.action, 'poweroff');
  assert.deepEqual(sys.calls, ['loadModules', 'openTarget', 'exec /bin/pre', 'exec /etc/kdump/pre.d/10-fails', 'dmesg', 'writeDump', 'exec /bin/post 0']);
  assert.ok(sys.lines.some((l) => /warning: kdump_pre \/etc\/kdump\/pre\.d\/10-fails exited 2; going on/.test(l)), sys.lines.join('\n'));
});

test('a writer failure leaves the dump under vmcore-incomplete, runs kdump_post with 1, emergency hooks and the failure action', async (t) => {
  const root = tempRoot(t);
  const sys = fakeSystem();
  const p = plan((x) => x.hooks.emergency.push({ path: '/bin/emergency', args: [], timeoutMs: 1000, source: { file: 'kdump.conf' } }));
  const out = await capture({ sys, plan: p, vmcore: '/proc/vmcore', stages: stages(root, sys, { failAfter: 3 * 4096 }), time, prepareSystem: false });
  assert.equal(out.ok, false);
  assert.equal(out.action, 'halt');
  assert.equal(out.incomplete, true);
  assert.equal(out.dump, `/${fedoraDir}/vmcore-incomplete`);
  assert.match(out.reason, /ETARGET_FULL/);
  assert.equal(fs.statSync(path.join(root, fedoraDir, 'vmcore-incomplete')).size, 3 * 4096, 'what was written before the failure is kept');
  assert.ok(!fs.existsSync(path.join(root, fedoraDir, 'vmcore')));
  assert.deepEqual(sys.calls.slice(-2), ['exec /bin/post 1', 'exec /bin/emergency']);
  const runLog = fs.readFileSync(path.join(root, fedoraDir, 'kexec-dmesg.log'), 'utf8');
  assert.match(runLog, /dump INCOMPLETE[\s\S]*failure action: halt/);
  assert.doesNotMatch(runLog, /capture kernel log/, 'a running system (not PID 1) put its own kernel log into the run log');
});

test('a target that cannot be opened is the failure action, with the reason, and the flow never throws; kdump_pre and kdump_post do not run (kdump.sh never started), the emergency hooks do', async (t) => {
  const root = tempRoot(t);
  const sys = fakeSystem();
  const p = plan((x) => x.hooks.emergency.push({ path: '/bin/emergency', args: [], timeoutMs: 1000, source: { file: 'kdump.conf' } }));
  const out = await capture({ sys, plan: p, vmcore: '/proc/vmcore', stages: stages(root, sys, { openFails: true }), time, prepareSystem: true });
  assert.deepEqual([out.ok, out.action, out.incomplete], [false, 'halt', false]);
  assert.deepEqual(sys.calls, ['loadModules', 'openTarget', 'exec /bin/emergency']);
  assert.match(out.reason, /EDEVICE_TIMEOUT: no block device LABEL=dump/);
  assert.ok(sys.lines.some((l) => /dump FAILED/.test(l)));
});

test('network targets bring up ip= first and name the directory after the address (Debian HOSTTAG=ip)', async (t) => {
  const root = tempRoot(t);
  const sys = fakeSystem();
  const p = defaultPlan('debian');
  p.target = { kind: 'nfs', server: '10.0.0.1', export: '/export', mountOptions: [], source: { file: 'kdump-tools' } };
  const out = await capture({ sys, plan: p, vmcore: '/proc/vmcore', stages: stages(root, sys), time, prepareSystem: true });
  assert.equal(out.ok, true, out.reason);
  assert.deepEqual(sys.calls.slice(0, 3), ['loadModules', 'bringUpNetwork', 'openTarget']);
  // Debian mounts the export on KDUMP_COREDIR: the dump directory is at the export's top
  assert.equal(out.dump, '/10.0.0.5-202406232107/dump.202406232107');
  assert.ok(fs.existsSync(path.join(root, '10.0.0.5-202406232107', 'dmesg.202406232107')));
});

test('fence_kdump_nodes: the network comes up and the nodes are notified before the target opens, until the capture ends; a local dump keeps the 127.0.0.1 name', async (t) => {
  const root = tempRoot(t);
  const sys = fakeSystem();
  const p = plan((x) => { x.hooks.pre = []; x.hooks.post = []; x.fence = { nodes: ['node-b', 'node-c'], port: 7410, family: 'auto', count: 0, intervalS: 10, source: { file: 'kdump.conf', line: 9 } }; });
  const out = await capture({ sys, plan: p, vmcore: '/proc/vmcore', stages: stages(root, sys), time, prepareSystem: true });
  assert.equal(out.ok, true, out.reason);
  assert.deepEqual(sys.calls, ['loadModules', 'bringUpNetwork', 'startFence node-b,node-c', 'openTarget', 'dmesg', 'writeDump', 'stopFence']);
  assert.equal(out.dump, `/${fedoraDir}/vmcore`);
  // not as a plain `lastword save` on a running system
  const sys2 = fakeSystem();
  await capture({ sys: sys2, plan: p, vmcore: '/proc/vmcore', stages: stages(tempRoot(t), sys2), time, prepareSystem: false });
  assert.deepEqual(sys2.calls, ['openTarget', 'dmesg', 'writeDump']);
});

test('fence_kdump_nodes with a local target: a network that does not come up is a warning, the dump is still saved', async (t) => {
  const root = tempRoot(t);
  const sys = fakeSystem();
  const p = plan((x) => { x.hooks.pre = []; x.hooks.post = []; x.fence = { nodes: ['node-b'], port: 7410, family: 'auto', count: 0, intervalS: 10, source: { file: 'kdump.conf', line: 9 } }; });
  const out = await capture({ sys, plan: p, vmcore: '/proc/vmcore', stages: stages(root, sys, { networkFails: true }), time, prepareSystem: true });
  assert.equal(out.ok, true, out.reason);
  assert.equal(out.action, 'poweroff');
  assert.deepEqual(sys.calls, ['loadModules', 'bringUpNetwork', 'startFence node-b', 'openTarget', 'dmesg', 'writeDump', 'stopFence']);
  assert.ok(sys.lines.some((l) => /warning: network for fence_kdump: ENET_NO_LINK.*the cluster is not notified/.test(l)), sys.lines.join('\n'));
});

test('KDUMP_NUM_DUMPS removes the oldest dump directories, nothing else', async (t) => {
  const root = tempRoot(t);
  const sys = fakeSystem();
  const p = defaultPlan('debian');
  p.numDumps = 2;
  for (const d of ['202301010000', '202302010000', 'keepme']) fs.mkdirSync(path.join(root, 'var/crash', d), { recursive: true });
  const out = await capture({ sys, plan: p, vmcore: '/proc/vmcore', stages: stages(root, sys), time, prepareSystem: false });
  assert.equal(out.ok, true, out.reason);
  assert.deepEqual(fs.readdirSync(path.join(root, 'var/crash')).sort(), ['202302010000', '202406232107', 'keepme']);
});

test('lastword save --capture writes outcome.json for PID 1, also when the config is broken', async (t) => {
  const root = tempRoot(t);
  const sys = fakeSystem();
  const conf = path.join(root, 'kdump.conf');
  fs.writeFileSync(conf, `path /var/crash\nfinal_action poweroff\nfailure_action shell\n`);
  const ok = await runSave(sys, { config: conf, cmdline: '', root, capture: true, vmcore: '/proc/vmcore' }, stages(root, sys), root);
  assert.equal(ok.ok, true, ok.reason);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(root, 'run/lastword/outcome.json'), 'utf8')), { ok: true, action: 'poweroff', reason: 'dump saved' });
  fs.writeFileSync(conf, `ssh not-a-user-at-host\n`);
  const bad = await runSave(sys, { config: conf, cmdline: '', root, capture: true, vmcore: '/proc/vmcore' }, stages(root, sys), root);
  assert.equal(bad.ok, false);
  const written = JSON.parse(fs.readFileSync(path.join(root, 'run/lastword/outcome.json'), 'utf8'));
  assert.equal(written.ok, false);
  assert.equal(written.action, 'reboot');
  assert.match(written.reason, /kdump\.conf:1/);
});

test('an ssh target with -F in core_collector still gets a finished file over SFTP (kdump.sh manages -F for ssh itself)', async (t) => {
  const root = tempRoot(t);
  const sys = fakeSystem();
  const p = plan();
  p.target = { kind: 'ssh', user: 'root', host: '10.0.0.1', port: 22, key: '/k', knownHosts: '/kh', transport: 'sftp', source: { file: 'kdump.conf' } };
  p.collector.flattened = true;
  const out = await capture({ sys, plan: p, vmcore: '/proc/vmcore', stages: stages(root, sys), time, prepareSystem: false });
  assert.equal(out.ok, true, out.reason);
  assert.ok(sys.calls.includes('writeDump'), sys.calls.join(', '));
  assert.match(out.dump ?? '', /\/vmcore$/);
});

test('-F in MAKEDUMP_ARGS is honoured on a Debian local target; Fedora strips it there as kdump.sh does', async (t) => {
  const root = tempRoot(t);
  const sys = fakeSystem();
  const debian = defaultPlan('debian');
  debian.collector.flattened = true;
  assert.equal((await capture({ sys, plan: debian, vmcore: '/proc/vmcore', stages: stages(root, sys), time, prepareSystem: false })).ok, true);
  const fedora = plan();
  fedora.collector.flattened = true;
  const out = await capture({ sys, plan: fedora, vmcore: '/proc/vmcore', stages: stages(root, sys), time, prepareSystem: false });
  assert.deepEqual(sys.calls.filter((c) => c.startsWith('writeDump')), ['writeDump stream', 'writeDump']);
  assert.match(out.dump ?? '', /\/vmcore$/);
});

test('failure_action dump_to_rootfs saves to the root filesystem after the target failed, then the final action', async (t) => {
  const root = tempRoot(t);
  const sys = fakeSystem();
  const p = plan((x) => { x.failureAction = 'dump_to_rootfs'; });
  p.target = { kind: 'local-fs', fstype: 'ext4', device: { by: 'label', label: 'dump' }, mountOptions: [], source: { file: 'kdump.conf', line: 1 } };
  const base = stages(root, sys);
  const out = await capture({
    sys, plan: p, vmcore: '/proc/vmcore', time, prepareSystem: false,
    stages: { ...base, openTarget: async (pl, log) => (pl.target.kind === 'root' ? base.openTarget(pl, log) : Promise.reject(new LastwordError('EDEVICE_TIMEOUT', 'no block device LABEL=dump after 180 s'))) },
  });
  assert.equal(out.ok, false);
  assert.equal(out.action, 'poweroff');
  assert.equal(out.dump, `/${fedoraDir}/vmcore`);
  assert.match(out.reason, /EDEVICE_TIMEOUT/);
  assert.match(fs.readFileSync(path.join(root, fedoraDir, 'kexec-dmesg.log'), 'utf8'), /dump_to_rootfs: saving to the root filesystem[\s\S]*saved to the root filesystem instead/);
});

test("Debian FTP + SSH + NFS: a dump to each in kdump-config's order; a target that fails does not stop the next and is named; the last decides the action", async (t) => {
  const root = tempRoot(t);
  const src = { file: 'kdump-tools' };
  const debian = (): Plan => {
    const p = defaultPlan('debian');
    p.failureAction = 'halt';
    p.target = { kind: 'ftp', host: '10.0.0.1', port: 21, user: 'anonymous', password: 'busybox@', dir: '/incoming', source: { ...src, line: 3 } };
    p.alsoTargets = [
      { kind: 'ssh', user: 'kd', host: '10.0.0.2', port: 22, key: '/k', knownHosts: '/kh', transport: 'flattened', source: { ...src, line: 2 } },
      { kind: 'nfs', server: '10.0.0.3', export: '/export', mountOptions: [], source: { ...src, line: 1 } },
    ];
    return p;
  };
  const run = async (failing?: string) => {
    const sys = fakeSystem();
    const base = stages(root, sys);
    const out = await capture({
      sys, plan: debian(), vmcore: '/proc/vmcore', time, prepareSystem: true,
      stages: {
        ...base,
        async openTarget(pl) {
          sys.calls.push(`openTarget ${pl.target.kind}`);
          assert.deepEqual(pl.alsoTargets, [], 'each target is opened with a plan of its own');
          if (pl.target.kind === failing) throw new LastwordError('ETARGET_CONNECT', `${failing} server: ECONNREFUSED`);
          const dir = path.join(root, failing ?? 'all', pl.target.kind);
          fs.mkdirSync(dir, { recursive: true });
          return new FsTarget({ root: dir, description: `${pl.target.kind} test dir`, network: true });
        },
      },
    });
    return { out, sys };
  };

  const all = await run();
  assert.equal(all.out.ok, true, all.out.reason);
  assert.deepEqual(all.sys.calls.filter((c) => !c.startsWith('dmesg')), ['loadModules', 'bringUpNetwork', 'openTarget ftp', 'writeDump', 'openTarget ssh', 'writeDump', 'openTarget nfs', 'writeDump']);
  const at = (...p: string[]) => fs.readdirSync(path.join(root, 'all', ...p)).sort();
  assert.deepEqual(at('ftp', 'incoming'), ['10.0.0.5-dmesg.202406232107', '10.0.0.5-dump.202406232107', '10.0.0.5-lastword.202406232107.log']);
  assert.deepEqual(at('ssh', 'var', 'crash', '10.0.0.5-202406232107'), ['dmesg.202406232107', 'dump.202406232107', 'lastword.202406232107.log']);
  assert.deepEqual(at('nfs', '10.0.0.5-202406232107'), ['dmesg.202406232107', 'dump.202406232107', 'lastword.202406232107.log']);
  assert.equal(all.out.dump, '/10.0.0.5-202406232107/dump.202406232107');
  // each target's run log has its own summary; the last has all three
  assert.match(fs.readFileSync(path.join(root, 'all', 'ftp', 'incoming', '10.0.0.5-lastword.202406232107.log'), 'utf8'), /dump saved\n.*target: +ftp test dir[\s\S]*next: +the dump to ssh kd@10\.0\.0\.2/);
  const last = fs.readFileSync(path.join(root, 'all', 'nfs', '10.0.0.5-202406232107', 'lastword.202406232107.log'), 'utf8');
  assert.equal(last.match(/dump saved/g)?.length, 3);

  // kdump-config's exit status is the last target's: KDUMP_FAIL_CMD only when that one failed
  const ftpDown = await run('ftp');
  assert.equal(ftpDown.out.ok, true);
  assert.equal(ftpDown.out.action, 'reboot');
  assert.match(ftpDown.out.reason, /^dump saved; no dump on: ftp 10\.0\.0\.1:\/incoming: ETARGET_CONNECT: ftp server: ECONNREFUSED/);
  assert.deepEqual(ftpDown.sys.calls.filter((c) => c.startsWith('openTarget')), ['openTarget ftp', 'openTarget ssh', 'openTarget nfs']);
  assert.ok(fs.existsSync(path.join(root, 'ftp', 'ssh', 'var', 'crash', '10.0.0.5-202406232107', 'dump.202406232107')));
  assert.ok(fs.existsSync(path.join(root, 'ftp', 'nfs', '10.0.0.5-202406232107', 'dump.202406232107')));
  assert.match(ftpDown.sys.lines.join('\n'), /dump FAILED\n.*target: +ftp 10\.0\.0\.1:\/incoming[\s\S]*dump saved\n.*target: +ssh test dir[\s\S]*dump saved\n.*target: +nfs test dir[\s\S]*reason: +no dump on: ftp 10\.0\.0\.1[\s\S]*final action: reboot/);

  const nfsDown = await run('nfs');
  assert.equal(nfsDown.out.ok, false);
  assert.equal(nfsDown.out.action, 'halt');
  assert.match(nfsDown.out.reason, /ETARGET_CONNECT: nfs server/);
  assert.ok(fs.existsSync(path.join(root, 'nfs', 'ftp', 'incoming', '10.0.0.5-dump.202406232107')));
});

test('KDUMP_COMPRESSION: the flattened dump is compressed as a whole and its names get the extension (gzip: in-process)', async (t) => {
  const root = tempRoot(t);
  const sys = fakeSystem();
  const p = defaultPlan('debian');
  p.postCompression = { method: 'gzip', source: { file: 'kdump-tools', line: 5 } };
  const out = await capture({ sys, plan: p, vmcore: '/proc/vmcore', stages: stages(root, sys), time, prepareSystem: false });
  assert.equal(out.ok, true, out.reason);
  assert.equal(out.dump, '/var/crash/202406232107/dump.202406232107.gz');
  assert.deepEqual(sys.calls.filter((c) => c.startsWith('writeDump')), ['writeDump stream']);
  const { gunzipSync } = await import('node:zlib');
  const back = gunzipSync(fs.readFileSync(path.join(root, 'var/crash/202406232107/dump.202406232107.gz')));
  assert.ok(back.equals(Buffer.alloc(8 * 4096, 0x5a)));
  assert.match(sys.lines.join('\n'), /format:      kdump \(flattened\), then gzip \(KDUMP_COMPRESSION\)/);
  // a writer cut short: the compressed part under dump-incomplete.gz
  const cut = await capture({ sys, plan: p, vmcore: '/proc/vmcore', stages: stages(root, sys, { failAfter: 3 * 4096 }), time: new Date(2024, 5, 23, 21, 8), prepareSystem: false });
  assert.equal(cut.ok, false);
  assert.equal(cut.dump, '/var/crash/202406232108/dump-incomplete.gz');
});
