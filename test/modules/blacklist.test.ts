// Blacklists merged from every source, the shipped lists' format, the modprobe.d file, and the
// refusal logic of the loader over the installed 6.1 kernel's real module index, driven through a
// recording System (the real modprobe run is in modprobe-guest.test.ts: this host's kernel has no
// module support).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { loadPlan } from '../../runtime/config/load.ts';
import { modprobeBlacklistConf, parseBlacklistFile, readShippedBlacklists, resolveBlacklist } from '../../runtime/modules/blacklist.ts';
import { formatLeftOut, LEFT_OUT_FILE, loadModules, moduleGuard, parseLeftOut, targetModules } from '../../runtime/modules/load.ts';
import type { ExecOptions, ExecResult, System } from '../../runtime/system/types.ts';
import { kernelVersion } from '../support/lab.ts';

const root = path.resolve(import.meta.dirname, '../..');
const fx = (n: string) => path.join(root, 'test/fixtures/config', n);

test('every shipped blacklist entry has a reason, and the shipped list is found from a checkout', () => {
  const shipped = readShippedBlacklists();
  assert.ok(shipped.length >= 10);
  assert.ok(shipped.every((e) => e.reason.length > 10 && e.source.file.endsWith('capture.conf')));
  assert.ok(shipped.some((e) => e.module === 'nouveau'));
  assert.throws(() => parseBlacklistFile('floppy\n', 'x.conf'), /x\.conf:1: 'floppy' has no reason/);
});

