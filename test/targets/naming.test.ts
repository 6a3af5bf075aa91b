import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LastwordError } from '../../runtime/errors.ts';
import { dumpNames, dumpsToRemove, joinInside, targetDir, underRoot } from '../../runtime/targets/naming.ts';

const time = new Date(2024, 5, 23, 21, 7, 6); // local time, as `date` prints it

test('Fedora layout: <path>/<host ip>-<YYYY-MM-DD-HH:MM:SS>/vmcore with vmcore-dmesg.txt', () => {
  const n = dumpNames({ naming: { layout: 'fedora', hostTag: 'ip' }, path: '/var/crash', time, network: true, hostIp: '10.0.2.15', flattened: false });
  assert.equal(n.dir, '/var/crash/10.0.2.15-2024-06-23-21:07:06');
  assert.equal(n.dump, 'vmcore');
  assert.equal(n.dumpIncomplete, 'vmcore-incomplete');
  assert.equal(n.dmesg, 'vmcore-dmesg.txt');
});

test('Fedora layout: a local target is named after 127.0.0.1, a kept flattened stream is vmcore.flat', () => {
  const n = dumpNames({ naming: { layout: 'fedora', hostTag: 'ip' }, path: 'var/crash/', time, network: false, flattened: true });
  assert.equal(n.dir, '/var/crash/127.0.0.1-2024-06-23-21:07:06');
  assert.equal(n.dump, 'vmcore.flat');
});

test('Fedora layout: kdump_test_id= names the directory kdump-test-<id>', () => {
  const n = dumpNames({ naming: { layout: 'fedora', hostTag: 'ip', testId: 'abc123' }, path: '/var/crash', time, network: false, flattened: false });
  assert.equal(n.dir, '/var/crash/kdump-test-abc123');
});

test('Debian layout: <KDUMP_COREDIR>/<YYYYMMDDHHMM>/dump.<stamp> and dmesg.<stamp>', () => {
  const n = dumpNames({ naming: { layout: 'debian', hostTag: 'ip' }, path: '/var/crash', time, network: false, hostIp: '10.0.0.1', flattened: false });
  assert.equal(n.dir, '/var/crash/202406232107');
  assert.equal(n.dump, 'dump.202406232107');
  assert.equal(n.dumpIncomplete, 'dump-incomplete');
  assert.equal(n.dmesg, 'dmesg.202406232107');
});

test('Debian layout: network targets prefix the directory with HOSTTAG ip or hostname', () => {
  const ip = dumpNames({ naming: { layout: 'debian', hostTag: 'ip' }, path: '/var/crash', time, network: true, hostIp: '10.0.0.1', hostname: 'db1', flattened: true });
  assert.equal(ip.dir, '/var/crash/10.0.0.1-202406232107');
  assert.equal(ip.dump, 'dump.202406232107');
  const host = dumpNames({ naming: { layout: 'debian', hostTag: 'hostname' }, path: '/var/crash', time, network: true, hostIp: '10.0.0.1', hostname: 'db1', flattened: false });
  assert.equal(host.dir, '/var/crash/db1-202406232107');
});

test('Debian KDUMP_COMPRESSION: the dump names (and only they) end in the compressor\'s extension, FTP ones too', () => {
  const n = dumpNames({ naming: { layout: 'debian', hostTag: 'ip' }, path: '/var/crash', time, network: false, flattened: true, extension: '.xz' });
  assert.equal(n.dump, 'dump.202406232107.xz');
  assert.equal(n.dumpIncomplete, 'dump-incomplete.xz');
  assert.equal(n.dmesg, 'dmesg.202406232107');
  const ftp = dumpNames({ naming: { layout: 'debian', hostTag: 'ip' }, path: '/incoming', time, network: true, hostIp: '10.0.0.1', flattened: true, ftp: true, extension: '.zst' });
  assert.equal(ftp.dir, '/incoming');
  assert.equal(ftp.dump, '10.0.0.1-dump.202406232107.zst');
  assert.equal(ftp.dumpIncomplete, '10.0.0.1-dump-incomplete.202406232107.zst');
  assert.equal(ftp.dmesg, '10.0.0.1-dmesg.202406232107');
});

test('no name can leave the target directory', () => {
  const refuses = (f: () => unknown) => assert.throws(f, (e: unknown) => e instanceof LastwordError && e.code === 'ETARGET_NAME');
  refuses(() => targetDir('/var/crash/../../etc'));
  refuses(() => targetDir('/var/cr\0ash'));
  refuses(() => joinInside('/var/crash', '../passwd'));
  refuses(() => joinInside('/var/crash', 'a/b'));
  refuses(() => joinInside('/var/crash', '..'));
  refuses(() => joinInside('/var/crash', ''));
  refuses(() => joinInside('/var/crash', 'x\ny'));
  refuses(() => dumpNames({ naming: { layout: 'debian', hostTag: 'hostname' }, path: '/var/crash', time, network: true, hostname: '../etc', flattened: false }));
  refuses(() => dumpNames({ naming: { layout: 'fedora', hostTag: 'ip', testId: '../x' }, path: '/var/crash', time, network: false, flattened: false }));
  assert.equal(targetDir('//var/./crash//'), '/var/crash');
  assert.equal(underRoot('/run/lastword/target/', '/var/crash'), '/run/lastword/target/var/crash');
  assert.equal(underRoot('/', '/var/crash'), '/var/crash');
});

test('KDUMP_NUM_DUMPS keeps the newest stamps and never touches other entries', () => {
  const entries = ['202401010000', 'notes', '202403010000', '202402010000', 'kdump_lock', '10.0.0.1-202401010000'];
  assert.deepEqual(dumpsToRemove('debian', entries, 2), ['202401010000']);
  assert.deepEqual(dumpsToRemove('debian', entries, 1), ['202401010000', '202402010000']);
  assert.deepEqual(dumpsToRemove('debian', entries, 0), []);
  assert.deepEqual(dumpsToRemove('fedora', entries, 1), []);
});
