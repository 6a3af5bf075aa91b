// Opening targets through a recording fake System: mount options, the mount.nfs command line and
// Debian's retries. The real mounts are tested in local-fs.test.ts and nfs.test.ts.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { defaultPlan } from '../../runtime/config/defaults.ts';
import { LastwordError } from '../../runtime/errors.ts';
import type { ExecResult, System } from '../../runtime/system/types.ts';
import { describeNfsMount, mountOptions, NFS_MOUNT_TIMEOUT_MS, nfsMountArgs, nfsMountInfo, openTarget } from '../../runtime/targets/open.ts';
import { rootFsFromCmdline } from '../../runtime/cli/save.ts';

test('mount options: flags become mount(2) flags, ro is dropped for a writable dump, the rest is data', () => {
  assert.deepEqual(mountOptions(['defaults,noatime,nodev', 'ro', 'data=ordered', 'x-systemd.device-timeout=10', 'nofail']),
    { flags: 1024 | 4, data: 'data=ordered', dropped: ['ro'] });
});

test('mount.nfs gets server:/export, the mount point and every option with timeo and retrans, plus nolock and retry=0', () => {
  const t = { kind: 'nfs' as const, server: '10.0.0.1', export: '/export/crash', mountOptions: ['nolock', 'tcp', 'soft'], timeo: 600, retrans: 3, source: { file: 'kdump-tools' } };
  assert.deepEqual(nfsMountArgs(t, '/run/lastword/target'), ['10.0.0.1:/export/crash', '/run/lastword/target', '-o', 'nolock,tcp,soft,timeo=600,retrans=3,retry=0']);
  assert.deepEqual(nfsMountArgs({ ...t, server: 'fd00::1', mountOptions: ['timeo=50'], timeo: 50, retrans: undefined }, '/mnt'), ['[fd00::1]:/export/crash', '/mnt', '-o', 'timeo=50,nolock,retry=0']);
  // what the config says wins: locking asked for, mount.nfs's own retries, one comma-joined word
  assert.deepEqual(nfsMountArgs({ ...t, mountOptions: ['vers=3,lock', 'retry=2'], timeo: undefined, retrans: undefined }, '/mnt'), ['10.0.0.1:/export/crash', '/mnt', '-o', 'vers=3,lock,retry=2']);
});

test('the NFS version the kernel negotiated is read from the mount table', () => {
  const mounts = [
    'proc /proc proc rw,nosuid 0 0',
    '10.0.2.1:/srv/crash /run/lastword/target nfs4 rw,relatime,vers=4.2,rsize=131072,wsize=131072,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.0.2.15,local_lock=none,addr=10.0.2.1 0 0',
    '',
  ].join('\n');
  assert.deepEqual(nfsMountInfo(mounts, '/run/lastword/target'), { version: '4.2', proto: 'tcp', options: mounts.split('\n')[1]!.split(' ')[3] });
  assert.equal(nfsMountInfo(mounts, '/mnt'), undefined);
  assert.equal(describeNfsMount(nfsMountInfo(mounts, '/run/lastword/target')!), 'NFS version 4.2 over tcp, hard, timeo=600, retrans=2');
});

function nfsSystem(failures: number): System & { execs: string[][]; sleeps: number[] } {
  const execs: string[][] = [];
  const sleeps: number[] = [];
  let n = 0;
  return {
    execs, sleeps,
    async exec(file: string, args: readonly string[]): Promise<ExecResult> {
      execs.push([file, ...args]);
      return n++ < failures
        ? { exitCode: 32, stdout: '', stderr: 'mount.nfs: Connection refused\n', timedOut: false }
        : { exitCode: 0, stdout: '', stderr: '', timedOut: false };
    },
    sleep: async (ms: number) => { sleeps.push(ms); },
    now: () => 0, log: () => {}, sync: () => {}, umount2: () => {},
  } as unknown as System & { execs: string[][]; sleeps: number[] };
}

