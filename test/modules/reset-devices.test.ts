// reset_devices through sysfs, on a fake sysfs (PCI functions with reset files cannot be made on
// this machine): which functions are reset for which target, and that bound ones are left alone.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Target } from '../../runtime/config/plan.ts';
import { listPciFunctions, resetTargetDevices, type Sysfs } from '../../runtime/modules/reset-devices.ts';

interface FakeFn { class: string; reset?: boolean; driver?: string; resetFails?: boolean }

function fakeSysfs(fns: Record<string, FakeFn>): Sysfs & { writes: string[] } {
  const writes: string[] = [];
  const dev = (p: string) => /^bus\/pci\/devices\/([^/]+)\/(.*)$/.exec(p);
  return {
    writes,
    readdir: (p) => (p === 'bus/pci/devices' ? Object.keys(fns) : []),
    readFile: (p) => {
      const m = dev(p);
      if (m && m[2] === 'class' && fns[m[1]!]) return fns[m[1]!]!.class + '\n';
      throw Object.assign(new Error(`ENOENT ${p}`), { code: 'ENOENT' });
    },
    exists: (p) => {
      const m = dev(p);
      return !!m && m[2] === 'reset' && !!fns[m[1]!]?.reset;
    },
    readlink: (p) => {
      const m = dev(p);
      const d = m && m[2] === 'driver' ? fns[m[1]!]?.driver : undefined;
      return d === undefined ? undefined : `../../../bus/pci/drivers/${d}`;
    },
    writeFile: (p, data) => {
      const m = dev(p);
      if (m && fns[m[1]!]?.resetFails) throw new Error('Inappropriate ioctl for device');
      writes.push(`${p}=${data}`);
    },
  };
}

const machine: Record<string, FakeFn> = {
  '0000:00:00.0': { class: '0x060000', reset: true },                    // host bridge
  '0000:00:03.0': { class: '0x020000', reset: true },                    // virtio-net, unbound
  '0000:00:04.0': { class: '0x010000', reset: true },                    // virtio-blk, unbound
  '0000:00:05.0': { class: '0x010802', reset: true, driver: 'nvme' },    // NVMe already bound
  '0000:00:06.0': { class: '0x010601' },                                  // AHCI without a reset method
  '0000:00:07.0': { class: '0x020000', reset: true, resetFails: true },  // NIC whose reset fails
};
const src = { file: 'test' };
const log = () => {
  const lines: string[] = [];
  return { lines, log: (l: string) => { lines.push(l); } };
};

test('reads class, reset support and the bound driver from sysfs', () => {
  const fns = listPciFunctions(fakeSysfs(machine));
  assert.deepEqual(fns.find((f) => f.bdf === '0000:00:05.0'), { bdf: '0000:00:05.0', classCode: 0x010802, hasReset: true, driver: 'nvme' });
  assert.equal(fns.find((f) => f.bdf === '0000:00:06.0')?.hasReset, false);
});

test('a disk target resets the unbound storage functions that support reset, nothing else', () => {
  const sysfs = fakeSysfs(machine);
  const l = log();
  const target: Target = { kind: 'local-fs', fstype: 'ext4', device: { by: 'label', label: 'x' }, mountOptions: [], source: src };
  const r = resetTargetDevices(l, target, sysfs);
  assert.deepEqual(sysfs.writes, ['bus/pci/devices/0000:00:04.0/reset=1']);
  assert.deepEqual(r.reset, ['0000:00:04.0']);
  assert.match(l.lines[0]!, /reset PCI function 0000:00:04.0 \(class 010000\)/);
});

test('a network target resets the unbound NICs and reports one whose reset fails', () => {
  const sysfs = fakeSysfs(machine);
  const l = log();
  const target: Target = { kind: 'ssh', user: 'u', host: 'h', port: 22, key: 'k', knownHosts: 'kh', transport: 'sftp', source: src };
  const r = resetTargetDevices(l, target, sysfs);
  assert.deepEqual(sysfs.writes, ['bus/pci/devices/0000:00:03.0/reset=1']);
  assert.deepEqual(r.failed.map((f) => f.bdf), ['0000:00:07.0']);
  assert.match(l.lines.join('\n'), /0000:00:07.0 could not be reset: Inappropriate ioctl/);
});

test('stdout and virtiofs targets reset nothing', () => {
  const sysfs = fakeSysfs(machine);
  resetTargetDevices(log(), { kind: 'stdout', source: src }, sysfs);
  resetTargetDevices(log(), { kind: 'local-fs', fstype: 'virtiofs', device: { by: 'path', path: 'tag' }, mountOptions: [], source: src }, sysfs);
  assert.deepEqual(sysfs.writes, []);
});
