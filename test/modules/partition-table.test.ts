// PARTUUID / PARTLABEL read from GPT and MBR partition tables written by sfdisk, checked against
// what sfdisk itself reports. (This host's kernel does not scan loop partitions; the QEMU guest in
// modprobe-guest.test.ts finds a PARTUUID= target on a real partitioned disk.)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { partitionTableBytes, readPartitionIds } from '../../runtime/modules/partition-table.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-parttable-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function disk(name: string, script: string): { img: string; head: Buffer } {
  const img = path.join(dir, name);
  fs.closeSync(fs.openSync(img, 'w'));
  fs.truncateSync(img, 32 * 1024 * 1024);
  execFileSync('sfdisk', ['-q', img], { input: script });
  const head = Buffer.alloc(partitionTableBytes(512));
  const fd = fs.openSync(img, 'r');
  try { fs.readSync(fd, head, 0, head.length, 0); } finally { fs.closeSync(fd); }
  return { img, head };
}

const sfdisk = (...args: string[]) => execFileSync('sfdisk', args, { encoding: 'utf8' }).trim();

test('GPT: unique partition GUIDs and names, as sfdisk reports them', () => {
  const { img, head } = disk('gpt.img', 'label: gpt\nsize=8MiB, type=L, name="lwdump"\nsize=8MiB, type=L\n');
  const ids = readPartitionIds(head);
  assert.deepEqual(ids, [
    { number: 1, partuuid: sfdisk('--part-uuid', img, '1').toLowerCase(), partlabel: 'lwdump' },
    { number: 2, partuuid: sfdisk('--part-uuid', img, '2').toLowerCase(), partlabel: undefined },
  ]);
});

test('MBR: the kernel form <disk signature>-<partition number>', () => {
  const { img, head } = disk('mbr.img', 'label: dos\nlabel-id: 0x1234abcd\nsize=8MiB, type=83\nsize=8MiB, type=83\n');
  assert.equal(sfdisk('--disk-id', img), '0x1234abcd');
  assert.deepEqual(readPartitionIds(head).map((p) => p.partuuid), ['1234abcd-01', '1234abcd-02']);
  assert.deepEqual(readPartitionIds(Buffer.alloc(4096)), []);
});