test('NFS: mount.nfs is retried (Debian tries 4 times) and the export becomes the target', async (t) => {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-nfsmnt-'));
  t.after(() => fs.rmSync(mnt, { recursive: true, force: true }));
  const plan = defaultPlan('debian');
  plan.target = { kind: 'nfs', server: '10.0.0.1', export: '/srv', mountOptions: ['nolock', 'tcp', 'soft', 'timeo=600', 'retrans=3'], timeo: 600, retrans: 3, source: { file: 'kdump-tools' } };
  const sys = nfsSystem(2);
  const target = await openTarget(plan, { sys, mountPoint: mnt, log: () => {}, findDevice: async () => { throw new Error('no device for nfs'); }, retryDelayMs: 1000 });
  assert.equal(sys.execs.length, 3);
  assert.deepEqual(sys.execs[0], ['mount.nfs', '10.0.0.1:/srv', mnt, '-o', 'nolock,tcp,soft,timeo=600,retrans=3,retry=0']);
  assert.deepEqual(sys.sleeps, [1000, 1000]);
  assert.equal(target.network, true);
  assert.match(target.description, /nfs 10\.0\.0\.1:\/srv/);
  await target.close();
});

test('NFS: after the last attempt the error names the export and mount.nfs\'s message', async (t) => {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-nfsmnt-'));
  t.after(() => fs.rmSync(mnt, { recursive: true, force: true }));
  const plan = defaultPlan('debian');
  plan.target = { kind: 'nfs', server: '10.0.0.1', export: '/srv', mountOptions: [], source: { file: 'kdump-tools', line: 7 } };
  const sys = nfsSystem(99);
  await assert.rejects(openTarget(plan, { sys, mountPoint: mnt, log: () => {}, findDevice: async () => '', retryDelayMs: 1 }), (err: unknown) => {
    assert.ok(err instanceof LastwordError);
    assert.equal(err.code, 'ETARGET_MOUNT');
    assert.match(err.message, /nfs 10\.0\.0\.1:\/srv \(server 10\.0\.0\.1\) after 4 attempts: mount\.nfs: Connection refused/);
    return true;
  });
  assert.equal(sys.execs.length, 4);
});

test('NFS: each mount.nfs run has a time limit, and a server that never answers is reported as such', async (t) => {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-nfsmnt-'));
  t.after(() => fs.rmSync(mnt, { recursive: true, force: true }));
  const plan = defaultPlan('fedora');
  plan.target = { kind: 'nfs', server: '10.0.0.9', export: '/srv', mountOptions: [], source: { file: '/etc/kdump.conf', line: 1 } };
  const limits: (number | undefined)[] = [];
  const lines: string[] = [];
  const sys = {
    async exec(_file: string, _args: readonly string[], o: { timeoutMs?: number }): Promise<ExecResult> {
      limits.push(o.timeoutMs);
      return { exitCode: -1, signal: 'SIGTERM', stdout: '', stderr: '', timedOut: true };
    },
    sleep: async () => {}, now: () => 0, log: () => {},
  } as unknown as System;
  await assert.rejects(openTarget(plan, { sys, mountPoint: mnt, log: (l) => lines.push(l), findDevice: async () => '', nfsAttempts: 2, nfsAttemptTimeoutMs: 30_000 }),
    /cannot mount nfs 10\.0\.0\.9:\/srv \(server 10\.0\.0\.9\) after 2 attempts: no answer within 30 s/);
  assert.deepEqual(limits, [30_000, 30_000]);
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /mount\.nfs 10\.0\.0\.9:\/srv \S+ -o nolock,retry=0 failed \(attempt 1 of 2\): no answer within 30 s/);
});

/** A System whose mount.nfs never hears back: each run lasts its whole time limit on a fake clock. */
function silentNfsServer() {
  let now = 0;
  const limits: number[] = [];
  const sleeps: number[] = [];
  const sys = {
    async exec(_file: string, _args: readonly string[], o: { timeoutMs: number }): Promise<ExecResult> {
      limits.push(o.timeoutMs);
      now += o.timeoutMs;
      return { exitCode: -1, signal: 'SIGTERM', stdout: '', stderr: '', timedOut: true };
    },
    sleep: async (ms: number) => { sleeps.push(ms); now += ms; }, now: () => now, log: () => {},
  } as unknown as System;
  return { sys, limits, sleeps, clock: () => now };
}