test('resolveBlacklist merges kdump.conf, the command line and the shipped lists, first source wins', () => {
  const plan = loadPlan({ config: fx('fedora-every-directive.conf'), cmdline: 'modprobe.blacklist=nouveau,my-driver' });
  const shipped = parseBlacklistFile('nouveau GPU reason here\nkvm not needed for a dump\nfloppy shipped reason\n', 'shipped.conf');
  const bl = resolveBlacklist(plan, shipped);
  assert.deepEqual(bl.map((e) => e.module), ['floppy', 'pcspkr', 'nouveau', 'my_driver', 'kvm']);
  assert.equal(bl[0]!.reason, 'kdump.conf blacklist');
  assert.equal(bl[2]!.source.file, '<cmdline>');
  // extra_modules beats a shipped entry, never one from the admin's config.
  const p2 = loadPlan({ config: fx('fedora-kdump.conf'), cmdline: 'lastword.extra_modules=kvm,floppy modprobe.blacklist=floppy' });
  assert.deepEqual(resolveBlacklist(p2, shipped).map((e) => e.module), ['floppy', 'nouveau']);
  const conf = modprobeBlacklistConf(bl);
  assert.match(conf, /^blacklist my_driver\ninstall my_driver \/bin\/false$/m);
  assert.match(conf, /# kdump.conf blacklist \(.*fedora-every-directive\.conf:21\)/);
});

test('the target needs its filesystem or NFS modules plus extra_modules', () => {
  assert.deepEqual(targetModules(loadPlan({ config: fx('fedora-every-directive.conf'), cmdline: '' })), ['xfs', 'gfs2', 'dm_mod', 'nvme']);
  assert.deepEqual(targetModules(loadPlan({ config: fx('debian-nfs.kdump-tools'), cmdline: '' })), ['nfs', 'nfsv4', 'nfsv3']);
});

function recordingSystem(answers: Record<string, ExecResult>): System & { calls: string[]; logs: string[] } {
  const calls: string[] = [];
  const logs: string[] = [];
  const sys = {
    calls, logs,
    async exec(file: string, args: readonly string[], _opts?: ExecOptions): Promise<ExecResult> {
      const line = [file, ...args].join(' ');
      calls.push(line);
      const key = Object.keys(answers).find((k) => line.endsWith(k));
      return key ? answers[key]! : { exitCode: 0, stdout: '', stderr: '', timedOut: false };
    },
    now: () => 0, sleep: async () => {}, log: (l: string) => { logs.push(l); },
  };
  return sys as unknown as System & { calls: string[]; logs: string[] };
}

const kver = kernelVersion('6.1');

test('a module whose dependency is blacklisted is refused before modprobe loads anything', { skip: kver ? false : 'no Debian 6.1 kernel installed' }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-modprobe-'));
  try {
    const sys = recordingSystem({
      ' -b nosuch': { exitCode: 1, stdout: '', stderr: 'modprobe: FATAL: Module nosuch not found in directory /lib/modules/6.1.0\n', timedOut: false },
    });
    const bl = parseBlacklistFile('udp_tunnel test reason\n', 'test.conf');
    const guard = moduleGuard(bl, `/lib/modules/${kver}`);
    const report = await loadModules(sys, ['vxlan', 'ext4', 'unix', 'nosuch'], guard, bl, { confDir: dir });
    // unix is built into Debian's kernel: nothing to run for it.
    assert.deepEqual(report.loaded, ['ext4', 'unix']);
    assert.deepEqual(report.refused.map((r) => [r.module, r.blacklisted.module, r.chain.join('>')]), [['vxlan', 'udp_tunnel', 'vxlan>udp_tunnel']]);
    assert.match(report.failed[0]!.message, /Module nosuch not found/);
    assert.deepEqual(sys.calls, [`modprobe -C ${dir} -b ext4`, `modprobe -C ${dir} -b nosuch`]);
    assert.match(sys.logs.join('\n'), /EMODULE_BLACKLISTED: module vxlan needs udp_tunnel, which is blacklisted \(test reason; test\.conf:1\); not loading it/);
    assert.match(fs.readFileSync(path.join(dir, 'lastword-capture-blacklist.conf'), 'utf8'), /install udp_tunnel \/bin\/false/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('without a module index only the blacklisted names themselves are refused, and the log says why', async () => {
  const logs: string[] = [];
  const bl = parseBlacklistFile('jbd2 test reason\n', 'test.conf');
  const guard = moduleGuard(bl, path.join(os.tmpdir(), 'lastword-no-such-modules-dir'), (l) => logs.push(l));
  assert.deepEqual([...guard.blocked.keys()], ['jbd2']);
  assert.match(logs.join('\n'), /no module index in .*lastword-no-such-modules-dir .*dependencies of blacklisted modules cannot be checked/);
});

test("a module the image's builder left out fails with the builder's reason, not only modprobe's 'not found'", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-left-out-'));
  try {
    const excluded = [
      { module: 'ext4', reason: 'needs jbd2, which is left out (blacklisted (kdump.conf blacklist at /etc/kdump.conf:3); wanted by ext4)' },
      { module: 'jbd2', reason: 'blacklisted (kdump.conf blacklist at /etc/kdump.conf:3);\nwanted by ext4' },
    ];
    fs.writeFileSync(path.join(dir, LEFT_OUT_FILE), formatLeftOut(excluded));
    assert.deepEqual([...parseLeftOut(fs.readFileSync(path.join(dir, LEFT_OUT_FILE), 'utf8'))], [
      ['ext4', excluded[0]!.reason], ['jbd2', 'blacklisted (kdump.conf blacklist at /etc/kdump.conf:3); wanted by ext4']]);
    const notFound = (m: string): ExecResult => ({ exitCode: 1, stdout: '', stderr: `modprobe: FATAL: Module ${m} not found in directory /lib/modules/6.1.0\n`, timedOut: false });
    const sys = recordingSystem({ ' -b ext4': notFound('ext4'), ' -b xfs': notFound('xfs') });
    const guard = moduleGuard([], dir);
    const report = await loadModules(sys, ['ext4', 'xfs'], guard, [], { confDir: dir });
    assert.deepEqual(report.failed.map((f) => f.module), ['ext4', 'xfs']);
    assert.equal(report.failed[0]!.message, `not in this initramfs: lastword initramfs left it out: ${excluded[0]!.reason} (modprobe: FATAL: Module ext4 not found in directory /lib/modules/6.1.0)`);
    assert.equal(report.failed[1]!.message, 'modprobe: FATAL: Module xfs not found in directory /lib/modules/6.1.0');
    assert.match(sys.logs.join('\n'), /lastword: module ext4: not in this initramfs: lastword initramfs left it out: needs jbd2/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
