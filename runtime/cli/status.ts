// `lastword status`: is a capture kernel loaded, and how much memory crashkernel= reserved
// (/sys/kernel/kexec_crash_loaded, /sys/kernel/kexec_crash_size). Exit 0 when loaded, 3 when not
// (kdumpctl status: "Kdump is not operational").
import * as fs from 'node:fs';
import * as path from 'node:path';
import minimist from 'minimist';
import { usageError } from '../errors.ts';
import { formatMiB, type Reservation } from './kexec.ts';

const HELP = `usage: lastword status [--root DIR]

Prints whether a capture kernel is loaded and the crashkernel= reservation.
Exit status: 0 loaded, 3 not loaded.`;

export function readReservation(root = '/'): Reservation {
  const read = (f: string): string => {
    try { return fs.readFileSync(path.join(root, f), 'utf8').trim(); } catch { return '0'; }
  };
  return { crashSize: Number(read('/sys/kernel/kexec_crash_size')) || 0, loaded: read('/sys/kernel/kexec_crash_loaded') === '1' };
}

export async function run(argv: string[]): Promise<number> {
  const o = minimist(argv, {
    string: ['root'], boolean: ['help'], alias: { h: 'help' },
    unknown: (a) => { if (a.startsWith('-')) throw usageError(`unknown option ${a}\n${HELP}`); return true; },
  });
  if (o.help) { process.stdout.write(HELP + '\n'); return 0; }
  const r = readReservation(path.resolve(o.root ?? '/'));
  process.stdout.write(`capture kernel: ${r.loaded ? 'loaded' : 'not loaded'}\n`);
  process.stdout.write(`reservation:    ${r.crashSize ? formatMiB(r.crashSize) : 'none (no crashkernel= on the kernel command line)'}\n`);
  return r.loaded ? 0 : 3;
}
