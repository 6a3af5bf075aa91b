// Which modules must never load, over the installed Debian 6.1 kernel's real module index
// (modules.dep, modules.softdep, modules.alias), cross-checked against kmod's own view of the
// dependencies (`modprobe -S <kver> --show-depends`); the kernel-request gate script run for real
// with busybox sh and kmod's -R; coldplug's alias filtering.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { parseBlacklistFile } from '../../runtime/modules/blacklist.ts';
import { blockedModules, describeBlocked, readModuleIndex, resolveRequest } from '../../runtime/modules/closure.ts';
import { coldplugRequests } from '../../runtime/modules/coldplug.ts';
import { installModprobeGate, modprobeGateScript } from '../../runtime/modules/gate.ts';
import { moduleGuard } from '../../runtime/modules/load.ts';
import { kernelVersion } from '../support/lab.ts';

const kver = kernelVersion('6.1');
const skip = kver ? false : 'no Debian 6.1 kernel installed';
const dir = kver ? `/lib/modules/${kver}` : '';
const index = kver ? readModuleIndex(dir) : undefined;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-closure-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** kmod's answer: the modules `modprobe ext4` would insmod, without any config. */
function kmodChain(module: string): string[] {
  const out = execFileSync('modprobe', ['-S', kver!, '-C', '/dev/null', '--show-depends', module], { encoding: 'utf8', cwd: tmp });
  return [...out.matchAll(/^insmod \S*\/([^/\s]+)\.ko(\.\w+)?/gm)].map((m) => m[1]!.replace(/-/g, '_'));
}

test('blacklisting jbd2 blocks exactly the modules whose modules.dep line needs it: ext4, ocfs2..., not mbcache', { skip }, () => {
  const bl = parseBlacklistFile('jbd2 journal test\n', 'test.conf');
  const blocked = blockedModules(index!, bl);
  // modules.dep lists the whole hard closure on each line: the oracle is a plain text search.
  const needsJbd2 = fs.readFileSync(path.join(dir, 'modules.dep'), 'utf8').split('\n')
    .filter((l) => / \S*\/jbd2\.ko/.test(l.slice(l.indexOf(':'))))
    .map((l) => path.basename(l.slice(0, l.indexOf(':'))).replace(/\.ko.*$/, '').replace(/-/g, '_'));
  assert.ok(needsJbd2.includes('ext4') && needsJbd2.includes('ocfs2'), needsJbd2.join(' '));
  assert.deepEqual([...blocked.keys()].sort(), ['jbd2', ...needsJbd2].sort());
  assert.deepEqual(blocked.get('ext4')!.chain, ['ext4', 'jbd2']);
  assert.equal(describeBlocked(blocked.get('ext4')!), 'module ext4 needs jbd2, which is blacklisted (journal test; test.conf:1)');
  assert.equal(describeBlocked(blocked.get('jbd2')!), 'module jbd2 is blacklisted (journal test; test.conf:1)');
  for (const m of ['mbcache', 'crc16', 'xfs', 'virtio_blk']) assert.ok(!blocked.has(m), m);
  // kmod would load jbd2 for every blocked module, and for none of the others tried.
  for (const m of ['ext4', 'ocfs2']) assert.ok(kmodChain(m).includes('jbd2'), m);
  for (const m of ['xfs', 'btrfs', 'virtio_blk', 'nfsv4']) assert.ok(!kmodChain(m).includes('jbd2'), m);
});

test('a blacklisted soft dependency blocks the module too, because modprobe loads it alongside', { skip }, () => {
  // ext4 and jbd2 have `softdep pre: crypto-crc32c`, which resolves to crc32c_intel and crc32c_generic.
  const blocked = blockedModules(index!, parseBlacklistFile('crc32c_generic test\n', 'test.conf'));
  assert.deepEqual(blocked.get('jbd2')!.chain, ['jbd2', 'crc32c_generic']);
  assert.deepEqual(blocked.get('ext4')!.chain, ['ext4', 'crc32c_generic']);
  // ocfs2 has no softdep of its own: it is blocked through jbd2's.
  assert.deepEqual(blocked.get('ocfs2')!.chain, ['ocfs2', 'jbd2', 'crc32c_generic']);
  assert.match(describeBlocked(blocked.get('ocfs2')!), /^module ocfs2 needs crc32c_generic \(through jbd2\), which is blacklisted/);
  assert.ok(kmodChain('ext4').includes('crc32c_generic'), 'kmod does not load the softdep: the premise is wrong');
  // vfat has no crc32c anywhere in its closure.
  assert.ok(!blocked.has('vfat') && !kmodChain('vfat').includes('crc32c_generic'));
});