test('NFS: a server that never answers ends within the overall mount limit, whatever the attempts left', async (t) => {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-nfsmnt-'));
  t.after(() => fs.rmSync(mnt, { recursive: true, force: true }));
  const plan = defaultPlan('fedora');
  plan.target = { kind: 'nfs', server: '10.0.0.9', export: '/srv', mountOptions: [], source: { file: '/etc/kdump.conf', line: 1 } };
  const { sys, limits, clock } = silentNfsServer();
  await assert.rejects(openTarget(plan, { sys, mountPoint: mnt, log: () => {}, findDevice: async () => '' }),
    /cannot mount nfs 10\.0\.0\.9:\/srv \(server 10\.0\.0\.9\) after 3 attempts: no answer within 20 s/);
  // 60 s, 5 s pause, 60 s, 5 s pause, the 20 s left of NFS_MOUNT_TIMEOUT_MS
  assert.deepEqual(limits, [60_000, 60_000, 20_000]);
  assert.equal(clock(), NFS_MOUNT_TIMEOUT_MS);
});

test("NFS_MOUNT_RETRY: the target's count and kdump-config's 3 s pause; the overall limit lets every attempt run", async (t) => {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-nfsmnt-'));
  t.after(() => fs.rmSync(mnt, { recursive: true, force: true }));
  const plan = defaultPlan('debian');
  const source = { file: 'kdump-tools', line: 9 };
  plan.target = { kind: 'nfs', server: '10.0.0.9', export: '/srv', mountOptions: [], retry: { attempts: 6, delayMs: 3000, source }, source };
  const { sys, limits, sleeps, clock } = silentNfsServer();
  await assert.rejects(openTarget(plan, { sys, mountPoint: mnt, log: () => {}, findDevice: async () => '' }),
    /cannot mount nfs 10\.0\.0\.9:\/srv \(server 10\.0\.0\.9\) after 6 attempts: no answer within 60 s/);
  assert.deepEqual(limits, Array(6).fill(60_000));
  assert.deepEqual(sleeps, Array(5).fill(3000));
  assert.ok(clock() > NFS_MOUNT_TIMEOUT_MS);
});

test('SSH_KDUMP_RETRY: an ssh server that refuses connections is tried that many times, each attempt on the console', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-sshretry-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const key = path.join(dir, 'id');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  fs.writeFileSync(path.join(dir, 'known_hosts'), '');
  // a port nothing listens on: bound, then closed
  const port = await new Promise<number>((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => { const p = (srv.address() as net.AddressInfo).port; srv.close(() => resolve(p)); });
  });
  const plan = defaultPlan('debian');
  const source = { file: 'kdump-tools', line: 4 };
  plan.target = { kind: 'ssh', user: 'root', host: '127.0.0.1', port, key, knownHosts: path.join(dir, 'known_hosts'), transport: 'flattened', retry: { attempts: 3, delayMs: 3000, source }, source };
  const sleeps: number[] = [];
  const lines: string[] = [];
  const sys = { sleep: async (ms: number) => { sleeps.push(ms); }, now: () => 0, log: () => {} } as unknown as System;
  await assert.rejects(openTarget(plan, { sys, log: (l) => lines.push(l), findDevice: async () => '' }), (err: unknown) => err instanceof LastwordError && err.code === 'ETARGET_CONNECT');
  assert.deepEqual(sleeps, [3000, 3000]);
  assert.deepEqual(lines.map((l) => /attempt (\d) of 3/.exec(l)?.[1]), ['1', '2']);
});

test('a local filesystem that cannot be mounted names the device, the fstype and the config line', async (t) => {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-mnt-'));
  t.after(() => fs.rmSync(mnt, { recursive: true, force: true }));
  const plan = defaultPlan('fedora');
  plan.target = { kind: 'local-fs', fstype: 'xfs', device: { by: 'label', label: 'dump' }, mountOptions: [], source: { file: '/etc/kdump.conf', line: 2 } };
  const sys = { mount: () => { throw Object.assign(new Error('mount: Invalid argument'), { code: 'EINVAL' }); }, log: () => {} } as unknown as System;
  await assert.rejects(openTarget(plan, { sys, mountPoint: mnt, log: () => {}, findDevice: async () => '/dev/vdb1' }),
    /cannot mount LABEL=dump \(\/dev\/vdb1\) as xfs/);
});

