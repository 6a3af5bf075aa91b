// reset_devices through sysfs, on a fake sysfs that behaves like the kernel's for the files used
// (a real reset needs PCI functions with reset methods: the QEMU q35 E2E case in
// test/e2e/faults.test.ts does it for real): which functions are reset for which target, bound
// ones unbound, reset and probed again, and one serving a mounted filesystem left alone.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Target } from '../../runtime/config/plan.ts';
import { blockDevicesOf, listPciFunctions, mountedDevices, resetTargetDevices, type Sysfs } from '../../runtime/modules/reset-devices.ts';

interface FakeFn {
  class: string;
  /** reset_method content; absent: no reset file either */
  methods?: string;
  driver?: string;
  resetFails?: boolean;
  /** drivers_probe finds no driver for it afterwards */
  noReprobe?: boolean;
  /** block devices below it: name -> major:minor */
  blocks?: Record<string, string>;
}

/**
 * A sysfs where writes have the kernel's effects on the driver link; `ops` records them in order,
 * marking a write to a function while a driver holds it with "(bound)".
 */
function fakeSysfs(fns: Record<string, FakeFn>): Sysfs & { ops: string[] } {
  const ops: string[] = [];
  const bound = new Map(Object.entries(fns).filter(([, f]) => f.driver).map(([b, f]) => [b, f.driver!]));
  const dev = (p: string) => /^bus\/pci\/devices\/([^/]+)\/(.*)$/.exec(p);
  const blocks = Object.entries(fns).flatMap(([bdf, f]) => Object.entries(f.blocks ?? {}).map(([name, mm]) => ({ bdf, name, mm })));
  return {
    ops,
    readdir: (p) => (p === 'bus/pci/devices' ? Object.keys(fns) : p === 'class/block' ? blocks.map((b) => b.name) : []),
    readFile: (p) => {
      const m = dev(p);
      if (m && m[2] === 'class' && fns[m[1]!]) return fns[m[1]!]!.class + '\n';
      if (m && m[2] === 'reset_method' && fns[m[1]!]?.methods) return fns[m[1]!]!.methods + '\n';
      const b = /^class\/block\/([^/]+)\/dev$/.exec(p);
      const blk = b && blocks.find((x) => x.name === b[1]);
      if (blk) return blk.mm + '\n';
      throw Object.assign(new Error(`ENOENT ${p}`), { code: 'ENOENT' });
    },
    exists: (p) => {
      const m = dev(p);
      return !!m && m[2] === 'reset' && !!fns[m[1]!]?.methods;
    },
    readlink: (p) => {
      const m = dev(p);
      if (m && m[2] === 'driver') { const d = bound.get(m[1]!); return d === undefined ? undefined : `../../../bus/pci/drivers/${d}`; }
      const b = /^class\/block\/([^/]+)$/.exec(p);
      const blk = b && blocks.find((x) => x.name === b[1]);
      return blk ? `../../devices/pci0000:00/0000:00:1c.0/${blk.bdf}/virtio3/block/${blk.name}` : undefined;
    },
    writeFile: (p, data) => {
      const m = dev(p);
      if (m && m[2] === 'reset') {
        if (fns[m[1]!]?.resetFails) throw new Error('Inappropriate ioctl for device');
      } else if (m && m[2] === 'driver/unbind') {
        if (!bound.has(m[1]!) || data !== m[1]) throw new Error('No such device');
        bound.delete(m[1]!);
      } else if (p === 'bus/pci/drivers_probe') {
        const f = fns[data];
        if (f?.driver && !f.noReprobe) bound.set(data, f.driver);
      } else throw new Error(`EACCES ${p}`);
      ops.push(`${p}=${data}${m && bound.has(m[1]!) ? ' (bound)' : ''}`);
    },
  };
}

const machine: Record<string, FakeFn> = {
  '0000:00:00.0': { class: '0x060000', methods: 'bus' },                       // host bridge
  '0000:01:00.0': { class: '0x010000', methods: 'flr bus' },                   // virtio-blk behind a root port, unbound
  '0000:02:00.0': { class: '0x020000', methods: 'flr' },                       // virtio-net, unbound
  '0000:03:00.0': { class: '0x010802', methods: 'flr', driver: 'nvme', blocks: { nvme0n1: '259:0' } }, // NVMe, built-in driver
  '0000:00:1f.2': { class: '0x010601' },                                       // AHCI without a reset method
  '0000:04:00.0': { class: '0x020000', methods: 'pm', resetFails: true },      // NIC whose reset fails
};
const src = { file: 'test' };
const disk: Target = { kind: 'local-fs', fstype: 'ext4', device: { by: 'label', label: 'x' }, mountOptions: [], source: src };
const log = () => {
  const lines: string[] = [];
  return { lines, log: (l: string) => { lines.push(l); } };
};

