// writeAddon: an embedded addon is written atomically, and a file there with the same bytes is used
// as it is (PID 1 and its capture child, repeated runs). loadEmbedded passes over a directory that
// cannot be written, whose files cannot be mapped executable (a noexec mount: /run on a system
// booted by initramfs-tools) or that someone else owns inside a world-writable one.
// The executable gives back the pages of its start-up assets once they are copied (dropFilePages).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { loadEmbedded, loadNative, nativeAddonPath, writeAddon } from '../../runtime/system/native-loader.ts';
import { repo } from '../support/lab.ts';

test('writes the addon once, reuses identical bytes, replaces different ones by rename', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-extract-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const target = path.join(dir, 'run');
  const blob = Buffer.from('addon bytes v1');
  const file = writeAddon('demo', blob, target);
  assert.equal(file, path.join(target, 'demo.node'));
  assert.ok(fs.readFileSync(file).equals(blob));
  assert.equal(fs.statSync(file).mode & 0o777, 0o500);
  // Each replaced file stays open, as a loaded library stays mapped: its inode cannot be reused,
  // so a new inode number means a new file.
  const held: number[] = [fs.openSync(file, 'r')];
  t.after(() => held.forEach((fd) => fs.closeSync(fd)));
  let ino = fs.statSync(file).ino;
  // same bytes: the same file, not rewritten
  assert.equal(writeAddon('demo', Buffer.from(blob), target), file);
  assert.equal(fs.statSync(file).ino, ino);
  // other bytes of the same length, then another length: a new file each time (write + rename),
  // and the old one keeps its bytes for whoever has it open
  for (const next of [Buffer.from('addon bytes v2'), Buffer.from('addon bytes, version three')]) {
    assert.equal(writeAddon('demo', next, target), file);
    assert.ok(fs.readFileSync(file).equals(next));
    assert.notEqual(fs.statSync(file).ino, ino);
    ino = fs.statSync(file).ino;
    held.push(fs.openSync(file, 'r'));
  }
  const old = Buffer.alloc(blob.length);
  fs.readSync(held[0]!, old, 0, old.length, 0);
  assert.ok(old.equals(blob));
  assert.deepEqual(fs.readdirSync(target), ['demo.node'], 'no temporary files left');
});

/** Runs `script` in a private mount namespace (unshare -m), as root; its status and output. */
function inMountNamespace(script: string): { status: number | null; out: string } {
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-ec', script], { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('an addon is loaded from the next directory when the first is noexec, someone else\'s, or not writable', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-load-'));
  t.after(() => {
    spawnSync('umount', ['--lazy', path.join(dir, 'noexec')]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const blob = fs.readFileSync(nativeAddonPath('system'));
  const noexec = path.join(dir, 'noexec');
  fs.mkdirSync(noexec);
  // noexec is per mount: a tmpfs mounted here stays until the test's after() unmounts it
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'noexec,size=4m', 'lw-noexec', noexec], { encoding: 'utf8' });
  assert.equal(m.status, 0, m.stderr);
  const shared = path.join(dir, 'shared');
  fs.mkdirSync(shared, { mode: 0o1777 });
  fs.chmodSync(shared, 0o1777);
  const theirs = path.join(shared, 'lastword');
  fs.mkdirSync(theirs, { mode: 0o700 });
  fs.chownSync(theirs, 65534, 65534);
  const inTheirs = path.join(theirs, 'system.node');
  const notADir = path.join(dir, 'file');
  fs.writeFileSync(notADir, '');
  const good = path.join(dir, 'good');
  const r = loadEmbedded<{ dropFilePages: unknown }>('system', blob, [path.join(noexec, 'lastword'), theirs, path.join(notADir, 'x'), good]);
  assert.equal(r.file, path.join(good, 'system.node'));
  assert.equal(typeof r.exports.dropFilePages, 'function');
  assert.ok(!fs.existsSync(inTheirs), 'wrote into a directory another user owns');
  // the file was written on the noexec mount, which is why only the mapping failed there
  assert.ok(fs.existsSync(path.join(noexec, 'lastword', 'system.node')));
  // when every directory fails, the error names each one and why
  assert.throws(() => loadEmbedded('system', blob, [path.join(noexec, 'lastword'), theirs]), (e: Error) => {
    assert.match(e.message, /cannot load native addon system/);
    assert.match(e.message, new RegExp(`${noexec}/lastword/system.node: .*failed to map segment`));
    assert.match(e.message, new RegExp(`${theirs}: not this user's own directory \\(uid 65534`));
    return true;
  });
});

test('dropFilePages leaves memory that is not a read-only file mapping alone', () => {
  const { dropFilePages } = loadNative<{ dropFilePages(ab: ArrayBuffer): number }>('system');
  // Anonymous, writable memory (a Buffer's): nothing given back, every byte kept.
  const page = 4096;
  const mem = new ArrayBuffer(8 * page);
  const bytes = new Uint8Array(mem);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
  assert.equal(dropFilePages(mem), 0);
  assert.ok(bytes.every((b, i) => b === ((i * 7) & 0xff)), 'anonymous memory changed');
  // Less than a whole page: nothing to give back either.
  assert.equal(dropFilePages(new ArrayBuffer(100)), 0);
  assert.throws(() => dropFilePages('not a buffer' as unknown as ArrayBuffer), TypeError);
});

const exe = path.join(repo, 'dist', 'lastword');
const bundle = path.join(repo, 'build', 'sea', 'lastword.js');
test('the executable gives back its bundle\'s, code cache\'s and addons\' pages once they are copied, and runs on', { skip: fs.existsSync(exe) && fs.existsSync(bundle) ? undefined : 'no dist/lastword (npm run build)' }, () => {
  // --verbose loads the ssh2 cipher addon: the system addon gives back the pages of the bundle and
  // the cache (copied at start-up), its own image's and sshcrypto's (written out to a file).
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'LASTWORD_NATIVE_DIR'));
  const r = spawnSync(exe, ['--version', '--verbose'], { encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /ssh2 ciphers: native/);
  const given = Number(/start-up pages given back: (\d+) bytes/.exec(r.stdout)?.[1]);
  // at least the bundle's whole pages (the asset need not start on a page boundary)
  const least = fs.statSync(bundle).size - 2 * 4096;
  assert.ok(given >= least, `${given} bytes given back, the bundle alone is ${fs.statSync(bundle).size}`);
});

test('the executable runs where /run is mounted noexec, as initramfs-tools mounts it', { skip: fs.existsSync(exe) ? undefined : 'no dist/lastword (npm run build)' }, () => {
  // the addons go to the next directory: /dev/shm/lastword on this machine
  const r = inMountNamespace(`mount -t tmpfs -o nodev,noexec,nosuid,mode=0755 tmpfs /run; ${exe} --version --verbose`);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /ssh2 ciphers: native/);
});
