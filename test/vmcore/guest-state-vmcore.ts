// A real kdump vmcore of a lab guest put into states the plain lab guest never reaches, for the
// rules that only such pages exercise: hwpoison pages (hard_offline_page, CONFIG_MEMORY_FAILURE),
// logically offline pages (a virtio-balloon inflated through QMP: PageOffline), a memory DIMM
// unplugged after `kexec -p` loaded the capture kernel (the vmcore still has its PT_LOAD but no
// mem_section, so makedumpfile trims max_mapnr), and a printk ring that wrapped (thousands of
// /dev/kmsg lines). Made at test time with the lab's initramfs (../shared/lab/make-initrd.sh,
// lab.mode=shell) plus a small overlay, cached in .cache/lab/kdump-state-<kver>-m1024.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { cacheDir, ensureFile, kernelVersion, labDir } from '../support/lab.ts';
import { Guest, buildInitramfs, makeDisk } from '../support/qemu.ts';

const MEM = 1024;
/** MiB the balloon takes from the guest. */
export const BALLOON_MIB = 64;
/** The hot-pluggable DIMM, at the start of QEMU's hotplug area (4 GiB). */
export const DIMM_MIB = 128;
/** Free pages the guest poisons. */
export const HWPOISON_PAGES = 8;
/** /dev/kmsg lines written before the panic: more than the 128 KiB ring and its 4096 descriptors hold. */
export const KMSG_SHORT = 5000;
export const KMSG_LONG = 2500;

export interface GuestStateFacts {
  kver: string;
  /** Pages the guest saw flagged HWPoison in /proc/kpageflags after hard_offline_page. */
  hwpoison: number;
  /** Bytes the balloon holds (QMP query-balloon: RAM minus actual). */
  balloonBytes: number;
  /** The DIMM was ejected (its memory blocks gone from sysfs) before the panic. */
  dimmRemoved: boolean;
}

export interface GuestStateVmcore {
  file: string;
  facts: GuestStateFacts;
}

// Phases the host runs on the guest's shell (typed on the serial console).
const FX_SH = String.raw`#!/bin/sh
KVER=$(cat /etc/lab-kver)
case "$1" in
prep)
  for m in /lib/modules/$KVER/virtio_balloon.ko*; do insmod "$m" || echo "FX: insmod $m failed"; done
  mount -t tmpfs -o size=50% tmpfs /tmp
  dd if=/dev/urandom of=/tmp/fill.bin bs=1M count=32 2>/dev/null
  sleep 100000 &
  # hwpoison: heads of free buddy blocks (KPF_BUDDY, bit 10), from 512 MiB on.
  n=0; pfn=$((0x20000))
  while [ $n -lt $2 ] && [ $pfn -lt $((0x3c000)) ]; do
    f=$(dd if=/proc/kpageflags bs=8 skip=$pfn count=1 2>/dev/null | od -An -tu8 | tr -d ' ')
    if [ -n "$f" ] && [ $(( (f >> 10) & 1 )) = 1 ]; then
      echo $((pfn * 4096)) > /sys/devices/system/memory/hard_offline_page && n=$((n + 1))
    fi
    pfn=$((pfn + 1024))
  done
  # count what the kernel flags HWPoison (KPF_HWPOISON, bit 19)
  h=0; pfn=$((0x20000))
  while [ $pfn -lt $((0x3c000)) ]; do
    f=$(dd if=/proc/kpageflags bs=8 skip=$pfn count=1 2>/dev/null | od -An -tu8 | tr -d ' ')
    [ -n "$f" ] && [ $(( (f >> 19) & 1 )) = 1 ] && h=$((h + 1))
    pfn=$((pfn + 1024))
  done
  # wrap the printk ring: descriptors first (short lines), then the data ring (long lines);
  # level 7 stays off the console
  i=0; while [ $i -lt $3 ]; do echo "<7>w$i" > /dev/kmsg; i=$((i + 1)); done
  i=0; while [ $i -lt $4 ]; do
    echo "<7>FX-WRAP $i the quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ" > /dev/kmsg
    i=$((i + 1))
  done
  printf '<6>FX-ODD tab\there bell\007 high\303\251 two\nlines\n' > /dev/kmsg
  append="console=ttyS0 irqpoll nr_cpus=1 reset_devices panic=1 lab.mode=capture"
  kexec -p /vmlinuz --initrd=/capture.cpio.gz --append="$append" || kexec -s -p /vmlinuz --initrd=/capture.cpio.gz --append="$append" || echo "FX: KEXEC_LOAD_FAILED"
  echo "FX: prep done hwpoison=$h loaded=$(cat /sys/kernel/kexec_crash_loaded)"
  ;;
blocks)
  echo "FX: blocks $(ls -d /sys/devices/system/memory/memory* | wc -l) movable=$(grep -l Movable /sys/devices/system/memory/memory*/valid_zones 2>/dev/null | wc -l)"
  ;;
crash)
  echo 1 > /proc/sys/kernel/sysrq
  echo "FX: CRASHING"
  echo c > /proc/sysrq-trigger
  ;;
esac
`;

