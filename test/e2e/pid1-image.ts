// The smallest image that boots lastword as PID 1: the executable as /init, the shared libraries
// its ELF names (and those of its native addons), /dev/console and /dev/null (Node aborts at start
// without usable fds 0-2, and an aborting init panics the kernel), and empty mount points.
// Used by test/e2e/pid1.ci.test.ts and to measure sizes and the memory floor for the README.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeCpioFile, type CpioCompression, type CpioEntry } from '../../initramfs/cpio.ts';
import { resolveLibraries } from '../../initramfs/libraries.ts';
import { repo } from '../support/lab.ts';

export function pid1Entries(executable: string): CpioEntry[] {
  const entries: CpioEntry[] = [
    { type: 'file', path: 'init', source: executable, mode: 0o755 },
    { type: 'char', path: 'dev/console', mode: 0o600, major: 5, minor: 1 },
    { type: 'char', path: 'dev/null', mode: 0o666, major: 1, minor: 3 },
  ];
  const dirs = new Set(['dev', 'proc', 'sys', 'run', 'tmp']);
  const files = new Map<string, string>();
  const native = path.join(repo, 'build', 'native');
  const programs = [executable, ...fs.readdirSync(native).filter((f) => f.endsWith('.node')).map((f) => path.join(native, f))];
  for (const program of programs) {
    const r = resolveLibraries(program);
    for (const lib of [...(r.interpreter ? [r.interpreter] : []), ...r.libraries]) files.set(lib, lib);
  }
  for (const lib of files.keys()) {
    for (let d = path.dirname(lib); d !== '/'; d = path.dirname(d)) dirs.add(d.slice(1));
    // the host path may be a symlink (libstdc++.so.6 -> .6.0.30): the image gets the file itself
    entries.push({ type: 'file', path: lib, source: fs.realpathSync(lib), mode: 0o755 });
  }
  for (const d of dirs) entries.push({ type: 'dir', path: d, mode: d === 'tmp' ? 0o1777 : 0o755 });
  return entries;
}

export async function buildPid1Image(executable: string, out: string, compression: CpioCompression, level?: number): Promise<string> {
  await writeCpioFile(pid1Entries(executable), out, { compression, level });
  return out;
}
