// Debian 12's real `kdump-config savecore` (kdump-tools, unpacked by .ci/setup) with
// hooks/kdump-tools/makedumpfile as its makedumpfile. It runs in a private mount namespace where
// /proc is a tmpfs holding a lab vmcore as /proc/vmcore, /etc/default/kdump-tools is the test's
// file and /usr/bin/makedumpfile is the hook, so kdump-config runs unchanged, as in the capture
// kernel: `makedumpfile -F ... /proc/vmcore | cat > dump-incomplete`, then `mv` to dump.<stamp>.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { cacheDir, kernelVersion, labVmcore, repo } from '../support/lab.ts';
import { newMakedumpfile } from '../filter/reference.ts';
import { lastwordCommand } from './support.ts';

const kdumpConfig = path.join(cacheDir, 'kdump-tools', 'usr', 'sbin', 'kdump-config');
const shim = path.join(repo, 'hooks', 'kdump-tools', 'makedumpfile');
const skip = !kernelVersion('6.1') ? 'no Debian 6.1 kernel (bash .ci/setup)'
  : !fs.existsSync(kdumpConfig) ? 'kdump-tools is not unpacked in .cache (bash .ci/setup)'
  : process.getuid?.() !== 0 ? 'needs root (unshare -m)' : false;

let tmp = '';
let real = '';
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-kdump-config-test-'));
  // the real makedumpfile, copied out before the namespace puts the hook on its path
  real = path.join(tmp, 'makedumpfile.distrib');
  fs.copyFileSync('/usr/bin/makedumpfile', real);
  fs.chmodSync(real, 0o755);
});
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

/** Runs `kdump-config savecore` in its own mount namespace; returns its output and the core dir. */
function savecore(name: string, makedumpfile: string): { status: number | null; output: string; coredir: string } {
  const coredir = path.join(tmp, name, 'crash');
  fs.mkdirSync(coredir, { recursive: true });
  const conf = path.join(tmp, name, 'kdump-tools');
  fs.writeFileSync(conf, `USE_KDUMP=1\nKDUMP_COREDIR="${coredir}"\nKDUMP_DUMP_DMESG=1\nMAKEDUMP_ARGS="-c -d 31"\n`);
  const script = [
    'set -e',
    // what makedumpfile and kdump-config read besides vmcore, copied before the tmpfs hides /proc
    `mkdir -p '${tmp}/${name}/proc' && cp /proc/meminfo /proc/iomem /proc/cmdline '${tmp}/${name}/proc/'`,
    'mount -t tmpfs lw-proc /proc',
    `cp '${tmp}/${name}/proc/'* /proc/`,
    ': > /proc/vmcore', `mount --bind '${labVmcore()}' /proc/vmcore`,
    'mount -t tmpfs lw-etc-default /etc/default', `cp '${conf}' /etc/default/kdump-tools`,
    `mount --bind '${shim}' /usr/bin/makedumpfile`,
    `exec '${kdumpConfig}' savecore`,
  ].join('\n');
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], {
    encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, LASTWORD: lastwordCommand(path.join(tmp, name)), LASTWORD_MAKEDUMPFILE: makedumpfile },
  });
  return { status: r.status, output: r.stdout + r.stderr, coredir };
}

/** Debian's layout: exactly <coredir>/<YYYYMMDDHHMM>/{dmesg,dump}.<stamp>; returns the two files. */
function debianLayout(coredir: string, output: string): { dump: string; dmesg: string } {
  const dirs = fs.readdirSync(coredir).filter((d) => d !== 'kdump_lock');
  assert.equal(dirs.length, 1, `one stamp directory expected in ${coredir}: ${dirs.join(', ')}\n${output}`);
  const stamp = dirs[0]!;
  assert.match(stamp, /^\d{12}$/);
  assert.deepEqual(fs.readdirSync(path.join(coredir, stamp)).sort(), [`dmesg.${stamp}`, `dump.${stamp}`], output);
  return { dump: path.join(coredir, stamp, `dump.${stamp}`), dmesg: path.join(coredir, stamp, `dmesg.${stamp}`) };
}

/** The flattened dump.<stamp> reassembled by the real makedumpfile -R must be lastword's own dump of the vmcore. */
function assertIsLastwordsDump(flattened: string, name: string): void {
  const reassembled = path.join(tmp, name, 'reassembled'), own = path.join(tmp, name, 'own');
  const re = spawnSync(real, ['-R', reassembled], { input: fs.readFileSync(flattened) });
  assert.equal(re.status, 0, re.stderr?.toString());
  const o = spawnSync(lastwordCommand(path.join(tmp, name)), ['filter', '-c', '-d', '31', labVmcore(), own], { encoding: 'utf8' });
  assert.equal(o.status, 0, o.stderr);
  assert.ok(fs.readFileSync(reassembled).equals(fs.readFileSync(own)), 'dump.<stamp> is not lastword\'s dump of the vmcore');
}

/** makedumpfile --dump-dmesg: lastword prints what current makedumpfile (>= 1.7.5, caller column) does. */
function referenceDmesg(makedumpfile: string): string {
  const out = path.join(tmp, `reference-dmesg-${process.hrtime.bigint()}`);
  assert.equal(spawnSync(makedumpfile, ['--dump-dmesg', labVmcore(), out]).status, 0);
  return fs.readFileSync(out, 'utf8');
}

test('kdump-config savecore: makedumpfile dies half-way, lastword continues its stream, Debian\'s layout holds', { skip, timeout: 300_000 }, () => {
  const cut = path.join(tmp, 'makedumpfile-cut');
  fs.writeFileSync(cut, `#!/bin/sh\ncase "$*" in *--dump-dmesg*) exec '${real}' "$@";; esac\n'${real}' "$@" | head -c 250000\nexit 1\n`, { mode: 0o755 });
  const r = savecore('cut', cut);
  assert.equal(r.status, 0, r.output);
  assert.match(r.output, /lastword filter takes over/);
  assert.match(r.output, /saved vmcore in/);
  const { dump, dmesg } = debianLayout(r.coredir, r.output);
  assertIsLastwordsDump(dump, 'cut');
  assert.equal(fs.readFileSync(dmesg, 'utf8'), referenceDmesg(real));
});

test('kdump-config savecore: makedumpfile missing, lastword writes the dump and the dmesg in Debian\'s layout', { skip, timeout: 300_000 }, () => {
  const r = savecore('missing', path.join(tmp, 'no-such-makedumpfile'));
  assert.equal(r.status, 0, r.output);
  assert.match(r.output, /no-such-makedumpfile cannot run \(ENOENT\); lastword filter takes over/);
  assert.match(r.output, /saved dmesg content in/);
  const { dump, dmesg } = debianLayout(r.coredir, r.output);
  assertIsLastwordsDump(dump, 'missing');
  assert.equal(fs.readFileSync(dmesg, 'utf8'), referenceDmesg(newMakedumpfile()), 'dmesg.<stamp> differs from makedumpfile 1.7.8\'s --dump-dmesg');
});