test('virtiofs: the tag is mounted as it is, no block device is looked for; a tag that never appears is named after the wait', async (t) => {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-mnt-'));
  t.after(() => fs.rmSync(mnt, { recursive: true, force: true }));
  const plan = defaultPlan('fedora');
  plan.target = { kind: 'local-fs', fstype: 'virtiofs', device: { by: 'path', path: 'dumpfs' }, mountOptions: [], source: { file: '/etc/kdump.conf', line: 1 } };
  const virtiofsSystem = (missingFor: number) => {
    let clock = 0;
    const mounts: string[] = [];
    const sys = {
      mount: (src: string, target: string, fstype: string) => {
        mounts.push(`${src} ${target} ${fstype}`);
        if (clock < missingFor) throw Object.assign(new Error('mount: Invalid argument'), { code: 'EINVAL' });
      },
      sleep: async (ms: number) => { clock += ms; }, now: () => clock, log: () => {}, sync: () => {}, umount2: () => {},
    } as unknown as System;
    return { sys, mounts };
  };
  const noDevice = async (): Promise<string> => { throw new Error('a block device was looked for'); };
  // the driver probes the device a few seconds after it loaded
  const late = virtiofsSystem(3000);
  const target = await openTarget(plan, { sys: late.sys, mountPoint: mnt, log: () => {}, findDevice: noDevice });
  assert.equal(late.mounts.length, 7);
  assert.equal(late.mounts[0], `dumpfs ${mnt} virtiofs`);
  assert.equal(target.description, 'virtiofs dumpfs');
  await target.close();
  const never = virtiofsSystem(Infinity);
  await assert.rejects(openTarget(plan, { sys: never.sys, mountPoint: mnt, log: () => {}, findDevice: noDevice }),
    /cannot mount virtiofs tag dumpfs \(waited 30 s for the device\) on \S+: EINVAL: mount: Invalid argument/);
});

test('under PID 1 a root target without root= is refused instead of writing into the initramfs', async () => {
  const plan = defaultPlan('fedora');
  const sys = { log: () => {} } as unknown as System;
  await assert.rejects(openTarget(plan, { sys, log: () => {}, findDevice: async () => '', rootFs: rootFsFromCmdline('quiet irqpoll nr_cpus=1') }), (err: unknown) => {
    assert.ok(err instanceof LastwordError);
    assert.equal(err.code, 'ETARGET_ROOT');
    assert.match(err.message, /no root=/);
    return true;
  });
});

test('under PID 1 the root target mounts root= read-write, trying the usual filesystems without rootfstype=', async (t) => {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-rootmnt-'));
  t.after(() => fs.rmSync(mnt, { recursive: true, force: true }));
  const mounts: string[] = [];
  const sys = {
    log: () => {}, sync: () => {}, umount2: () => {},
    mount: (src: string, target: string, fstype: string, flags: number, data: string) => {
      mounts.push(`${src} ${target} ${fstype} ${flags} ${data}`);
      if (fstype !== 'xfs') throw Object.assign(new Error('mount: Invalid argument'), { code: 'EINVAL' });
    },
  } as unknown as System;
  const rootFs = rootFsFromCmdline('BOOT_IMAGE=/vmlinuz root=UUID=0A1B-2C rootflags=noatime,ro irqpoll');
  assert.deepEqual(rootFs, { device: { by: 'uuid', uuid: '0a1b-2c' }, fstype: undefined, options: ['noatime', 'ro'] });
  const target = await openTarget(defaultPlan('fedora'), { sys, mountPoint: mnt, log: () => {}, findDevice: async () => '/dev/vda1', rootFs });
  assert.deepEqual(mounts, [`/dev/vda1 ${mnt} ext4 1024 `, `/dev/vda1 ${mnt} xfs 1024 `]);
  assert.match(target.description, /root filesystem UUID=0a1b-2c \(\/dev\/vda1, xfs\)/);
  await target.close();
});
