// `lastword estimate` on a fake root: the recommendation is the peak of its parts, each read from
// the real files (bzImage init_size, the image's compressed and unpacked sizes, checked here with
// cpio), and a reservation below it is flagged.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { FILTER_BUFFERS, KERNEL_RUNTIME, LASTWORD_RUNTIME, recommend } from '../../runtime/cli/estimate.ts';
import { kernelVersion, repo } from '../support/lab.ts';

const kver = kernelVersion('6.1');
const skip = kver ? false : 'no Debian 6.1 kernel (bash .ci/setup)';
let tmp = '';
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-estimate-test-')); });
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

const lastword = (args: string[]) => spawnSync(process.execPath, [path.join(repo, 'runtime', 'main.ts'), ...args], { encoding: 'utf8' });
const MiB = 1048576;

test('estimate adds kernel init_size, the unpacked image, the runtime or the compressed image, and flags a reservation that is too small', { skip }, () => {
  const root = path.join(tmp, 'root');
  for (const [p, d] of Object.entries({
    '/etc/kdump.conf': 'ext4 LABEL=crash\n',
    '/proc/meminfo': 'MemTotal:        4030000 kB\n',
    '/sys/kernel/kexec_crash_size': String(128 * MiB) + '\n',
  })) {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), d);
  }
  const initrd = path.join(tmp, 'initrd.img');
  const b = lastword(['initramfs', '--kernel', kver!, '--root', root, '--executable', '/usr/bin/kmod', '--compress', 'gzip', '-o', initrd]);
  assert.equal(b.status, 0, b.stderr);
  const kernel = `/boot/vmlinuz-${kver}`;
  const r = lastword(['estimate', '--root', root, '--kernel', kernel, '--initrd', initrd]);
  assert.equal(r.status, 0, r.stderr);

  // the parts, from the files themselves
  const head = fs.readFileSync(kernel).subarray(0, 0x264);
  assert.equal(head.toString('latin1', 0x202, 0x206), 'HdrS');
  const initSize = head.readUInt32LE(0x260);
  const unpackDir = path.join(tmp, 'unpacked');
  fs.mkdirSync(unpackDir);
  assert.equal(spawnSync('sh', ['-c', `gzip -dc '${initrd}' | cpio -id --quiet`], { cwd: unpackDir }).status, 0);
  // file sizes and symlink target lengths: what rootfs holds
  const sizes = spawnSync('find', ['.', '(', '-type', 'f', '-o', '-type', 'l', ')', '-printf', '%s\\n'], { cwd: unpackDir, encoding: 'utf8' }).stdout;
  const unpacked = sizes.split('\n').filter(Boolean).reduce((a, s) => a + Number(s), 0);
  const sum = initSize + unpacked + KERNEL_RUNTIME + Math.max(fs.statSync(initrd).size, LASTWORD_RUNTIME + FILTER_BUFFERS);
  const expected = Math.ceil(sum / (16 * MiB)) * 16;
  assert.match(r.stdout, new RegExp(`^Recommended crashkernel: ${expected} MiB \\(crashkernel=${expected}M\\)`, 'm'));
  assert.match(r.stdout, /^Reserved crashkernel:    128 MiB$/m);
  assert.match(r.stdout, new RegExp(`WARNING: the reservation is ${expected - 128} MiB short`));
});

test('the compressed image and lastword are not counted together: the kernel frees the image before /init runs', () => {
  const parts = { kernel: 40 * MiB, initramfsUnpacked: 50 * MiB, kernelRuntime: 32 * MiB, lastword: 80 * MiB };
  // lastword larger than the image: kernel + unpacked + runtime + lastword = 202 MiB -> 208 MiB
  assert.equal(recommend({ ...parts, initramfsCompressed: 45 * MiB }) / MiB, 208);
  // an image larger than lastword's needs (the plain layout's ~110 MB) counts instead: 40 + 50 + 32 + 120 = 242 -> 256
  assert.equal(recommend({ ...parts, initramfsCompressed: 120 * MiB }) / MiB, 256);
  // never under kdumpctl's 160 MiB floor
  assert.equal(recommend({ kernel: MiB, initramfsUnpacked: MiB, kernelRuntime: MiB, lastword: MiB, initramfsCompressed: MiB }) / MiB, 160);
});
