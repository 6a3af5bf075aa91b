// The target's modules and devices for real, in a QEMU guest (this host's kernel has no module
// support) booting Debian's 6.1 kernel with its real modules, kmod's modprobe, no udev, and
// lastword's Plan + prepareTarget (runtime/config, runtime/modules) on the pinned Node. The guest's
// kdump.conf targets `ext4 PARTUUID=` (a GPT partition of a virtio disk) and asks for vxlan (which needs udp_tunnel,
// blacklisted on the command line), dummy and udp_tunnel; fat is blacklisted too, and the kernel's
// own request for vfat (mount -t vfat) must be refused by the gate lastword puts in
// /proc/sys/kernel/modprobe, while its request for minix goes through. reset_devices is on the
// command line, and the guest is a q35 machine whose disk function 0000:01:00.0 (behind a
// pcie-root-port) already has virtio_pci bound, as a built-in driver would: lastword must unbind
// it, reset it (FLR) and bind it again before the disk is looked for.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { kernelVersion, repo } from '../support/lab.ts';
import { buildInitramfs, Guest, makeDisk } from '../support/qemu.ts';

const kver = kernelVersion('6.1');
const label = 'lwdump';
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
import { loadPlan } from '../../runtime/config/load.ts';
import { prepareTarget } from '../../runtime/modules/prepare.ts';
const sys = {
  exec: (file, args, o = {}) => new Promise((resolve) => execFile(file, args, { timeout: o.timeoutMs, encoding: 'utf8' },
    (err, stdout, stderr) => resolve({ exitCode: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr, timedOut: false }))),
  now: () => performance.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)), log: (l) => console.log(l),
};
const plan = loadPlan({ config: '/etc/kdump.conf', cmdline: fs.readFileSync('/proc/cmdline', 'utf8') });
try {
  console.log('PREPARED ' + JSON.stringify(await prepareTarget(sys, plan)));
} catch (err) {
  console.log('PREPARE-FAILED ' + err.message);
}
// kmod on its own must refuse too: the modprobe.d file lastword wrote stops the dependency.
const direct = await sys.exec('modprobe', ['vxlan']);
console.log('DIRECT ' + direct.exitCode);
// The kernel asks for fs-vfat and fs-minix itself (request_module), through /proc/sys/kernel/modprobe.
console.log('KERNEL-MODPROBE ' + fs.readFileSync('/proc/sys/kernel/modprobe', 'utf8').trim());
fs.mkdirSync('/mnt/probe', { recursive: true });
for (const t of ['vfat', 'minix']) {
  const m = await sys.exec('mount', ['-t', t, '/dev/vda1', '/mnt/probe']);
  console.log('MOUNT-' + t + ' ' + m.exitCode);
}
const conf = fs.readFileSync('/run/modprobe.d/lastword-capture-blacklist.conf', 'utf8');
console.log('SHIPPED-IN-CONF ' + conf.includes('install nouveau /bin/false'));
const mods = fs.readFileSync('/proc/modules', 'utf8').split('\\n').map((l) => l.split(' ')[0]).filter(Boolean);
console.log('MODULES ' + JSON.stringify(mods));
`;

const INIT = `#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs run /run
echo LW-GUEST-START $(cat /proc/uptime)
# As if virtio_pci were built in: bound before lastword runs (reset_devices must unbind it).
/sbin/modprobe virtio_pci
/usr/bin/node /lw/driver.mjs 2>&1
echo LW-GUEST-NODE-DONE $(cat /proc/uptime)
echo LW-GUEST-END
poweroff -f
`;

test('drivers are coldplugged, the PARTUUID= partition is found, and a module needing a blacklisted one is never loaded, by lastword nor kmod', { skip: kver ? false : 'no Debian 6.1 kernel installed' }, async () => {
  const t0 = Date.now();
  // A GPT disk whose first partition holds ext4: the target is found by PARTUUID= via sysfs and the table.
  const disk = makeDisk(path.join(tmp, 'dump.img'), 40);
  execFileSync('sfdisk', ['-q', disk], { input: 'label: gpt\nstart=2048, size=32MiB, type=L, name="lwdump"\n' });
  execFileSync('mkfs.ext4', ['-q', '-F', '-L', label, '-E', 'offset=1048576', disk, '32M'], { stdio: 'ignore' });
  const partuuid = execFileSync('sfdisk', ['--part-uuid', disk, '1'], { encoding: 'utf8' }).trim().toLowerCase();
  // Bundled to plain JS on the host: Node's type stripping would cost the TCG guest a WebAssembly compile.
  const entry = path.join(repo, 'test/modules', `.guest-driver-${process.pid}.ts`);
  fs.writeFileSync(entry, DRIVER);
  const driver = path.join(tmp, 'driver.mjs');
  try {
    execFileSync(path.join(repo, 'node_modules/.bin/esbuild'), [entry, '--bundle', '--platform=node', '--format=esm', '--log-level=warning', `--outfile=${driver}`]);
  } finally {
    fs.rmSync(entry, { force: true });
  }
  const initrdZst = buildInitramfs({
    binariesAt: { '/usr/bin/node': fs.realpathSync(path.join(repo, 'node_modules/.bin/node')), '/usr/bin/kmod': '/usr/bin/kmod' },
    symlinks: { '/sbin/modprobe': '/usr/bin/kmod' },
    files: {
      '/lw/driver.mjs': driver,
      '/usr/lib/lastword/blacklist/capture.conf': path.join(repo, 'blacklist/capture.conf'),
      ...moduleTree(['vxlan', 'dummy', 'ext4', 'virtio_pci', 'virtio_blk', 'vfat', 'minix']),
    },
    texts: {
      '/init': { data: INIT, mode: 0o755 },
      '/etc/kdump.conf': { data: `ext4 PARTUUID=${partuuid}\nextra_modules vxlan dummy udp_tunnel\n` },
    },
  }, path.join(tmp, 'initrd.zst'));
  // Handed to the kernel uncompressed: most of it is the Node binary, and decompressing it under
  // TCG costs more than QEMU copying the bigger file into guest memory.
  const initrd = path.join(tmp, 'initrd.cpio');
  execFileSync('zstd', ['-q', '-d', '-f', initrdZst, '-o', initrd]);
  const tBoot = Date.now();
  process.stdout.write(`# initramfs built in ${((tBoot - t0) / 1000).toFixed(1)} s, ${fs.statSync(initrdZst).size} bytes compressed\n`);
  // lastword.blacklist= rather than modprobe.blacklist=, which kmod would honour on its own.
  guest = new Guest({
    kernel: `/boot/vmlinuz-${kver}`, initrd, disks: [disk], memMiB: 1024, logFile: path.join(tmp, 'console.log'), machine: 'q35',
    append: 'console=ttyS0 panic=-1 quiet reset_devices lastword.blacklist=udp_tunnel,fat',
  });
  await guest.waitFor(/LW-GUEST-START/, 300_000);
  process.stdout.write(`# guest init after ${((Date.now() - tBoot) / 1000).toFixed(1)} s\n`);
  await guest.waitFor(/LW-GUEST-END/, 300_000);
  process.stdout.write(`# guest done after ${((Date.now() - tBoot) / 1000).toFixed(1)} s\n`);
  const text = guest.console;
  process.stdout.write(`# guest: ${/LW-GUEST-START.*/.exec(text)?.[0]} / ${/LW-GUEST-NODE-DONE.*/.exec(text)?.[0]}\n`);
  assert.doesNotMatch(text, /PREPARE-FAILED/, text);
  const prepared = JSON.parse(/PREPARED (.*)/.exec(text)![1]!);
  const loaded = JSON.parse(/MODULES (.*)/.exec(text)![1]!) as string[];
  assert.equal(prepared.device, '/dev/vda1', text);
  assert.deepEqual(prepared.modules.loaded, ['ext4', 'dummy'], text);
  assert.deepEqual(prepared.modules.refused.map((r: { module: string }) => r.module), ['vxlan', 'udp_tunnel']);
  assert.match(text, /EMODULE_BLACKLISTED: module vxlan needs udp_tunnel, which is blacklisted \(lastword\.blacklist= on the kernel command line; <cmdline>\)/);
  assert.ok(prepared.reset, 'reset_devices on the command line ran the reset step');
  assert.deepEqual(prepared.reset.failed, [], text);
  assert.deepEqual(prepared.reset.rebound, ['0000:01:00.0'], text);
  assert.match(text, /reset_devices: reset PCI function 0000:01:00\.0 \(class 010000, reset methods flr[^)]*\): unbound from virtio-pci, reset, bound to virtio-pci again/);
  assert.equal(/KERNEL-MODPROBE (\S+)/.exec(text)?.[1], '/run/lastword/modprobe-gate', text);
  assert.match(text, /lastword: refusing the kernel's request for module fs-vfat: module vfat needs fat, which is blacklisted/);
  assert.notEqual(/MOUNT-vfat (\d+)/.exec(text)![1], '0');
  assert.notEqual(/DIRECT (\d+)/.exec(text)![1], '0');
  assert.match(text, /SHIPPED-IN-CONF true/);
  for (const m of ['dummy', 'ext4', 'virtio_blk']) assert.ok(loaded.includes(m), `${m} not loaded: ${loaded.join(' ')}`);
  for (const m of ['udp_tunnel', 'vxlan', 'ip6_udp_tunnel', 'fat', 'vfat']) assert.ok(!loaded.includes(m), `${m} is loaded: ${loaded.join(' ')}`);
  // The gate hands an allowed request to kmod: the kernel's fs-minix request loaded minix.
  assert.ok(loaded.includes('minix'), `the kernel's request for minix did not get through the gate: ${loaded.join(' ')}`);
  process.stdout.write(`# reset_devices: ${JSON.stringify(prepared.reset)}\n`);
  await guest.waitExit(60_000);
});
