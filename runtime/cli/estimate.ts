// `lastword estimate`: the crashkernel= size lastword recommends for this machine and config, like
// kdumpctl estimate, printed next to what is reserved now. Each part with its source:
//   kernel      init_size of the capture kernel's bzImage (boot protocol >= 2.10): the memory the
//               decompressed kernel occupies, text, data and bss
//   initramfs   the compressed image (held while it is unpacked) + its unpacked contents, which
//               stay in rootfs (tmpfs/ramfs pages are never evicted); kdumpctl counts 3 x the
//               compressed size instead, for dracut's images
//   lastword    the Node runtime's resident memory while it saves, plus the filter's and the
//               writer's bounded buffers (cyclic bitmaps, compression batches): independent of the
//               RAM size, which is what the cyclic filter is for
//   kernel runtime  slab, page tables, the vmcore's ELF headers and network buffers of the capture
//               kernel (kdumpctl's 16 MiB, plus room for the drivers the target loads)
// The compressed image and lastword are never resident together: the kernel frees the image
// ("Freeing initrd memory") before it starts /init. So the peak is kernel + unpacked + kernel
// runtime + the larger of the two.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import minimist from 'minimist';
import { LastwordError, usageError } from '../errors.ts';
import { loadPlan } from '../config/load.ts';
import { initramfsFootprint } from '../../initramfs/footprint.ts';
import { formatMiB, kexecFiles } from './kexec.ts';
import { readReservation } from './status.ts';

const HELP = `usage: lastword estimate [--config FILE] [--kernel FILE] [--initrd FILE] [--root DIR]

Recommends a crashkernel= size for this machine and config, and prints it next to the
reservation. --kernel / --initrd default to the files lastword load would use.`;

const MiB = 1048576;
/** Resident memory of lastword saving a dump: PID 1 starts at VmRSS ~51 MB in the capture kernel
 * (13.6 MB anonymous, the rest the executable's pages from the squashfs), the benchmark's peaks are
 * 50-52 MiB; room above that for the target's stream buffers (SSH, NFS). */
export const LASTWORD_RUNTIME = 64 * MiB;
/** Cyclic bitmaps (2 x 128 KiB per 2^20 pfns), page-descriptor and compression batches, queues. */
export const FILTER_BUFFERS = 16 * MiB;
export const KERNEL_RUNTIME = 32 * MiB;
/** No reservation under this: kdumpctl's x86_64 floor for small machines. */
export const BASELINE = 160 * MiB;

/** bzImage setup header field init_size (offset 0x260), when the file is a bzImage with protocol >= 2.10. */
export function bzImageInitSize(head: Buffer): number | undefined {
  if (head.length < 0x264 || head.toString('latin1', 0x202, 0x206) !== 'HdrS') return undefined;
  if (head.readUInt16LE(0x206) < 0x20a) return undefined;
  return head.readUInt32LE(0x260);
}

export interface EstimateParts {
  kernel: number;
  initramfsCompressed: number;
  initramfsUnpacked: number;
  lastword: number;
  kernelRuntime: number;
}

/** The peak (see the top of this file), at least BASELINE, rounded up to a multiple of 16 MiB. */
export function recommend(p: EstimateParts): number {
  const sum = p.kernel + p.initramfsUnpacked + p.kernelRuntime + Math.max(p.initramfsCompressed, p.lastword);
  return Math.ceil(Math.max(sum, BASELINE) / (16 * MiB)) * 16 * MiB;
}

export async function run(argv: string[]): Promise<number> {
  const o = minimist(argv, {
    string: ['config', 'kernel', 'initrd', 'root'], boolean: ['help'], alias: { h: 'help' },
    unknown: (a) => { if (a.startsWith('-')) throw usageError(`unknown option ${a}\n${HELP}`); return true; },
  });
  if (o.help) { process.stdout.write(HELP + '\n'); return 0; }
  const root = path.resolve(o.root ?? '/');
  const at = (p: string) => path.join(root, p);
  const plan = loadPlan({ config: o.config, root, cmdline: '' });
  let procCmdline = '';
  try { procCmdline = fs.readFileSync(at('/proc/cmdline'), 'utf8').trim(); } catch { /* no /proc under --root */ }
  const files = kexecFiles(plan, os.release(), { root, procCmdline });
  const kernel = o.kernel ?? at(files.kernel);
  const initrd = o.initrd ?? at(files.initrd);
  if (!fs.existsSync(kernel)) throw new LastwordError('EESTIMATE_FILE', `${kernel} does not exist; give --kernel`);
  if (!fs.existsSync(initrd)) throw new LastwordError('EESTIMATE_FILE', `${initrd} does not exist; build it (lastword initramfs) or give --initrd`);
  const head = Buffer.alloc(0x264);
  const fd = fs.openSync(kernel, 'r');
  fs.readSync(fd, head, 0, head.length, 0);
  fs.closeSync(fd);
  const initSize = bzImageInitSize(head);
  const image = await initramfsFootprint(initrd);
  const parts: EstimateParts = {
    // Without a bzImage header (an ELF vmlinux), 3 x the file size, kdumpctl's rule for the unknown.
    kernel: initSize ?? 3 * fs.statSync(kernel).size,
    initramfsCompressed: image.compressedBytes,
    initramfsUnpacked: image.unpackedBytes,
    lastword: LASTWORD_RUNTIME + FILTER_BUFFERS,
    kernelRuntime: KERNEL_RUNTIME,
  };
  const rec = recommend(parts);
  const reserved = readReservation(root).crashSize;
  let memTotal = 0;
  try { memTotal = Number(/^MemTotal:\s+(\d+) kB/m.exec(fs.readFileSync(at('/proc/meminfo'), 'utf8'))?.[1] ?? 0) * 1024; } catch { /* no /proc */ }
  const w = (n: number) => formatMiB(n).padStart(10);
  const out = [
    `Reserved crashkernel:    ${reserved ? formatMiB(reserved) : 'none'}`,
    `Recommended crashkernel: ${formatMiB(rec)} (crashkernel=${rec / MiB}M)${memTotal ? ` for ${formatMiB(memTotal)} of RAM; the cyclic filter's needs do not grow with it` : ''}`,
    '',
    `  kernel          ${w(parts.kernel)}  ${initSize !== undefined ? 'init_size of' : '3 x the size of'} ${kernel}`,
    `  initramfs       ${w(parts.initramfsCompressed)}  compressed ${initrd}, held while unpacked (freed before lastword runs)`,
    `                  ${w(parts.initramfsUnpacked)}  unpacked, pinned in rootfs (${image.entries} entries; largest ${image.largest.slice(0, 2).map(([n, s]) => `${n} ${formatMiB(s)}`).join(', ')})`,
    `  lastword        ${w(parts.lastword)}  Node runtime while saving + the filter's bounded buffers (counted instead of the compressed image when larger)`,
    `  kernel runtime  ${w(parts.kernelRuntime)}  slab, page tables, driver and network buffers`,
  ];
  if (reserved && reserved < rec) out.push('', `WARNING: the reservation is ${formatMiB(rec - reserved)} short: the capture may run out of memory. Set crashkernel=${rec / MiB}M.`);
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}
