import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { test } from 'node:test';
import { aliasMatches, loadOrder, lookupModule, parseModuleIndex, selectModules, subsetModulesDep } from '../../initramfs/modules.ts';
import { kernelVersion } from '../support/lab.ts';

// A small index in the kernel's own file syntax.
const index = parseModuleIndex({
  dep: [
    'kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko',
    'kernel/lib/libcrc32c.ko:',
    'kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko',
    'kernel/fs/jbd2/jbd2.ko:',
    'kernel/lib/crc16.ko:',
    'kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko',
    'kernel/drivers/virtio/virtio.ko:',
    'kernel/arch/x86/crypto/crc32c-intel.ko:',
  ].join('\n'),
  alias: [
    'alias fs-xfs xfs',
    'alias fs-ext4 ext4',
    'alias crypto-crc32c crc32c_intel',
    'alias virtio:d00000002v* virtio_blk',
  ].join('\n'),
  builtin: 'kernel/drivers/block/loop.ko\n',
  softdep: 'softdep ext4 pre: crypto-crc32c\n',
});

test('a module request is closed over modules.dep and modules.softdep', () => {
  const sel = selectModules(index, [{ name: 'fs-ext4', reason: 'target ext4', required: false }], new Map());
  assert.deepEqual(sel.modules, ['crc16', 'crc32c_intel', 'ext4', 'jbd2']);
  assert.deepEqual(sel.paths, ['kernel/arch/x86/crypto/crc32c-intel.ko', 'kernel/fs/ext4/ext4.ko', 'kernel/fs/jbd2/jbd2.ko', 'kernel/lib/crc16.ko']);
});

test('a module that needs a blacklisted module is left out with it, and says why', () => {
  const sel = selectModules(index, [{ name: 'xfs', reason: 'target xfs', required: false }, { name: 'ext4', reason: 'root', required: false }],
    new Map([['libcrc32c', 'kdump.conf blacklist at kdump.conf:3']]));
  assert.ok(!sel.modules.includes('xfs') && !sel.modules.includes('libcrc32c'));
  assert.ok(sel.modules.includes('ext4'));
  assert.match(sel.excluded.find((x) => x.module === 'xfs')!.reason, /needs libcrc32c/);
  assert.match(sel.excluded.find((x) => x.module === 'libcrc32c')!.reason, /kdump.conf:3/);
});

test('a blacklisted soft dependency is dropped but the module stays', () => {
  const sel = selectModules(index, [{ name: 'ext4', reason: 'target', required: false }], new Map([['crc32c_intel', 'cmdline']]));
  assert.deepEqual(sel.modules, ['crc16', 'ext4', 'jbd2']);
});

test('device modaliases resolve through modules.alias globs; builtin modules ship nothing', () => {
  assert.ok(aliasMatches('virtio:d00000002v*', 'virtio:d00000002v00001AF4'));
  assert.ok(!aliasMatches('virtio:d00000002v*', 'virtio:d00000001v00001AF4'));
  assert.ok(aliasMatches('pci:v00008086d0000100Esv*sd*bc*sc*i*', 'pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00'));
  assert.ok(aliasMatches('a[0-9]b', 'a7b') && !aliasMatches('a[!0-9]b', 'a7b'));
  assert.deepEqual(lookupModule(index, 'virtio:d00000002v00001AF4'), ['virtio_blk']);
  const sel = selectModules(index, [{ name: 'loop', reason: 'layout', required: true }], new Map());
  assert.deepEqual(sel.modules, []);
  assert.deepEqual(sel.builtin, ['loop']);
  assert.deepEqual(sel.unresolved, []);
});

test('an extra_modules name that is no module is reported, a guessed driver that is missing is not', () => {
  const sel = selectModules(index, [{ name: 'no_such_mod', reason: 'extra_modules', required: true }, { name: 'e1000', reason: 'common', required: false }], new Map());
  assert.deepEqual(sel.unresolved.map((u) => u.name), ['no_such_mod']);
});

test('load order for insmod: soft dependencies and dependencies first, each once; built-in and unshipped modules left out', () => {
  const all = new Set(['xfs', 'libcrc32c', 'ext4', 'jbd2', 'crc16', 'crc32c_intel']);
  // ext4's deps are listed "crc16 jbd2": modules.dep's last one is loaded first.
  assert.deepEqual(loadOrder(index, ['loop', 'fs-ext4', 'xfs'], all),
    ['kernel/arch/x86/crypto/crc32c-intel.ko', 'kernel/fs/jbd2/jbd2.ko', 'kernel/lib/crc16.ko', 'kernel/fs/ext4/ext4.ko', 'kernel/lib/libcrc32c.ko', 'kernel/fs/xfs/xfs.ko']);
  // A soft dependency the image left out (a blacklist) is not loaded; the module still is.
  assert.deepEqual(loadOrder(index, ['ext4'], new Set(['ext4', 'jbd2', 'crc16'])), ['kernel/fs/jbd2/jbd2.ko', 'kernel/lib/crc16.ko', 'kernel/fs/ext4/ext4.ko']);
  assert.deepEqual(loadOrder(index, ['loop'], all), []);
});

test('the modules.dep subset keeps the kernel lines of shipped modules only', () => {
  const dep = 'kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko\nkernel/lib/libcrc32c.ko:\nkernel/lib/crc16.ko:\n';
  assert.equal(subsetModulesDep(dep, new Set(['xfs', 'libcrc32c'])), 'kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko\nkernel/lib/libcrc32c.ko:\n');
});

test("Debian 6.1's own index: ext4 pulls jbd2, mbcache and crc16; nfsv4 pulls nfs and sunrpc", (t) => {
  const kver = kernelVersion('6.1');
  if (!kver) return t.skip('no Debian 6.1 kernel (bash .ci/setup)');
  const dir = `/lib/modules/${kver}`;
  const real = parseModuleIndex({
    dep: fs.readFileSync(`${dir}/modules.dep`, 'utf8'), alias: fs.readFileSync(`${dir}/modules.alias`, 'utf8'),
    builtin: fs.readFileSync(`${dir}/modules.builtin`, 'utf8'), softdep: fs.readFileSync(`${dir}/modules.softdep`, 'utf8'),
  });
  const sel = selectModules(real, [{ name: 'fs-ext4', reason: 't', required: true }, { name: 'nfsv4', reason: 't', required: true }], new Map());
  for (const m of ['ext4', 'jbd2', 'mbcache', 'crc16', 'nfs', 'nfsv4', 'sunrpc']) assert.ok(sel.modules.includes(m), `${m} in ${sel.modules.join(' ')}`);
});
