// From the config to the mount.nfs command line: Debian's NFS= with NFS_TIMEO / NFS_RETRANS
// (kdump-config mounts with nolock,tcp,soft,timeo,retrans) and Fedora's kdump.conf `nfs`, through
// loadPlan, nfsMountArgs and the `lastword plan` CLI that shows the command.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { loadPlan } from '../../runtime/config/load.ts';
import { DEFAULT_MOUNT_POINT, nfsMountArgs } from '../../runtime/targets/open.ts';
import { repo } from '../support/lab.ts';

function configFile(t: { after(f: () => void): void }, name: string, text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-nfs-plan-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

function mountOf(config: string): string[] {
  const p = loadPlan({ config, cmdline: '' });
  assert.equal(p.target.kind, 'nfs');
  return nfsMountArgs(p.target as Extract<typeof p.target, { kind: 'nfs' }>, DEFAULT_MOUNT_POINT);
}

test('kdump-tools NFS= with NFS_TIMEO and NFS_RETRANS mounts like kdump-config, and lastword plan shows the command', (t) => {
  const conf = configFile(t, 'kdump-tools', 'USE_KDUMP=1\nKDUMP_COREDIR="/var/crash"\nNFS="10.0.2.1:/srv/crash"\nNFS_TIMEO="50"\nNFS_RETRANS=1\n');
  const want = ['10.0.2.1:/srv/crash', DEFAULT_MOUNT_POINT, '-o', 'nolock,tcp,soft,timeo=50,retrans=1,retry=0'];
  assert.deepEqual(mountOf(conf), want);
  const r = spawnSync(process.execPath, [path.join(repo, 'runtime/main.ts'), 'plan', '--config', conf, '--cmdline', ''], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^target: +nfs 10\.0\.2\.1:\/srv\/crash -o nolock,tcp,soft,timeo=50,retrans=1, 4 attempts 3 s apart +\[\S+kdump-tools:3\]$/m);
  assert.ok(r.stdout.split('\n').includes(`  mount:        mount.nfs ${want.join(' ')}`), r.stdout);
});

test("kdump-tools NFS= without NFS_TIMEO / NFS_RETRANS gets kdump-config's defaults 600 and 3", (t) => {
  const conf = configFile(t, 'kdump-tools', 'NFS="[fd00::1]:/export/crash"\n');
  assert.deepEqual(mountOf(conf), ['[fd00::1]:/export/crash', DEFAULT_MOUNT_POINT, '-o', 'nolock,tcp,soft,timeo=600,retrans=3,retry=0']);
});

test('a bad NFS_TIMEO is an error naming the file and line', (t) => {
  const conf = configFile(t, 'kdump-tools', 'NFS="10.0.2.1:/srv/crash"\nNFS_TIMEO="soon"\n');
  assert.throws(() => loadPlan({ config: conf, cmdline: '' }), /kdump-tools:2.*NFS_TIMEO/);
});

test('kdump.conf nfs: the options dracut_args --mount gives, else only nolock and retry=0', (t) => {
  const plain = configFile(t, 'kdump.conf', 'nfs 10.0.2.1:/srv/crash\npath /var/crash\n');
  assert.deepEqual(mountOf(plain), ['10.0.2.1:/srv/crash', DEFAULT_MOUNT_POINT, '-o', 'nolock,retry=0']);
  const mount = configFile(t, 'kdump.conf', 'path /var/crash\ndracut_args --mount "10.0.2.1:/srv/crash /var/crash nfs4 defaults,vers=4.1,timeo=50,retrans=1"\n');
  assert.deepEqual(mountOf(mount), ['10.0.2.1:/srv/crash', DEFAULT_MOUNT_POINT, '-o', 'vers=4.1,timeo=50,retrans=1,nolock,retry=0']);
});
