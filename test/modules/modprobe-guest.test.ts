// A blacklisted module is never loaded, not even as a dependency: run for real in a QEMU guest
// (this host's kernel has no module support) booting Debian's 6.1 kernel with its real modules,
// kmod's modprobe, and lastword's loader (runtime/modules) on the pinned Node. The guest asks to
// load vxlan (which needs udp_tunnel, blacklisted here) and dummy, then lists /proc/modules.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { kernelVersion, repo } from '../support/lab.ts';
import { buildInitramfs, Guest } from '../support/qemu.ts';

const kver = kernelVersion('6.1');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-modguest-'));
let guest: Guest | undefined;

after(() => {
  guest?.kill();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The modules and their dependencies at their real paths, plus modules.dep made by depmod. */
function moduleTree(names: string[]): Record<string, string> {
  const files: Record<string, string> = {};
  const base = `/lib/modules/${kver}`;
  const staging = path.join(tmp, 'modroot');
  for (const name of names) {
    const out = execFileSync('modprobe', ['-S', kver!, '-C', '/dev/null', '--show-depends', name], { encoding: 'utf8' });
    for (const m of out.matchAll(/^insmod (\S+)/gm)) files[m[1]!] = m[1]!;
  }
  for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) files[`${base}/${f}`] = `${base}/${f}`;
  for (const [g, h] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(staging, g)), { recursive: true });
    fs.copyFileSync(h, path.join(staging, g));
  }
  execFileSync('depmod', ['-b', staging, kver!]);
  for (const f of fs.readdirSync(path.join(staging, base))) {
    if (f.startsWith('modules.')) files[`${base}/${f}`] = path.join(staging, base, f);
  }
  return files;
}

const DRIVER = `
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { loadModules } from '../../runtime/modules/load.ts';
import { parseBlacklistFile } from '../../runtime/modules/blacklist.ts';
const sys = {
  exec: (file, args, o = {}) => new Promise((resolve) => execFile(file, args, { timeout: o.timeoutMs, encoding: 'utf8' },
    (err, stdout, stderr) => resolve({ exitCode: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr, timedOut: false }))),
  now: () => performance.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)), log: (l) => console.log(l),
};
const blacklist = parseBlacklistFile('udp_tunnel blacklisted by the test\\n', '/etc/test-blacklist.conf');
const report = await loadModules(sys, ['vxlan', 'dummy', 'udp_tunnel'], blacklist);
console.log('REPORT ' + JSON.stringify(report));
// kmod on its own must refuse too: the modprobe.d file lastword wrote stops the dependency.
const direct = await sys.exec('modprobe', ['vxlan']);
console.log('DIRECT ' + direct.exitCode);
const mods = fs.readFileSync('/proc/modules', 'utf8').split('\\n').map((l) => l.split(' ')[0]).filter(Boolean);
console.log('MODULES ' + JSON.stringify(mods));
`;

const INIT = `#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs run /run
echo LW-GUEST-START $(cat /proc/uptime)
/usr/bin/node /lw/driver.mjs 2>&1
echo LW-GUEST-NODE-DONE $(cat /proc/uptime)
echo LW-GUEST-END
poweroff -f
`;

test('a module that needs a blacklisted one is never loaded by lastword nor by kmod; others load', { skip: kver ? false : 'no Debian 6.1 kernel installed' }, async () => {
  const t0 = Date.now();
  // Bundled to plain JS on the host: Node's type stripping would cost the TCG guest a WebAssembly compile.
  const entry = path.join(repo, 'test/modules', `.guest-driver-${process.pid}.ts`);
  fs.writeFileSync(entry, DRIVER);
  const driver = path.join(tmp, 'driver.mjs');
  try {
    execFileSync(path.join(repo, 'node_modules/.bin/esbuild'), [entry, '--bundle', '--platform=node', '--format=esm', '--log-level=warning', `--outfile=${driver}`]);
  } finally {
    fs.rmSync(entry, { force: true });
  }
  const initrd = buildInitramfs({
    binariesAt: { '/usr/bin/node': fs.realpathSync(path.join(repo, 'node_modules/.bin/node')), '/usr/bin/kmod': '/usr/bin/kmod' },
    symlinks: { '/sbin/modprobe': '/usr/bin/kmod' },
    files: { '/lw/driver.mjs': driver, ...moduleTree(['vxlan', 'dummy']) },
    texts: {
      '/init': { data: INIT, mode: 0o755 },
    },
  }, path.join(tmp, 'initrd.zst'));
  const tBoot = Date.now();
  process.stdout.write(`# initramfs built in ${((tBoot - t0) / 1000).toFixed(1)} s, ${fs.statSync(initrd).size} bytes\n`);
  guest = new Guest({ kernel: `/boot/vmlinuz-${kver}`, initrd, append: 'console=ttyS0 panic=-1 quiet', memMiB: 1024, logFile: path.join(tmp, 'console.log') });
  await guest.waitFor(/LW-GUEST-START/, 300_000);
  process.stdout.write(`# guest init after ${((Date.now() - tBoot) / 1000).toFixed(1)} s\n`);
  await guest.waitFor(/LW-GUEST-END/, 300_000);
  process.stdout.write(`# guest done after ${((Date.now() - tBoot) / 1000).toFixed(1)} s\n`);
  const text = guest.console;
  process.stdout.write(`# guest: ${/LW-GUEST-START.*/.exec(text)?.[0]} / ${/LW-GUEST-NODE-DONE.*/.exec(text)?.[0]}\n`);
  const report = JSON.parse(/REPORT (.*)/.exec(text)![1]!);
  const loaded = JSON.parse(/MODULES (.*)/.exec(text)![1]!) as string[];
  assert.deepEqual(report.loaded, ['dummy'], text);
  assert.deepEqual(report.refused.map((r: { module: string }) => r.module), ['vxlan', 'udp_tunnel']);
  assert.match(text, /EMODULE_BLACKLISTED: module vxlan needs udp_tunnel, which is blacklisted \(blacklisted by the test; \/etc\/test-blacklist\.conf:1\)/);
  assert.notEqual(/DIRECT (\d+)/.exec(text)![1], '0');
  assert.ok(loaded.includes('dummy'), loaded.join(' '));
  for (const m of ['udp_tunnel', 'vxlan', 'ip6_udp_tunnel']) assert.ok(!loaded.includes(m), `${m} is loaded: ${loaded.join(' ')}`);
  await guest.waitExit(60_000);
});
