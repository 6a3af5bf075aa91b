// hooks/kdump-tools/makedumpfile, the makedumpfile kdump-config runs, with lastword as its
// fallback: the real makedumpfile when it works, `lastword filter` with the same arguments when it
// fails or is missing, or instead of a makedumpfile known to misread the kernel.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { signature } from '../support/kdump-header.ts';
import { kernelVersion, labVmcore, repo, UNSTABLE_SERIES } from '../support/lab.ts';
import { newMakedumpfile } from '../filter/reference.ts';
import { lastwordCommand, standInExecutable } from './support.ts';

const shim = path.join(repo, 'hooks', 'kdump-tools', 'makedumpfile');
const skip = !kernelVersion('6.1') ? 'no Debian 6.1 kernel (bash .ci/setup)' : false;
let tmp = '';
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-kdump-tools-test-')); });
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

test('when makedumpfile fails, the same command line runs with lastword filter and the dump is written', { skip }, () => {
  const vmcore = labVmcore();
  // a makedumpfile that fails after leaving part of its output, as a crash half-way would
  const failing = path.join(tmp, 'makedumpfile.distrib');
  fs.writeFileSync(failing, '#!/bin/sh\neval "last=\\${$#}"\necho partial > "$last"\nexit 1\n', { mode: 0o755 });
  const out = path.join(tmp, 'dump-incomplete');
  const r = spawnSync(shim, ['-c', '-d', '31', vmcore, out], {
    encoding: 'utf8', env: { ...process.env, LASTWORD_MAKEDUMPFILE: failing, LASTWORD: lastwordCommand(tmp) },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /makedumpfile\.distrib exited 1; lastword filter takes over/);
  assert.equal(signature(out), 'KDUMP   ');
});

test('when makedumpfile works, its own output stands, byte for byte, file or flattened stream', { skip }, () => {
  const real = spawnSync('sh', ['-c', 'command -v makedumpfile'], { encoding: 'utf8' }).stdout.trim();
  assert.ok(real, 'makedumpfile is not installed (bash .ci/setup)');
  const vmcore = labVmcore();
  const env = { ...process.env, LASTWORD_MAKEDUMPFILE: real, LASTWORD: lastwordCommand(tmp) };
  const viaShim = path.join(tmp, 'via-shim'), direct = path.join(tmp, 'direct');
  const r = spawnSync(shim, ['-c', '-d', '31', vmcore, viaShim], { encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /takes over/);
  assert.equal(spawnSync(real, ['-c', '-d', '31', vmcore, direct]).status, 0);
  assert.ok(fs.readFileSync(viaShim).equals(fs.readFileSync(direct)), 'the file differs from makedumpfile\'s own');
  // kdump-config's way: -F to stdout; the relayed stream is makedumpfile's stream unchanged
  const relayed = spawnSync(shim, ['-F', '-l', '-d', '31', vmcore], { env, maxBuffer: 1 << 30 });
  assert.equal(relayed.status, 0, relayed.stderr.toString());
  const own = spawnSync(real, ['-F', '-l', '-d', '31', vmcore], { maxBuffer: 1 << 30 });
  assert.ok(relayed.stdout.length > 4096 && relayed.stdout.equals(own.stdout), 'the relayed flattened stream differs from makedumpfile\'s');
});

/** A makedumpfile that dies half-way through its flattened stream (cut inside a record), as one that crashes would. */
function cutMakedumpfile(real: string, bytes: number): string {
  const file = path.join(tmp, `makedumpfile-cut-${bytes}`);
  fs.writeFileSync(file, `#!/bin/sh\ncase "$*" in *--dump-dmesg*) exec '${real}' "$@";; esac\n'${real}' "$@" | head -c ${bytes}\nexit 1\n`, { mode: 0o755 });
  return file;
}

test('when makedumpfile dies half-way through a flattened stream, lastword continues it and the dump is whole', { skip }, () => {
  const real = spawnSync('sh', ['-c', 'command -v makedumpfile'], { encoding: 'utf8' }).stdout.trim();
  assert.ok(real, 'makedumpfile is not installed (bash .ci/setup)');
  const vmcore = labVmcore();
  const lw = lastwordCommand(tmp);
  const r = spawnSync(shim, ['-F', '-c', '-d', '31', vmcore], {
    env: { ...process.env, LASTWORD_MAKEDUMPFILE: cutMakedumpfile(real, 300_000), LASTWORD: lw }, maxBuffer: 1 << 30,
  });
  assert.equal(r.status, 0, r.stderr.toString());
  assert.match(r.stderr.toString(), /exited 1 after \d+ whole records, \d+ bytes of a cut record dropped; lastword filter takes over/);
  // the stream reassembles with the real makedumpfile -R into exactly lastword's own dump
  const reassembled = path.join(tmp, 'reassembled'), own = path.join(tmp, 'own');
  const re = spawnSync(real, ['-R', reassembled], { input: r.stdout });
  assert.equal(re.status, 0, re.stderr?.toString());
  const o = spawnSync(lw, ['filter', '-c', '-d', '31', vmcore, own], { encoding: 'utf8' });
  assert.equal(o.status, 0, o.stderr);
  assert.ok(fs.readFileSync(reassembled).equals(fs.readFileSync(own)), 'the continued stream does not reassemble into lastword\'s dump');
});

const unstableSkip = !kernelVersion(UNSTABLE_SERIES) ? `no Debian unstable ${UNSTABLE_SERIES}.x kernel (bash .ci/setup)` : false;

test('a 7.1+ vmcore at a level with bit 8: makedumpfile <= 1.7.9 is not run (it would drop tail pages and exit 0), 1.8.0 is', { skip: unstableSkip }, () => {
  const real = newMakedumpfile();   // 1.7.8, what Debian unstable ships
  const vmcore = labVmcore({ series: UNSTABLE_SERIES });
  const lw = lastwordCommand(tmp);
  // kdump-config's way: -F on stdout. The stream is lastword's own, byte for byte.
  const r = spawnSync(shim, ['-F', '-l', '-d', '31', vmcore], { env: { ...process.env, LASTWORD_MAKEDUMPFILE: real, LASTWORD: lw }, maxBuffer: 1 << 30 });
  assert.equal(r.status, 0, r.stderr.toString());
  assert.match(r.stderr.toString(), /makedumpfile 1\.7\.8 does not know Linux 7\.1's OFFSET\(page\.compound_info\) and would drop tail pages \(slab, task structs\) at dump level 31; lastword filter runs instead/);
  const own = spawnSync(lw, ['filter', '-F', '-l', '-d', '31', '--message-level', '0', vmcore], { maxBuffer: 1 << 30 });
  assert.equal(own.status, 0, own.stderr.toString());
  assert.ok(r.stdout.length > 4096 && r.stdout.equals(own.stdout), 'the stream is not lastword\'s own');
  // At -d 1 nothing is at stake: makedumpfile runs and its file stands.
  const d1 = path.join(tmp, 'd1-shim'), d1Real = path.join(tmp, 'd1-real');
  const r1 = spawnSync(shim, ['-l', '-d', '1', vmcore, d1], { encoding: 'utf8', env: { ...process.env, LASTWORD_MAKEDUMPFILE: real, LASTWORD: lw } });
  assert.equal(r1.status, 0, r1.stderr);
  assert.doesNotMatch(r1.stderr, /instead|takes over/);
  assert.equal(spawnSync(real, ['-l', '-d', '1', vmcore, d1Real]).status, 0);
  assert.ok(fs.readFileSync(d1).equals(fs.readFileSync(d1Real)), 'makedumpfile -d 1 was not the one that wrote the file');
  // A makedumpfile that says 1.8.0 (the line with upstream's fix) is trusted with -d 31.
  const fixed = path.join(tmp, 'makedumpfile-1.8.0');
  fs.writeFileSync(fixed, `#!/bin/sh\n[ "$1" = -v ] && { echo 'makedumpfile: version 1.8.0 (released on 1 Jan 2027)'; exit 0; }\necho ran-1.8.0 >&2\nexec '${real}' "$@"\n`, { mode: 0o755 });
  const r2 = spawnSync(shim, ['-l', '-d', '31', vmcore, path.join(tmp, 'd31-fixed')], { encoding: 'utf8', env: { ...process.env, LASTWORD_MAKEDUMPFILE: fixed, LASTWORD: lw } });
  assert.equal(r2.status, 0, r2.stderr);
  assert.match(r2.stderr, /ran-1\.8\.0/);
  assert.doesNotMatch(r2.stderr, /instead/);
});

test('savecore-fallback, as KDUMP_FAIL_CMD: lastword savecore writes Debian\'s layout, then reboot -f', { skip }, () => {
  const root = path.join(tmp, 'fallback-root');
  fs.mkdirSync(path.join(root, 'etc', 'default'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc', 'default', 'kdump-tools'), 'USE_KDUMP=1\nKDUMP_COREDIR="/var/crash"\nMAKEDUMP_ARGS="-l -d 31"\n');
  // the installed `lastword` would read / and /proc/vmcore; here the fake root and a lab vmcore
  const lw = lastwordCommand(tmp);
  const wrapper = path.join(tmp, 'lastword-fallback-root');
  fs.writeFileSync(wrapper, `#!/bin/sh\n[ "$1" = savecore ] || exit 99\nexec '${lw}' savecore --root '${root}' '${labVmcore()}'\n`, { mode: 0o755 });
  // reboot(8) must not reach this machine: a stand-in first in PATH records its arguments
  const bin = path.join(tmp, 'fallback-bin');
  fs.mkdirSync(bin, { recursive: true });
  fs.writeFileSync(path.join(bin, 'reboot'), `#!/bin/sh\necho "$@" > '${path.join(tmp, 'reboot-args')}'\n`, { mode: 0o755 });
  const r = spawnSync(path.join(repo, 'hooks', 'kdump-tools', 'savecore-fallback'), [], {
    encoding: 'utf8', env: { ...process.env, LASTWORD: wrapper, PATH: `${bin}:${process.env.PATH}` },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(fs.readFileSync(path.join(tmp, 'reboot-args'), 'utf8').trim(), '-f');
  const coredir = path.join(root, 'var', 'crash');
  const stamps = fs.readdirSync(coredir).filter((e) => /^\d{12}$/.test(e));
  assert.equal(stamps.length, 1, fs.readdirSync(coredir).join(', '));
  const files = fs.readdirSync(path.join(coredir, stamps[0]!));
  assert.ok(files.includes(`dump.${stamps[0]}`) && files.includes(`dmesg.${stamps[0]}`), files.join(', '));
  assert.equal(signature(path.join(coredir, stamps[0]!, `dump.${stamps[0]}`)), 'KDUMP   ');
});

test('postinst.d-lastword builds /var/lib/lastword/initrd.img-<kver>, points initrd.img at it and prints what crashkernel= it needs', { skip }, () => {
  const kver = kernelVersion('6.1')!;
  const bin = fs.mkdtempSync(path.join(tmp, 'bin-'));
  lastwordCommand(bin);
  const conf = path.join(tmp, 'postinst-kdump.conf');
  fs.writeFileSync(conf, 'ext4 LABEL=crash\npath /var/crash\ncore_collector makedumpfile -l -d 31\n');
  const hook = path.join(repo, 'hooks', 'kdump-tools', 'postinst.d-lastword');
  // /var/lib is a tmpfs for this mount namespace alone: the host's stays as it is
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-ec',
    `mount -t tmpfs lw-varlib /var/lib; "$0" "$1"; ls -l /var/lib/lastword; cat /var/lib/lastword/initrd.img | zstd -dc | cpio -it --quiet`, hook, kver], {
    encoding: 'utf8', maxBuffer: 64 << 20,
    env: {
      ...process.env, PATH: `${bin}:${process.env.PATH}`,
      LASTWORD_INITRAMFS_ARGS: `--executable ${standInExecutable(tmp)} --config ${conf}`,
    },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`initrd\\.img -> initrd\\.img-${kver.replace(/\./g, '\\.')}\\n`));
  const entries = r.stdout.split('\n');
  assert.ok(entries.includes('init') && entries.includes('usr/lib/lastword/lastword.squashfs'), r.stdout);
  assert.ok(entries.includes('etc/kdump.conf'), r.stdout);
  // the estimate for this kernel and that image, on stderr
  assert.match(r.stderr, /Recommended crashkernel: \d+ MiB \(crashkernel=\d+M\)/);
  assert.match(r.stderr, new RegExp(`init_size of /boot/vmlinuz-${kver.replace(/\./g, '\\.')}`));
  assert.match(r.stderr, /\/var\/lib\/lastword\/initrd\.img-/);
});
