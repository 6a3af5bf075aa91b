// The capture command line and the kexec command of `lastword load`, built from real configs, and
// `lastword status` reading the reservation. This host has no crashkernel= reservation, so the
// CLI runs against a fake root (/proc, /sys, /etc as files); the real kexec -p load happens in
// the QEMU end-to-end cycle (test/e2e), whose guest runs `lastword load`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { defaultPlan } from '../../runtime/config/defaults.ts';
import { captureCmdline, kexecFiles, kexecUnloadArgs, splitKernelWords } from '../../runtime/cli/kexec.ts';
import { loadPlan } from '../../runtime/config/load.ts';
import { repo } from '../support/lab.ts';

let tmp = '';
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-load-test-')); });
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

const PROC = 'BOOT_IMAGE=/boot/vmlinuz-6.1.0-56-amd64 root=UUID=1234 ro quiet crashkernel=256M rd.lvm.lv=vg/root console=ttyS0,115200 hugepages=16 init=/sbin/init panic=1';

test('Fedora: /proc/cmdline minus crashkernel, root, rd.lvm.lv, init= and KDUMP_COMMANDLINE_REMOVE, plus the append list and disable_cpu_apicid', () => {
  const line = captureCmdline(defaultPlan('fedora'), { procCmdline: PROC, bootCpuApicId: 2 });
  const words = splitKernelWords(line);
  for (const gone of ['crashkernel=256M', 'root=UUID=1234', 'rd.lvm.lv=vg/root', 'quiet', 'hugepages=16', 'init=/sbin/init', 'panic=1']) {
    assert.ok(!words.includes(gone), `${gone} removed from ${line}`);
  }
  for (const kept of ['BOOT_IMAGE=/boot/vmlinuz-6.1.0-56-amd64', 'ro', 'console=ttyS0,115200']) assert.ok(words.includes(kept), kept);
  for (const added of ['irqpoll', 'nr_cpus=1', 'reset_devices', 'panic=10', 'disable_cpu_apicid=2']) assert.ok(words.includes(added), added);
  assert.equal(words.filter((w) => w.startsWith('panic=')).length, 1);
});

test('Debian: KDUMP_CMDLINE replaces /proc/cmdline and KDUMP_CMDLINE_APPEND is appended, without systemd.unit=', () => {
  const plan = defaultPlan('debian');
  plan.kexec.commandline = 'root=/dev/sda1 console=tty0 crashkernel=384M-:128M';
  plan.kexec.commandlineAppend = ['reset_devices', 'nr_cpus=1', 'irqpoll', 'usbcore.nousb', 'lastword.final_action=poweroff'];
  assert.equal(captureCmdline(plan, { procCmdline: PROC, bootCpuApicId: 0 }), 'console=tty0 reset_devices nr_cpus=1 irqpoll usbcore.nousb lastword.final_action=poweroff rootfstype=ramfs');
});

test('the first boot\'s rootfstype= is replaced by rootfstype=ramfs (no half-of-RAM cap on the unpacked initramfs); an appended one is kept', () => {
  assert.equal(captureCmdline(defaultPlan('debian'), { procCmdline: 'root=/dev/vda1 rootfstype=ext4 console=ttyS0' }),
    'console=ttyS0 reset_devices nr_cpus=1 irqpoll usbcore.nousb rootfstype=ramfs');
  const plan = defaultPlan('debian');
  plan.kexec.commandlineAppend = ['reset_devices', 'rootfstype=tmpfs'];
  assert.equal(captureCmdline(plan, { procCmdline: 'rootfstype=ext4 console=ttyS0' }), 'console=ttyS0 reset_devices rootfstype=tmpfs');
});

test('init arguments after -- are dropped, so appended parameters stay kernel parameters; quoted values stay whole', () => {
  const line = captureCmdline(defaultPlan('debian'), { procCmdline: 'console=ttyS0 dyndbg="file x.c +p" -- --init-arg 1' });
  assert.equal(line, 'console=ttyS0 dyndbg="file x.c +p" reset_devices nr_cpus=1 irqpoll usbcore.nousb rootfstype=ramfs');
});