test('reads class, reset methods, the bound driver and the block devices below a function from sysfs', () => {
  const sysfs = fakeSysfs(machine);
  const fns = listPciFunctions(sysfs);
  assert.deepEqual(fns.find((f) => f.bdf === '0000:03:00.0'), { bdf: '0000:03:00.0', classCode: 0x010802, hasReset: true, resetMethods: ['flr'], driver: 'nvme' });
  assert.deepEqual(fns.find((f) => f.bdf === '0000:00:1f.2'), { bdf: '0000:00:1f.2', classCode: 0x010601, hasReset: false, resetMethods: [], driver: undefined });
  assert.deepEqual(blockDevicesOf(sysfs, '0000:03:00.0'), ['259:0']);
  assert.deepEqual(blockDevicesOf(sysfs, '0000:01:00.0'), []);
});

test('a disk target resets the unbound storage function before its driver binds, and unbinds, resets and reprobes a built-in driver\'s', () => {
  const sysfs = fakeSysfs(machine);
  const l = log();
  const r = resetTargetDevices(l, disk, sysfs, { mounted: new Set() });
  assert.deepEqual(sysfs.ops, [
    'bus/pci/devices/0000:01:00.0/reset=1',
    'bus/pci/devices/0000:03:00.0/driver/unbind=0000:03:00.0',
    'bus/pci/devices/0000:03:00.0/reset=1',
    'bus/pci/drivers_probe=0000:03:00.0',
  ]);
  assert.deepEqual(r, { reset: ['0000:01:00.0', '0000:03:00.0'], rebound: ['0000:03:00.0'], skipped: [], failed: [] });
  assert.equal(l.lines[0], 'lastword: reset_devices: reset PCI function 0000:01:00.0 (class 010000, reset methods flr bus) before its driver binds');
  assert.equal(l.lines[1], 'lastword: reset_devices: reset PCI function 0000:03:00.0 (class 010802, reset methods flr): unbound from nvme, reset, bound to nvme again');
});

test('a bound function serving a mounted filesystem is not unbound', () => {
  const sysfs = fakeSysfs(machine);
  const l = log();
  const r = resetTargetDevices(l, disk, sysfs, { mounted: mountedDevices('25 1 259:0 / /mnt rw,relatime - ext4 /dev/nvme0n1 rw\n22 1 0:21 / /proc rw - proc proc rw\n') });
  assert.deepEqual(sysfs.ops, ['bus/pci/devices/0000:01:00.0/reset=1']);
  assert.deepEqual(r.skipped, [{ bdf: '0000:03:00.0', why: 'bound to nvme and serving mounted block device 259:0' }]);
  assert.match(l.lines.join('\n'), /not resetting PCI function 0000:03:00.0 .*mounted block device 259:0/);
});

test('a function no driver takes back after the reset is reported as failed', () => {
  const sysfs = fakeSysfs({ '0000:05:00.0': { class: '0x010802', methods: 'flr', driver: 'nvme', noReprobe: true } });
  const l = log();
  const r = resetTargetDevices(l, disk, sysfs, { mounted: new Set() });
  assert.deepEqual(r.reset, ['0000:05:00.0']);
  assert.deepEqual(r.rebound, []);
  assert.match(r.failed[0]!.message, /0000:05:00.0 .*no driver bound it again after the reset/);
});

test('a network target resets the NICs and reports one whose reset fails', () => {
  const sysfs = fakeSysfs(machine);
  const l = log();
  const target: Target = { kind: 'ssh', user: 'u', host: 'h', port: 22, key: 'k', knownHosts: 'kh', transport: 'sftp', source: src };
  const r = resetTargetDevices(l, target, sysfs, { mounted: new Set() });
  assert.deepEqual(sysfs.ops, ['bus/pci/devices/0000:02:00.0/reset=1']);
  assert.deepEqual(r.failed.map((f) => f.bdf), ['0000:04:00.0']);
  assert.match(l.lines.join('\n'), /0000:04:00.0 \(class 020000, reset methods pm\) could not be reset: Inappropriate ioctl/);
});

test('stdout and virtiofs targets reset nothing', () => {
  const sysfs = fakeSysfs(machine);
  resetTargetDevices(log(), { kind: 'stdout', source: src }, sysfs);
  resetTargetDevices(log(), { kind: 'local-fs', fstype: 'virtiofs', device: { by: 'path', path: 'tag' }, mountOptions: [], source: src }, sysfs);
  assert.deepEqual(sysfs.ops, []);
});

test('mountinfo gives the mounted devices by major:minor', () => {
  assert.deepEqual([...mountedDevices('36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n')], ['98:0']);
});