/** Minimal QMP client: one connection, commands in order, events skipped. */
class Qmp {
  private buf = '';
  private waiting: ((line: string) => void)[] = [];
  private lines: string[] = [];
  private readonly sock: net.Socket;

  private constructor(sock: net.Socket) {
    this.sock = sock;
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      for (let i = this.buf.indexOf('\n'); i >= 0; i = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        if (line.includes('"event"')) continue;
        const w = this.waiting.shift();
        if (w) w(line); else this.lines.push(line);
      }
    });
  }

  static async connect(file: string, timeoutMs: number): Promise<Qmp> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const sock = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.createConnection(file, () => resolve(s));
          s.once('error', reject);
        });
        const q = new Qmp(sock);
        await q.next();                                  // greeting
        await q.run('qmp_capabilities');
        return q;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  private next(): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  async run(execute: string, args?: object): Promise<any> {
    this.sock.write(JSON.stringify(args ? { execute, arguments: args } : { execute }) + '\n');
    const r = JSON.parse(await this.next());
    if (r.error) throw new Error(`QMP ${execute}: ${r.error.desc}`);
    return r.return;
  }

  close(): void {
    this.sock.destroy();
  }
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not reached in ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

export function guestStateVmcore(series: string): GuestStateVmcore {
  const kver = kernelVersion(series);
  if (!kver) throw new Error(`no ${series} kernel installed (run .ci/setup)`);
  const out = path.join(cacheDir, 'lab', `kdump-state-${kver}-m${MEM}`);
  const file = path.join(out, 'kdump-256M.vmcore');
  const factsFile = path.join(out, 'facts.json');
  ensureFile(file, () => {
    fs.mkdirSync(out, { recursive: true });
    // The guest runs in a child process: ensureFile's producer is synchronous.
    execFileSync(process.execPath, [import.meta.filename, series, out], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 30 * 60_000 });
  });
  return { file, facts: JSON.parse(fs.readFileSync(factsFile, 'utf8')) as GuestStateFacts };
}