test('unload uses kexec_file_load (-s) when loading does', () => {
  assert.deepEqual(kexecUnloadArgs(defaultPlan('fedora')), ['-p', '-s', '-u']);
  assert.deepEqual(kexecUnloadArgs(defaultPlan('debian')), ['-p', '-u']);
});

function fakeRoot(name: string, files: Record<string, string>): string {
  const root = path.join(tmp, name);
  for (const [p, data] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), data);
  }
  return root;
}

function lastword(args: string[]) {
  return spawnSync(process.execPath, [path.join(repo, 'runtime', 'main.ts'), ...args], { encoding: 'utf8' });
}

test('lastword load --dry-run prints the kexec -p command kdumpctl would run for /etc/kdump.conf and /etc/sysconfig/kdump (default KDUMP_COMMANDLINE_REMOVE drops quiet, hugepages)', () => {
  const root = fakeRoot('fedora', {
    '/proc/cmdline': PROC + '\n',
    '/proc/cpuinfo': 'processor\t: 0\napicid\t\t: 4\n',
    '/etc/kdump.conf': 'path /var/crash\ncore_collector makedumpfile -l --message-level 7 -d 31\n',
    '/etc/sysconfig/kdump': 'KDUMP_KERNELVER="6.1.0-56-amd64"\nKDUMP_COMMANDLINE_APPEND="irqpoll nr_cpus=1 reset_devices"\nKEXEC_ARGS="-s"\n',
    '/boot/vmlinuz-6.1.0-56-amd64': 'k', '/boot/initramfs-6.1.0-56-amd64.img': 'i',
  });
  const r = lastword(['load', '--root', root, '--dry-run']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(),
    "kexec -p -s '--command-line=BOOT_IMAGE=/boot/vmlinuz-6.1.0-56-amd64 ro console=ttyS0,115200 panic=1 irqpoll nr_cpus=1 reset_devices rootfstype=ramfs disable_cpu_apicid=4' --initrd=/boot/initramfs-6.1.0-56-amd64kdump.img /boot/vmlinuz-6.1.0-56-amd64");
});

