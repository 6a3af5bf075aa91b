// Blacklists merged from every source, the shipped lists' format, the modprobe.d file, and the
// refusal logic of the loader driven through a recording System (the real modprobe run is in
// modprobe-guest.test.ts: this host's kernel has no module support).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { loadPlan } from '../../runtime/config/load.ts';
import { modprobeBlacklistConf, parseBlacklistFile, readShippedBlacklists, resolveBlacklist } from '../../runtime/modules/blacklist.ts';
import { loadModules, parseShowDepends, targetModules } from '../../runtime/modules/load.ts';
import type { ExecOptions, ExecResult, System } from '../../runtime/system/types.ts';

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

test('modprobe --show-depends output is read into a chain', () => {
  const chain = parseShowDepends('insmod /lib/modules/6.1.0/kernel/net/ipv4/udp_tunnel.ko \ninsmod /lib/modules/6.1.0/kernel/drivers/net/vxlan/vxlan.ko.xz \nbuiltin unix\ninstall /bin/false \n');
  assert.deepEqual(chain.map((s) => (s.kind === 'install' ? s.command : s.module)), ['udp_tunnel', 'vxlan', 'unix', '/bin/false']);
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

test('a module whose dependency is blacklisted is refused before modprobe loads anything', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-modprobe-'));
  try {
    const ok = (stdout: string): ExecResult => ({ exitCode: 0, stdout, stderr: '', timedOut: false });
    const sys = recordingSystem({
      '--show-depends vxlan': ok('insmod /m/udp_tunnel.ko \ninsmod /m/ip6_udp_tunnel.ko \ninsmod /m/vxlan.ko \n'),
      '--show-depends ext4': ok('insmod /m/jbd2.ko \ninsmod /m/ext4.ko \n'),
      '--show-depends nosuch': { exitCode: 1, stdout: '', stderr: 'modprobe: FATAL: Module nosuch not found in directory /lib/modules/6.1.0\n', timedOut: false },
    });
    const bl = parseBlacklistFile('udp_tunnel test reason\n', 'test.conf');
    const report = await loadModules(sys, ['vxlan', 'ext4', 'nosuch'], bl, { confDir: dir });
    assert.deepEqual(report.loaded, ['ext4']);
    assert.deepEqual(report.refused.map((r) => [r.module, r.blacklisted.module]), [['vxlan', 'udp_tunnel']]);
    assert.match(report.failed[0]!.message, /Module nosuch not found/);
    assert.ok(!sys.calls.some((c) => / -b vxlan$/.test(c)), sys.calls.join('\n'));
    assert.ok(sys.calls.some((c) => c.endsWith(`-C ${dir} -b ext4`)));
    assert.match(sys.logs.join('\n'), /EMODULE_BLACKLISTED: module vxlan needs udp_tunnel, which is blacklisted \(test reason; test\.conf:1\)/);
    assert.match(fs.readFileSync(path.join(dir, 'lastword-capture-blacklist.conf'), 'utf8'), /install udp_tunnel \/bin\/false/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
