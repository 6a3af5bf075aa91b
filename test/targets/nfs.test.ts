// The NFS target against the kernel's nfsd (nfs-kernel-server: rpc.nfsd, rpc.mountd, exportfs) on
// 127.0.0.1, NFSv4 only, and the kernel's NFS client through mount.nfs, via `lastword save` as a
// user runs it. Needs a kernel with the NFS client and server (modules or built in); on a kernel
// without them (this development machine's has neither) the test is skipped and says so.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { labVmcore, repo } from '../support/lab.ts';
import { flaggedIncomplete, missingReference } from './dumps.ts';

function kernelHasNfs(): string | undefined {
  spawnSync('modprobe', ['-q', 'nfsd']);
  spawnSync('modprobe', ['-q', 'nfsv4']);
  const fsTypes = fs.readFileSync('/proc/filesystems', 'utf8');
  if (!/\tnfs4?\n/.test(fsTypes) && !/\tnfs4\n/.test(fsTypes)) return 'the running kernel has no NFS client (CONFIG_NFS_FS)';
  if (!/\tnfsd\n/.test(fsTypes)) return 'the running kernel has no NFS server (CONFIG_NFSD)';
  for (const tool of ['rpc.nfsd', 'rpc.mountd', 'exportfs', 'mount.nfs']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is missing (bash .ci/setup: nfs-kernel-server, nfs-common)`;
  }
  return undefined;
}

const skip = missingReference() ?? kernelHasNfs();

test('saves a dump to an export of the kernel nfsd on 127.0.0.1 (Debian layout, NFS= with NFS_TIMEO/NFS_RETRANS)', { skip, timeout: 300_000 }, (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-nfs-'));
  const exportDir = path.join(dir, 'export');
  fs.mkdirSync(exportDir);
  let mountd: number | undefined;
  t.after(() => {
    spawnSync('umount', ['-l', path.join(dir, 'mnt')]);
    spawnSync('exportfs', ['-u', `127.0.0.1:${exportDir}`]);
    spawnSync('rpc.nfsd', ['0']);
    if (mountd !== undefined) try { process.kill(mountd, 'SIGTERM'); } catch { /* gone */ }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  if (spawnSync('mountpoint', ['-q', '/proc/fs/nfsd']).status !== 0) execFileSync('mount', ['-t', 'nfsd', 'nfsd', '/proc/fs/nfsd']);
  execFileSync('exportfs', ['-o', 'rw,no_root_squash,insecure,no_subtree_check,fsid=0', `127.0.0.1:${exportDir}`]);
  const md = spawnSync('sh', ['-c', 'rpc.mountd -N 3 -F >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' });
  mountd = Number(md.stdout.trim()) || undefined;
  execFileSync('rpc.nfsd', ['-N', '3', '-V', '4', '-H', '127.0.0.1', '4']);

  const conf = path.join(dir, 'kdump-tools');
  fs.writeFileSync(conf, [
    'USE_KDUMP=1', 'KDUMP_COREDIR="/var/crash"', 'MAKEDUMP_ARGS="-l -d 31"', 'NFS="127.0.0.1:/"', 'NFS_TIMEO="50"', 'NFS_RETRANS="1"', 'HOSTTAG="ip"', '',
  ].join('\n'));
  const r = spawnSync(process.execPath, [path.join(repo, 'runtime/main.ts'), 'save', '--config', conf, '--cmdline', '', '--mount-point', path.join(dir, 'mnt'), labVmcore()], {
    encoding: 'utf8', timeout: 240_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const dumps = fs.readdirSync(exportDir);
  assert.equal(dumps.length, 1, `export holds: ${dumps.join(', ')}`);
  const stamp = /-(\d{12})$/.exec(dumps[0]!)?.[1];
  assert.ok(stamp, `not <hosttag>-<stamp>: ${dumps[0]}`);
  const files = fs.readdirSync(path.join(exportDir, dumps[0]!)).sort();
  assert.ok(files.includes(`dump.${stamp}`) && files.includes(`dmesg.${stamp}`), `files: ${files.join(', ')}`);
  const dump = path.join(exportDir, dumps[0]!, `dump.${stamp}`);
  assert.equal(fs.readFileSync(dump).subarray(0, 8).toString('latin1'), 'KDUMP   ');
  assert.equal(flaggedIncomplete(dump), false);
});