describe("kernel and initrd where kdumpctl finds them (kdump-lib.sh prepare_kdump_kernel / prepare_kdump_bootinfo)", () => {
  const KVER = '6.12.9-200.fc41.x86_64';
  const MID = '0123456789abcdef0123456789abcdef';
  const files = (root: string, procCmdline = 'ro') => kexecFiles(loadPlan({ root, cmdline: procCmdline }), 'unused', { root, procCmdline });
  const sysconfig = (extra = '') => `KDUMP_KERNELVER="${KVER}"\n${extra}`;

  test('/boot/vmlinuz-<kver> with the system initrd beside it: the kdump image goes next to that', () => {
    const root = fakeRoot('find-std', { '/etc/kdump.conf': 'path /var/crash\n', '/etc/sysconfig/kdump': sysconfig(),
      [`/boot/vmlinuz-${KVER}`]: 'k', [`/boot/initramfs-${KVER}.img`]: 'i' });
    assert.deepEqual(files(root), { kernel: `/boot/vmlinuz-${KVER}`, initrd: `/boot/initramfs-${KVER}kdump.img` });
  });

  test('a BLS layout (<machine-id>/<kver>/vmlinuz on the ESP) with no initrd beside it: /var/lib/kdump', () => {
    const root = fakeRoot('find-bls', { '/etc/kdump.conf': 'path /var/crash\n', '/etc/sysconfig/kdump': sysconfig(), '/etc/machine-id': MID + '\n',
      [`/boot/efi/${MID}/${KVER}/vmlinuz`]: 'k' });
    assert.deepEqual(files(root), { kernel: `/boot/efi/${MID}/${KVER}/vmlinuz`, initrd: `/var/lib/kdump/initramfs-${KVER}kdump.img` });
  });

  test('a UKI named by systemd-stub\'s StubImageIdentifier (UTF-16, backslashes) under /efi', () => {
    const stub = Buffer.concat([Buffer.from([7, 0, 0, 0]), Buffer.from('\\EFI\\Linux\\fedora-custom.efi\0', 'utf16le')]);
    const root = fakeRoot('find-uki', { '/etc/kdump.conf': 'path /var/crash\n', '/etc/sysconfig/kdump': sysconfig(), '/etc/machine-id': MID + '\n',
      '/efi/EFI/Linux/fedora-custom.efi': 'k' });
    fs.mkdirSync(path.join(root, '/sys/firmware/efi/efivars'), { recursive: true });
    fs.writeFileSync(path.join(root, '/sys/firmware/efi/efivars/StubImageIdentifier-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f'), stub);
    assert.deepEqual(files(root), { kernel: '/efi/EFI/Linux/fedora-custom.efi', initrd: `/var/lib/kdump/initramfs-${KVER}kdump.img` });
  });

  test("BOOT_IMAGE of /proc/cmdline comes first when it ends in the version (GRUB's (hd0,gpt2) dropped)", () => {
    const root = fakeRoot('find-bootimage', { '/etc/kdump.conf': 'path /var/crash\n', '/etc/sysconfig/kdump': sysconfig(),
      [`/boot/vmlinuz-${KVER}`]: 'k', [`/boot/kernels/vmlinuz-${KVER}`]: 'k2', '/boot/kernels/initrd': 'i' });
    assert.deepEqual(files(root, `BOOT_IMAGE=(hd0,gpt2)/kernels/vmlinuz-${KVER} ro`), { kernel: `/boot/kernels/vmlinuz-${KVER}`, initrd: '/boot/kernels/initrdkdump' });
  });

  test('KDUMP_BOOTDIR (several directories), KDUMP_IMG and KDUMP_IMG_EXT', () => {
    const root = fakeRoot('find-bootdir', { '/etc/kdump.conf': 'path /var/crash\n',
      '/etc/sysconfig/kdump': sysconfig('KDUMP_BOOTDIR="/opt/none /opt/k"\nKDUMP_IMG="bzImage"\nKDUMP_IMG_EXT=".x"\n'),
      [`/opt/k/bzImage-${KVER}.x`]: 'k', [`/opt/k/initramfs-${KVER}.img`]: 'i' });
    assert.deepEqual(files(root), { kernel: `/opt/k/bzImage-${KVER}.x`, initrd: `/opt/k/initramfs-${KVER}kdump.img` });
  });

  test('nothing found: the standard name, which lastword load then reports missing', () => {
    const root = fakeRoot('find-none', { '/etc/kdump.conf': 'path /var/crash\n', '/etc/sysconfig/kdump': sysconfig(), '/proc/cmdline': 'ro\n',
      '/sys/kernel/kexec_crash_size': String(256 << 20) + '\n', '/sys/kernel/kexec_crash_loaded': '0\n' });
    assert.equal(files(root).kernel, `/boot/vmlinuz-${KVER}`);
    const r = lastword(['load', '--root', root]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`ELOAD_FILE: /boot/vmlinuz-${KVER.replace(/[.]/g, '\\.')} does not exist`));
  });
});

test('lastword load refuses clearly when crashkernel= reserved nothing', () => {
  const root = fakeRoot('noreserve', {
    '/proc/cmdline': 'console=ttyS0\n',
    '/etc/kdump.conf': 'path /var/crash\n',
    '/sys/kernel/kexec_crash_size': '0\n',
    '/sys/kernel/kexec_crash_loaded': '0\n',
    '/boot/vmlinuz-x': 'k', '/boot/initramfs-xkdump.img': 'i',
  });
  const r = lastword(['load', '--root', root, '--kernel', '/boot/vmlinuz-x', '--initrd', '/boot/initramfs-xkdump.img']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /ELOAD_NO_RESERVATION: no memory is reserved .*crashkernel=/);
});

test('lastword status reports the reservation and whether a capture kernel is loaded (exit 3 when not)', () => {
  const loaded = fakeRoot('loaded', { '/sys/kernel/kexec_crash_size': String(256 << 20) + '\n', '/sys/kernel/kexec_crash_loaded': '1\n' });
  const a = lastword(['status', '--root', loaded]);
  assert.equal(a.status, 0);
  assert.match(a.stdout, /capture kernel: loaded\nreservation:    256 MiB/);
  const none = fakeRoot('none', { '/sys/kernel/kexec_crash_size': '0\n', '/sys/kernel/kexec_crash_loaded': '0\n' });
  const b = lastword(['status', '--root', none]);
  assert.equal(b.status, 3);
  assert.match(b.stdout, /not loaded\nreservation:    none/);
});
