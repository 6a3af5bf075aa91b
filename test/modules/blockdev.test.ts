// Finding the target's block device without udev: real loop devices with real ext4, ext3, xfs
// and btrfs filesystems made by mkfs, found by UUID= and LABEL= through their superblocks.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { LastwordError } from '../../runtime/errors.ts';
import { listBlockDevices, waitForBlockDevice } from '../../runtime/modules/blockdev.ts';
import { probeSuperblock, PROBE_BYTES } from '../../runtime/modules/superblock.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-blockdev-'));
const loops: string[] = [];
const label = `lw${process.pid % 100000}`;
const disks: Record<string, { loop: string; uuid: string }> = {};

function blkid(dev: string, tag: string): string {
  return execFileSync('blkid', ['-p', '-o', 'value', '-s', tag, dev], { encoding: 'utf8' }).trim();
}

function attach(name: string, mkfs: string[], sizeMiB: number): void {
  const img = path.join(dir, `${name}.img`);
  fs.closeSync(fs.openSync(img, 'w'));
  fs.truncateSync(img, sizeMiB * 1024 * 1024);
  execFileSync(mkfs[0]!, [...mkfs.slice(1), img], { stdio: 'ignore' });
  const loop = execFileSync('losetup', ['--find', '--show', img], { encoding: 'utf8' }).trim();
  loops.push(loop);
  disks[name] = { loop, uuid: blkid(loop, 'UUID') };
}

before(() => {
  attach('ext4', ['mkfs.ext4', '-q', '-F', '-L', `${label}e4`], 16);
  attach('ext3', ['mkfs.ext3', '-q', '-F', '-L', `${label}e3`], 16);
  attach('xfs', ['mkfs.xfs', '-q', '-f', '-L', `${label}x`], 300);
  attach('btrfs', ['mkfs.btrfs', '-q', '-f', '-L', `${label}b`], 128);
});

after(() => {
  for (const l of loops) {
    try { execFileSync('losetup', ['-d', l]); } catch { /* already gone */ }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

// now/sleep that advance a fake clock, so a timeout is reached without waiting for it.
function fakeClock() {
  let t = 0;
  const logs: string[] = [];
  return { now: () => t, sleep: async (ms: number) => { t += ms; }, log: (l: string) => { logs.push(l); }, logs };
}

test('the superblock prober agrees with blkid on type, UUID and label', () => {
  for (const [name, d] of Object.entries(disks)) {
    const buf = Buffer.alloc(PROBE_BYTES);
    const fd = fs.openSync(d.loop, 'r');
    try { fs.readSync(fd, buf, 0, buf.length, 0); } finally { fs.closeSync(fd); }
    const id = probeSuperblock(buf);
    assert.deepEqual(id, { fstype: blkid(d.loop, 'TYPE'), uuid: d.uuid, label: blkid(d.loop, 'LABEL') }, name);
  }
  assert.equal(probeSuperblock(Buffer.alloc(PROBE_BYTES)), undefined);
});

test('finds ext4, xfs and btrfs loop devices by UUID= and LABEL=', async () => {
  const clock = fakeClock();
  for (const name of ['ext4', 'xfs', 'btrfs'] as const) {
    const d = disks[name]!;
    assert.equal(await waitForBlockDevice(clock, { by: 'uuid', uuid: d.uuid.toUpperCase().toLowerCase() }, { timeoutMs: 1000 }), d.loop);
  }
  assert.equal(await waitForBlockDevice(clock, { by: 'label', label: `${label}e4` }, { timeoutMs: 1000 }), disks.ext4!.loop);
  assert.equal(await waitForBlockDevice(clock, { by: 'label', label: `${label}x` }, { timeoutMs: 1000 }), disks.xfs!.loop);
  assert.equal(await waitForBlockDevice(clock, { by: 'label', label: `${label}b` }, { timeoutMs: 1000 }), disks.btrfs!.loop);
  assert.equal(await waitForBlockDevice(clock, { by: 'path', path: disks.ext3!.loop }, { timeoutMs: 1000 }), disks.ext3!.loop);
  const seen = listBlockDevices().find((b) => b.dev === disks.ext3!.loop);
  assert.equal(seen?.fs?.fstype, 'ext3');
});

test('a UUID that never appears times out naming the UUID and what was seen', async () => {
  const clock = fakeClock();
  await assert.rejects(waitForBlockDevice(clock, { by: 'uuid', uuid: '00000000-dead-beef-0000-000000000000' }, { timeoutMs: 3000, pollMs: 500 }), (err: unknown) => {
    assert.ok(err instanceof LastwordError);
    assert.equal(err.code, 'EDEVICE_TIMEOUT');
    assert.match(err.message, /no block device UUID=00000000-dead-beef-0000-000000000000 after 3 s/);
    assert.ok(err.message.includes(`LABEL=${label}x`), err.message);
    return true;
  });
  assert.equal(clock.now(), 3000);
  assert.match(clock.logs[0]!, /waiting up to 3 s for UUID=00000000-dead-beef/);
  await assert.rejects(waitForBlockDevice(clock, { by: 'partuuid', partuuid: '1234abcd-01' }, { timeoutMs: 10 }), /no block device PARTUUID=1234abcd-01 after 0 s/);
});