/** Boots the guest, drives it to the states above, panics it and keeps /proc/vmcore as `out`/kdump-256M.vmcore. */
async function produce(series: string, out: string): Promise<void> {
  const kver = kernelVersion(series)!;
  const env = { ...process.env, KVER: kver };
  execFileSync(path.join(labDir, 'make-initrd.sh'), [out], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const balloonKo = execFileSync('modinfo', ['-k', kver, '-n', 'virtio_balloon'], { encoding: 'utf8' }).trim();
  const overlay = buildInitramfs({
    busybox: false,
    files: { [`/lib/modules/${kver}/${path.basename(balloonKo)}`]: balloonKo },
    texts: { '/fx.sh': { data: FX_SH, mode: 0o755 } },
  }, path.join(out, 'overlay.cpio.zst'));
  const initrd = path.join(out, 'primary-state.cpio');
  fs.writeFileSync(initrd, Buffer.concat([fs.readFileSync(path.join(out, 'primary.cpio.gz')), fs.readFileSync(overlay)]));
  const disk = makeDisk(path.join(out, 'dump.disk'), MEM + DIMM_MIB + 64);
  const qmpSock = path.join(out, 'qmp.sock');
  fs.rmSync(qmpSock, { force: true });
  const guest = new Guest({
    kernel: path.join(out, 'vmlinuz'),
    initrd,
    append: 'console=ttyS0 crashkernel=256M lab.mode=shell panic=1 memhp_default_state=online_movable',
    memMiB: MEM,
    disks: [disk],
    logFile: path.join(out, 'console-state.log'),
    qemuArgs: [
      '-m', `${MEM},slots=2,maxmem=${MEM + 2 * DIMM_MIB}M`,
      '-object', `memory-backend-ram,id=dimm0mem,size=${DIMM_MIB}M`,
      '-device', 'pc-dimm,id=dimm0,memdev=dimm0mem',
      '-device', 'virtio-balloon-pci,id=balloon0',
      '-qmp', `unix:${qmpSock},server=on,wait=off`,
    ],
  });
  let qmp: Qmp | undefined;
  try {
    await guest.waitFor(/LAB: shell/, 10 * 60_000);
    qmp = await Qmp.connect(qmpSock, 60_000);
    let from = guest.console.length;
    guest.type('sh /fx.sh blocks\n');
    const before = await guest.waitFor(/FX: blocks (\d+) movable=(\d+)\s/, 5 * 60_000, from);
    from = guest.console.length;
    guest.type(`sh /fx.sh prep ${HWPOISON_PAGES} ${KMSG_SHORT} ${KMSG_LONG}\n`);
    const prep = await guest.waitFor(/FX: prep done hwpoison=(\d+) loaded=(\d)/, 20 * 60_000, from);
    if (prep[2] !== '1') throw new Error(`kexec -p did not load the capture kernel:\n${guest.tail()}`);
    // Inflate the balloon: the guest keeps MEM - BALLOON_MIB (the DIMM counts as RAM too).
    const ram = (MEM + DIMM_MIB) * 1024 * 1024;
    const target = ram - BALLOON_MIB * 1024 * 1024;
    await qmp.run('balloon', { value: target });
    const actual = await until('balloon inflation', 10 * 60_000, async () => {
      const r = await qmp!.run('query-balloon') as { actual: number };
      return r.actual <= target ? r.actual : undefined;
    });
    // Unplug the DIMM after kexec -p: the capture kernel's elfcorehdr still lists its range.
    await qmp.run('device_del', { id: 'dimm0' });
    const dimmRemoved = await until('DIMM removal', 5 * 60_000, async () => {
      const devs = await qmp!.run('query-memory-devices') as unknown[];
      return devs.length === 0 ? true : undefined;
    });
    from = guest.console.length;
    guest.type('sh /fx.sh blocks\n');
    const after = await guest.waitFor(/FX: blocks (\d+) movable=(\d+)\s/, 5 * 60_000, from);
    if (Number(after[1]) >= Number(before[1])) throw new Error(`memory blocks ${before[1]} -> ${after[1]}: the DIMM was not removed`);
    from = guest.console.length;
    guest.type('sh /fx.sh crash\n');
    const copied = await guest.waitFor(/VMCORE_COPIED size=(\d+) /, 15 * 60_000, from);
    await guest.waitExit(5 * 60_000);
    fs.truncateSync(disk, Number(copied[1]));
    const facts: GuestStateFacts = { kver, hwpoison: Number(prep[1]), balloonBytes: ram - actual, dimmRemoved };
    fs.writeFileSync(path.join(out, 'facts.json'), JSON.stringify(facts, null, 2) + '\n');
    fs.renameSync(disk, path.join(out, 'kdump-256M.vmcore'));
  } finally {
    qmp?.close();
    guest.kill();
    fs.rmSync(disk, { force: true });
    fs.rmSync(initrd, { force: true });
  }
}

if (process.argv[1] === import.meta.filename) {
  const [series, out] = process.argv.slice(2);
  await produce(series!, out!);
}
