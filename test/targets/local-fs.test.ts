// Local filesystem targets on real loop devices: ext4 and xfs found by UUID= and LABEL= (superblock
// probing, no udev), mounted read-write through the real System, the whole capture with the real
// filter and writer on a lab vmcore. A filesystem too small ends as a flagged incomplete dump.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import { defaultPlan } from '../../runtime/config/defaults.ts';
import type { DeviceSpec, Plan } from '../../runtime/config/plan.ts';
import { realStages } from '../../runtime/cli/save.ts';
import { capture, type Outcome } from '../../runtime/pid1/capture.ts';
import { realSystem } from '../../runtime/system/real.ts';
import { labVmcore } from '../support/lab.ts';
import { drgnReads, flaggedIncomplete, missingReference } from './dumps.ts';

const skip = missingReference() ?? (spawnSync('sh', ['-c', 'command -v mkfs.xfs && command -v losetup']).status !== 0 ? 'xfsprogs or losetup missing (bash .ci/setup)' : undefined);

interface Loop {
  dev: string;
  dir: string;
}

/** A sparse image with a fresh filesystem on a loop device; removed when the test ends. */
function loopFs(t: TestContext, fstype: 'ext4' | 'xfs', sizeMiB: number, label: string, uuid: string): Loop {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `lw-${fstype}-`));
  const img = path.join(dir, 'disk.img');
  fs.writeFileSync(img, '');
  fs.truncateSync(img, sizeMiB << 20);
  if (fstype === 'ext4') execFileSync('mkfs.ext4', ['-q', '-F', '-L', label, '-U', uuid, img]);
  else execFileSync('mkfs.xfs', ['-q', '-f', '-L', label, '-m', `uuid=${uuid}`, img]);
  const dev = execFileSync('losetup', ['-f', '--show', img], { encoding: 'utf8' }).trim();
  t.after(() => {
    spawnSync('umount', ['-l', path.join(dir, 'mnt')]);
    spawnSync('umount', ['-l', path.join(dir, 'inspect')]);
    spawnSync('losetup', ['-d', dev]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { dev, dir };
}

function fsPlan(fstype: string, device: DeviceSpec): Plan {
  const p = defaultPlan('fedora');
  p.target = { kind: 'local-fs', fstype, device, mountOptions: [], source: { file: 'kdump.conf', line: 1 } };
  p.finalAction = 'poweroff';
  p.failureAction = 'halt';
  p.modules.diskTimeoutMs = 5000;
  return p;
}

async function captureTo(loop: Loop, plan: Plan): Promise<{ out: Outcome; lines: string[] }> {
  const lines: string[] = [];
  const sys = realSystem({ log: (l) => lines.push(l) });
  const mountPoint = path.join(loop.dir, 'mnt');
  const out = await capture({
    sys, plan, vmcore: labVmcore(), stages: realStages(sys, { mountPoint }), prepareSystem: false, emit: (l) => lines.push(l),
  });
  // the target was unmounted by the capture
  assert.equal(spawnSync('mountpoint', ['-q', mountPoint]).status !== 0, true, 'the target is still mounted');
  assert.ok(!lines.some((l) => /cannot unmount/.test(l)), lines.join('\n'));
  return { out, lines };
}

/** Mounts the filesystem read-only to look at what the capture left. */
function inspect(loop: Loop): string {
  const at = path.join(loop.dir, 'inspect');
  fs.mkdirSync(at, { recursive: true });
  // Seen once under load from other tests: EBUSY right after the capture's umount. Retry briefly.
  for (let i = 0; ; i++) {
    const r = spawnSync('mount', ['-o', 'ro', loop.dev, at], { encoding: 'utf8' });
    if (r.status === 0) return at;
    if (i === 5) throw new Error(`cannot mount ${loop.dev} to inspect it: ${r.stderr}`);
    spawnSync('sleep', ['1']);
  }
}

function dumpDir(root: string): string {
  const dirs = fs.readdirSync(path.join(root, 'var/crash'));
  assert.equal(dirs.length, 1, `expected one dump directory: ${dirs.join(', ')}`);
  assert.match(dirs[0]!, /^127\.0\.0\.1-\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d$/);
  return path.join(root, 'var/crash', dirs[0]!);
}

test('saves a dump drgn reads (tasks, kernel log) to an ext4 filesystem found by UUID=', { skip, timeout: 300_000 }, async (t) => {
  const uuid = randomUUID();
  const loop = loopFs(t, 'ext4', 256, 'LWTESTEXT4', uuid);
  const { out, lines } = await captureTo(loop, fsPlan('ext4', { by: 'uuid', uuid }));
  assert.equal(out.ok, true, `${out.reason}\n${lines.join('\n')}`);
  assert.equal(out.action, 'poweroff');
  const dir = dumpDir(inspect(loop));
  assert.deepEqual(fs.readdirSync(dir).sort(), ['kexec-dmesg.log', 'vmcore', 'vmcore-dmesg.txt']);
  assert.equal(fs.statSync(path.join(dir, 'vmcore')).mode & 0o777, 0o600);
  assert.equal(flaggedIncomplete(path.join(dir, 'vmcore')), false);
  assert.match(fs.readFileSync(path.join(dir, 'vmcore-dmesg.txt'), 'utf8'), /Linux version 6\.1/);
  assert.match(fs.readFileSync(path.join(dir, 'kexec-dmesg.log'), 'utf8'), new RegExp(`ext4 UUID=${uuid} \\(${loop.dev}\\)`));
  const report = drgnReads(path.join(dir, 'vmcore'));
  assert.ok(report.ok, `drgn could not read the dump:\n${report.output.slice(-2000)}`);
});

test('saves a complete dump to an xfs filesystem found by LABEL=', { skip, timeout: 300_000 }, async (t) => {
  const loop = loopFs(t, 'xfs', 320, 'LWTESTXFS', randomUUID());
  const { out, lines } = await captureTo(loop, fsPlan('xfs', { by: 'label', label: 'LWTESTXFS' }));
  assert.equal(out.ok, true, `${out.reason}\n${lines.join('\n')}`);
  const dir = dumpDir(inspect(loop));
  const vmcore = path.join(dir, 'vmcore');
  assert.equal(fs.readFileSync(vmcore).subarray(0, 8).toString('latin1'), 'KDUMP   ');
  assert.equal(flaggedIncomplete(vmcore), false);
  assert.ok(fs.statSync(vmcore).size > 1 << 20);
});

test('a filesystem too small ends as a flagged vmcore-incomplete and the failure action, not a crash', { skip, timeout: 300_000 }, async (t) => {
  const loop = loopFs(t, 'ext4', 16, 'LWTESTSMALL', randomUUID());
  const { out, lines } = await captureTo(loop, fsPlan('ext4', { by: 'label', label: 'LWTESTSMALL' }));
  assert.equal(out.ok, false);
  assert.equal(out.action, 'halt');
  assert.equal(out.incomplete, true);
  assert.match(out.reason, /ETARGET_FULL/);
  assert.match(lines.join('\n'), /dump INCOMPLETE/);
  const dir = dumpDir(inspect(loop));
  const files = fs.readdirSync(dir);
  assert.ok(files.includes('vmcore-incomplete'), `files: ${files.join(', ')}`);
  assert.ok(!files.includes('vmcore'));
  assert.equal(flaggedIncomplete(path.join(dir, 'vmcore-incomplete')), true, 'the kdump header is not flagged INCOMPLETE');
});

test('a target mounted read-only already (the disk /init runs lastword from) is remounted read-write and the dump saved', { skip, timeout: 300_000 }, async (t) => {
  const uuid = randomUUID();
  const loop = loopFs(t, 'ext4', 256, 'LWTESTIMAGE', uuid);
  // What /init does with `lastword initramfs --image-on`: the disk mounted read-only, the image on it.
  const imageFs = path.join(loop.dir, 'imagefs');
  fs.mkdirSync(imageFs);
  execFileSync('mount', ['-o', 'ro', loop.dev, imageFs]);
  try {
    const { out, lines } = await captureTo(loop, fsPlan('ext4', { by: 'uuid', uuid }));
    assert.equal(out.ok, true, `${out.reason}\n${lines.join('\n')}`);
    assert.ok(lines.some((l) => l.includes(`${loop.dev} is mounted read-only on ${imageFs}`) && l.includes('remounting it read-write')), lines.join('\n'));
    // the first mount stays, read-write now, and shows the dump
    const mine = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === imageFs);
    assert.match(mine ?? '', / rw[, ]/, `mountinfo: ${mine}`);
    const dir = dumpDir(imageFs);
    assert.equal(flaggedIncomplete(path.join(dir, 'vmcore')), false);
  } finally {
    spawnSync('umount', [imageFs]);
  }
});