test('names and aliases resolve like kmod: fs-ext4 is ext4, a blacklisted name the index lacks stays refused', { skip }, () => {
  const bl = parseBlacklistFile('jbd2 test\nnot_a_module typo test\n', 'test.conf');
  const blocked = blockedModules(index!, bl);
  assert.deepEqual(resolveRequest(index!, blocked, 'fs-ext4').blocked.map((b) => b.module), ['ext4']);
  assert.deepEqual(resolveRequest(index!, blocked, 'fs-xfs'), { allowed: ['xfs'], blocked: [] });
  assert.deepEqual(resolveRequest(index!, blocked, 'not-a-module').blocked.map((b) => b.module), ['not_a_module']);
  assert.deepEqual(resolveRequest(index!, blocked, 'nosuch'), { allowed: [], blocked: [] });
});

test('coldplug drops a device driver that needs a blacklisted module and keeps the rest', { skip }, () => {
  // An Atheros AR9280 (ath9k -> mac80211 -> cfg80211, shipped-blacklisted) and a virtio disk.
  const ath9k = 'pci:v0000168Cd0000002Asv00000000sd00000000bc02sc80i00';
  const vblk = 'virtio:d00000002v00001AF4';
  const bl = parseBlacklistFile('cfg80211 wireless test\n', 'capture.conf');
  const guard = moduleGuard(bl, dir);
  const lines: string[] = [];
  assert.deepEqual(coldplugRequests([ath9k, vblk], guard, (l) => lines.push(l)), [vblk]);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /coldplug: not loading ath9k for device pci:v0000168C.*: module ath9k needs cfg80211, which is blacklisted \(wireless test; capture\.conf:1\)/);
  assert.deepEqual(coldplugRequests([ath9k, vblk], undefined, () => {}), [ath9k, vblk]);
});

test('the kernel-request gate refuses fs-ext4 when jbd2 is blacklisted and execs modprobe for the rest', { skip }, () => {
  // The real modprobe stand-in answers -R with kmod for the 6.1 tree and records every other call.
  const calls = path.join(tmp, 'calls');
  const real = path.join(tmp, 'real-modprobe');
  fs.writeFileSync(real, `#!/bin/sh\nif [ "$1" = -R ]; then exec modprobe -S ${kver} -R "$2"; fi\necho "$*" >> ${calls}\n`, { mode: 0o755 });
  const proc = path.join(tmp, 'proc-modprobe');
  fs.writeFileSync(proc, `${real}\n`);
  const consoleFile = path.join(tmp, 'console');
  fs.writeFileSync(consoleFile, '');
  const blocked = blockedModules(index!, parseBlacklistFile('jbd2 journal test\n', 'test.conf'));
  const logs: string[] = [];
  const gate = installModprobeGate({ log: (l) => logs.push(l) }, blocked, { path: path.join(tmp, 'run/gate'), procFile: proc, console: consoleFile });
  assert.equal(fs.readFileSync(proc, 'utf8').trim(), gate);
  assert.match(logs[0]!, /kernel module requests go through .*run\/gate \(.*proc-modprobe was .*real-modprobe\); \d+ modules refused: .*ext4 .*jbd2/);
  const sh = (...args: string[]) => spawnSync('busybox', ['sh', gate, ...args], { encoding: 'utf8', cwd: tmp });
  // As the kernel calls it (kernel/kmod.c): modprobe -q -- <name>
  const refused = sh('-q', '--', 'fs-ext4');
  assert.equal(refused.status, 1);
  assert.match(fs.readFileSync(consoleFile, 'utf8'), /^lastword: refusing the kernel's request for module fs-ext4: module ext4 needs jbd2, which is blacklisted \(journal test; test\.conf:1\)$/m);
  assert.equal(sh('-q', '--', 'jbd2').status, 1);
  assert.equal(sh('-q', '--', 'fs-xfs').status, 0);
  assert.equal(sh('-q', '--', 'crypto-crc32c').status, 0);
  assert.equal(fs.readFileSync(calls, 'utf8'), '-q -- fs-xfs\n-q -- crypto-crc32c\n');
  // Installing twice keeps the real modprobe, not the gate, behind the gate.
  installModprobeGate({ log: () => {} }, blocked, { path: gate, procFile: proc, console: consoleFile });
  assert.match(fs.readFileSync(gate, 'utf8'), new RegExp(`^real='${real}'$`, 'm'));
});

test('the gate script quotes reasons and lists both spellings of a module name', () => {
  const bl = parseBlacklistFile("snd_hda_intel it's noisy\n", 'x.conf');
  const script = modprobeGateScript(new Map([['snd_hda_intel', { module: 'snd_hda_intel', blacklisted: bl[0]!, chain: ['snd_hda_intel'] }]]), '/sbin/modprobe');
  assert.match(script, /^ {4}snd_hda_intel\|snd-hda-intel\) why='module snd_hda_intel is blacklisted \(it'\\''s noisy; x\.conf:1\)' ;;$/m);
  assert.equal(spawnSync('busybox', ['sh', '-n', '-c', script]).status, 0);
});
