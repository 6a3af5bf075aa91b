// A codec whose library the system lacks (Debian 12 with kdump-tools and makedumpfile installed has
// no libsnappy): the dump is still written, with zlib, and says so; nothing else is affected. The
// library is hidden from the real executable by a bind mount of /dev/null over it, in a private
// mount namespace, so dlopen finds the file and cannot load it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { kernelVersion, labVmcore, repo } from '../support/lab.ts';
import { crashOpens } from '../targets/dumps.ts';

const exe = path.join(repo, 'dist', 'lastword');
const snappy = ['/lib/x86_64-linux-gnu/libsnappy.so.1', '/usr/lib/x86_64-linux-gnu/libsnappy.so.1'].find((f) => fs.existsSync(f));
const skip = !kernelVersion('6.1') ? 'no Debian 6.1 kernel (bash .ci/setup)'
  : !fs.existsSync(exe) ? 'dist/lastword is not built (npm run build)'
  : !snappy ? 'no libsnappy.so.1 on this machine to hide' : false;
let tmp = '';
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-missing-lib-')); });
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

/** `argv` with libsnappy.so.1 replaced by /dev/null for it alone. */
function withoutSnappy(argv: string[]) {
  const real = fs.realpathSync(snappy!);
  return spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-ec', `mount --bind /dev/null '${real}'; exec "$@"`, 'sh', ...argv],
    { encoding: 'utf8', maxBuffer: 64 << 20 });
}

function info(dump: string): string {
  const r = spawnSync(exe, ['info', dump], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('lastword filter -p without libsnappy writes a zlib dump that crash opens, and warns once', { skip }, () => {
  const out = path.join(tmp, 'dump-p');
  const r = withoutSnappy([exe, 'filter', '-p', '-d', '31', labVmcore(), out]);
  assert.equal(r.status, 0, r.stderr);
  const warnings = r.stderr.split('\n').filter((l) => /warning/.test(l));
  assert.equal(warnings.length, 1, r.stderr);
  assert.match(warnings[0]!, /^lastword filter: warning: snappy cannot be used \(.*libsnappy\.so\.1.*\); the dump is compressed with zlib instead$/);
  assert.match(info(out), /compression: +zlib\b/);
  // the same pages as a -c dump of the same vmcore
  const c = path.join(tmp, 'dump-c');
  assert.equal(spawnSync(exe, ['filter', '-c', '-d', '31', labVmcore(), c]).status, 0);
  // (the same codec, the same pages: everything lastword info says but the file name)
  const body = (s: string) => s.split('\n').filter((l) => !/^file:/.test(l)).join('\n');
  assert.match(info(out), /dumpable +\d+/);
  assert.equal(body(info(out)), body(info(c)));
  const opened = crashOpens(out);
  assert.ok(opened.ok, opened.output.slice(-2000));
  // lzo and zstd do not need libsnappy: unaffected, no warning
  for (const flag of ['-l', '-z']) {
    const o = path.join(tmp, `dump${flag}`);
    const s = withoutSnappy([exe, 'filter', flag, '-d', '31', labVmcore(), o]);
    assert.equal(s.status, 0, s.stderr);
    assert.doesNotMatch(s.stderr, /warning/);
    assert.match(info(o), new RegExp(`compression: +${flag === '-l' ? 'lzo' : 'zstd'}\\b`));
  }
});

test('lastword --version --verbose names the codecs this system can write and why one cannot', { skip }, () => {
  const all = spawnSync(exe, ['--version', '--verbose'], { encoding: 'utf8' });
  assert.equal(all.status, 0, all.stderr);
  assert.match(all.stdout, /^codecs: zlib, lzo, snappy, zstd$/m);
  const r = withoutSnappy([exe, '--version', '--verbose']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^codecs: zlib, lzo, snappy not available \(.*libsnappy\.so\.1.*\), zstd$/m);
});

test('lastword savecore with MAKEDUMP_ARGS="-p -d 31" and no libsnappy saves a zlib dump and logs why', { skip }, () => {
  const root = path.join(tmp, 'root');
  fs.mkdirSync(path.join(root, 'etc', 'default'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc', 'default', 'kdump-tools'), 'USE_KDUMP=1\nKDUMP_COREDIR="/var/crash"\nMAKEDUMP_ARGS="-p -d 31"\n');
  const r = withoutSnappy([exe, 'savecore', '--root', root, labVmcore()]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const coredir = path.join(root, 'var', 'crash');
  const stamp = fs.readdirSync(coredir).find((e) => /^\d{12}$/.test(e))!;
  const dump = path.join(coredir, stamp, `dump.${stamp}`);
  assert.match(info(dump), /compression: +zlib\b/);
  const said = r.stdout + r.stderr;
  assert.match(said, /snappy cannot be used \(.*libsnappy\.so\.1.*\); the dump is compressed with zlib instead/);
  // the summary names the codec the pages have, not the configured one
  assert.match(said, /codec zlib/);
});
