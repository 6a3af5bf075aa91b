// `lastword savecore` on a fake root (a temp dir as /, with /etc/default/kdump-tools) and a real
// vmcore of a QEMU guest that panicked: Debian's kdump-config layout, retention and kdump_lock.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { kernelVersion, labVmcore, repo } from '../support/lab.ts';
import { crashOpens } from '../targets/dumps.ts';
import { signature } from '../support/kdump-header.ts';

const skip = kernelVersion('6.1') ? false : 'no Debian 6.1 kernel (bash .ci/setup)';
let tmp = '';
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-savecore-test-')); });
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

function fakeRoot(name: string, kdumpTools: string): string {
  const root = path.join(tmp, name);
  fs.mkdirSync(path.join(root, 'etc', 'default'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc', 'default', 'kdump-tools'), kdumpTools);
  return root;
}

function savecore(args: string[]) {
  return spawnSync(process.execPath, [path.join(repo, 'runtime', 'main.ts'), 'savecore', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
}

test("savecore writes KDUMP_COREDIR/<YYYYMMDDHHMM>/dump.<stamp> and dmesg.<stamp>, keeps KDUMP_NUM_DUMPS, and leaves the admin's other files", { skip }, () => {
  const vmcore = labVmcore();
  const root = fakeRoot('root', 'USE_KDUMP=1\nKDUMP_COREDIR="/var/crash"\nMAKEDUMP_ARGS="-c -d 31"\nKDUMP_NUM_DUMPS=2\nKDUMP_DUMP_DMESG=1\n');
  const coredir = path.join(root, 'var', 'crash');
  for (const d of ['202001010000', '202001020000', 'keepme']) fs.mkdirSync(path.join(coredir, d), { recursive: true });
  const r = savecore(['--root', root, vmcore]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const entries = fs.readdirSync(coredir).sort();
  const stamps = entries.filter((e) => /^\d{12}$/.test(e));
  // the oldest dump went (2 kept: the newest old one and this one); kdump_lock is kdump-config's lock file
  assert.deepEqual(entries, [...stamps, 'kdump_lock', 'keepme'].sort());
  assert.equal(stamps.length, 2);
  assert.equal(stamps[0], '202001020000');
  const stamp = stamps[1]!;
  const dir = path.join(coredir, stamp);
  const files = fs.readdirSync(dir).sort();
  assert.ok(files.includes(`dump.${stamp}`), files.join(' '));
  assert.ok(files.includes(`dmesg.${stamp}`), files.join(' '));
  assert.ok(!files.some((f) => f.includes('incomplete')), files.join(' '));
  // a kdump-compressed file (MAKEDUMP_ARGS -c): makedumpfile's "KDUMP   " signature
  assert.equal(signature(path.join(dir, `dump.${stamp}`)), 'KDUMP   ');
  assert.equal(fs.statSync(path.join(dir, `dump.${stamp}`)).mode & 0o777, 0o600);
  assert.match(fs.readFileSync(path.join(dir, `dmesg.${stamp}`), 'utf8'), /Linux version 6\.1\./);
});

test('savecore waits for kdump_lock and gives up with a clear error while kdump-config holds it', { skip }, async () => {
  const root = fakeRoot('locked', 'KDUMP_COREDIR="/var/crash"\n');
  const lock = path.join(root, 'var', 'crash', 'kdump_lock');
  fs.mkdirSync(path.dirname(lock), { recursive: true });
  // kdump-config's own way of holding it: flock(1) on the same file
  // (its own process group, so the sleep under flock goes too when the test ends it)
  const holder = spawn('flock', [lock, 'sh', '-c', 'echo held; exec sleep 600'], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
  try {
    await new Promise<void>((resolve) => holder.stdout!.once('data', () => resolve()));
    const r = savecore(['--root', root, '--lock-timeout', '0', path.join(tmp, 'no-vmcore')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /ESAVECORE_LOCKED: .*kdump_lock is held/);
    assert.deepEqual(fs.readdirSync(path.dirname(lock)), ['kdump_lock']);
  } finally {
    process.kill(-holder.pid!, 'SIGKILL');
    holder.stdout!.destroy();
  }
});

test('KDUMP_COMPRESSION=xz: savecore writes dump.<stamp>.xz, which xz -dc | makedumpfile -R turns into a dump crash opens', { skip, timeout: 600_000 }, () => {
  const vmcore = labVmcore();
  const root = fakeRoot('xz', 'KDUMP_COREDIR="/var/crash"\nMAKEDUMP_ARGS="-c -d 31"\nKDUMP_COMPRESSION=xz\n');
  const r = savecore(['--root', root, vmcore]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.match(r.stdout + r.stderr, /then xz \(KDUMP_COMPRESSION\)/);
  const coredir = path.join(root, 'var', 'crash');
  const stamp = fs.readdirSync(coredir).find((e) => /^\d{12}$/.test(e))!;
  const files = fs.readdirSync(path.join(coredir, stamp)).sort();
  assert.deepEqual(files.filter((f) => f.startsWith('dump')), [`dump.${stamp}.xz`]);
  assert.ok(files.includes(`dmesg.${stamp}`), files.join(' '));
  const xz = path.join(coredir, stamp, `dump.${stamp}.xz`);
  const kdump = path.join(tmp, 'xz.kdump');
  const back = spawnSync('sh', ['-c', `xz -dc '${xz}' | makedumpfile -R '${kdump}'`], { encoding: 'utf8' });
  assert.equal(back.status, 0, back.stderr);
  const c = crashOpens(kdump);
  assert.ok(c.ok, c.output.slice(-2000));
});
