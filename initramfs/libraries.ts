// The shared libraries a program needs, from its ELF DT_NEEDED entries (and those of every library
// it pulls in), without running ldd: ldd executes the program's interpreter, which is wrong for a
// binary of another machine and unsafe for an untrusted one. Reads only the ELF and program
// headers and the dynamic section, never the whole file (the lastword executable is ~100 MiB).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LastwordError } from '../runtime/errors.ts';

// elf.h
const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;

export interface DynamicInfo {
  /** PT_INTERP, e.g. /lib64/ld-linux-x86-64.so.2; undefined for static programs and libraries */
  interpreter?: string;
  needed: string[];
  /** DT_RUNPATH or DT_RPATH directories, $ORIGIN not expanded */
  runpath: string[];
}

/** Reads `length` bytes at `offset`; fewer at end of file. */
export type ReadAt = (offset: number, length: number) => Buffer;

/** Parses the dynamic section of an ELF64 little-endian file. A static program gives no entries. */
export function parseDynamic(readAt: ReadAt, file: string): DynamicInfo {
  const eh = readAt(0, 64);
  if (eh.length < 64 || eh.readUInt32BE(0) !== 0x7f454c46) {
    throw new LastwordError('EELF_MAGIC', `${file}: not an ELF file`, { where: { file, offset: 0 } });
  }
  if (eh[4] !== 2 || eh[5] !== 1) {
    throw new LastwordError('EELF_CLASS', `${file}: only 64-bit little-endian ELF is supported`, { where: { file, offset: 4 } });
  }
  const phoff = Number(eh.readBigUInt64LE(32));
  const phentsize = eh.readUInt16LE(54);
  const phnum = eh.readUInt16LE(56);
  const ph = readAt(phoff, phentsize * phnum);
  const loads: Array<{ vaddr: bigint; offset: bigint; filesz: bigint }> = [];
  let dynamic: { offset: number; size: number } | undefined;
  let interpreter: string | undefined;
  for (let i = 0; i < phnum; i++) {
    const o = i * phentsize;
    const type = ph.readUInt32LE(o);
    const offset = ph.readBigUInt64LE(o + 8);
    const vaddr = ph.readBigUInt64LE(o + 16);
    const filesz = ph.readBigUInt64LE(o + 32);
    if (type === PT_LOAD) loads.push({ vaddr, offset, filesz });
    else if (type === PT_DYNAMIC) dynamic = { offset: Number(offset), size: Number(filesz) };
    else if (type === PT_INTERP) interpreter = cString(readAt(Number(offset), Number(filesz)), 0);
  }
  if (!dynamic) return { interpreter, needed: [], runpath: [] };
  const dyn = readAt(dynamic.offset, dynamic.size);
  const neededOffsets: bigint[] = [];
  const runpathOffsets: bigint[] = [];
  let strtab: bigint | undefined;
  for (let o = 0; o + 16 <= dyn.length; o += 16) {
    const tag = dyn.readBigInt64LE(o);
    const val = dyn.readBigUInt64LE(o + 8);
    if (tag === DT_NULL) break;
    if (tag === DT_NEEDED) neededOffsets.push(val);
    else if (tag === DT_STRTAB) strtab = val;
    else if (tag === DT_RUNPATH || tag === DT_RPATH) runpathOffsets.push(val);
  }
  if (strtab === undefined) {
    if (neededOffsets.length) throw new LastwordError('EELF_DYNAMIC', `${file}: DT_NEEDED without DT_STRTAB`, { where: { file, offset: dynamic.offset } });
    return { interpreter, needed: [], runpath: [] };
  }
  // DT_STRTAB is a virtual address: find the PT_LOAD segment that maps it.
  const seg = loads.find((l) => strtab! >= l.vaddr && strtab! < l.vaddr + l.filesz);
  if (!seg) throw new LastwordError('EELF_DYNAMIC', `${file}: DT_STRTAB 0x${strtab.toString(16)} is outside every PT_LOAD segment`, { where: { file } });
  const strOff = Number(strtab - seg.vaddr + seg.offset);
  const str = (v: bigint): string => cString(readAt(strOff + Number(v), 4096), 0);
  return {
    interpreter,
    needed: neededOffsets.map(str),
    runpath: runpathOffsets.flatMap((v) => str(v).split(':').filter(Boolean)),
  };
}

function cString(buf: Buffer, at: number): string {
  const end = buf.indexOf(0, at);
  return buf.toString('latin1', at, end < 0 ? buf.length : end);
}

export function readDynamicFile(file: string): DynamicInfo {
  const fd = fs.openSync(file, 'r');
  try {
    return parseDynamic((offset, length) => {
      const buf = Buffer.alloc(length);
      const n = fs.readSync(fd, buf, 0, length, offset);
      return buf.subarray(0, n);
    }, file);
  } finally {
    fs.closeSync(fd);
  }
}

/** The multiarch and legacy directories ld.so searches on Debian x86_64 (ld.so.conf + built-in). */
export const DEFAULT_LIBRARY_DIRS = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64', '/usr/lib64', '/lib', '/usr/lib'];

/** The first of `dirs` that holds `name` (a soname), as ld.so searches them; undefined if none does. */
export function findLibrary(name: string, dirs: readonly string[] = DEFAULT_LIBRARY_DIRS, exists: (file: string) => boolean = fs.existsSync): string | undefined {
  return dirs.map((d) => path.join(d, name)).find(exists);
}

export interface ResolvedLibraries {
  /** the interpreter of the program, as named in PT_INTERP */
  interpreter?: string;
  /** absolute paths of every library needed, transitively, sorted */
  libraries: string[];
}

/**
 * Resolves DT_NEEDED transitively. `root` prefixes every lookup (a sysroot); the returned paths are
 * as seen inside it. A library that cannot be found is an error: the image would not start.
 */
export function resolveLibraries(program: string, opts: { root?: string; dirs?: readonly string[]; embedded?: boolean } = {}): ResolvedLibraries {
  const root = opts.root ?? '/';
  const dirs = opts.dirs ?? DEFAULT_LIBRARY_DIRS;
  const at = (p: string) => path.join(root, p);
  const first = readDynamicFile(program);
  const found = new Map<string, string>();
  const queue: Array<{ name: string; from: string; runpath: string[] }> = first.needed.map((name) => ({ name, from: program, runpath: first.runpath }));
  if (opts.embedded) {
    for (const e of embeddedObjects(program)) queue.push(...e.needed.map((name) => ({ name, from: `${program} (object at offset ${e.offset})`, runpath: [] })));
  }
  while (queue.length) {
    const { name, from, runpath } = queue.shift()!;
    if (found.has(name)) continue;
    const origin = path.dirname(from);
    const exists = (c: string) => fs.existsSync(at(c));
    const hit = name.includes('/') ? (exists(name) ? name : undefined)
      : findLibrary(name, [...runpath.map((d) => d.replace(/\$\{?ORIGIN\}?/g, origin)), ...dirs], exists);
    if (!hit) {
      throw new LastwordError('ELIBRARY_MISSING', `${name} (needed by ${from}) is in none of ${dirs.join(', ')}`, { where: { file: from } });
    }
    found.set(name, hit);
    const info = readDynamicFile(at(hit));
    for (const n of info.needed) queue.push({ name: n, from: hit, runpath: info.runpath });
  }
  return { interpreter: first.interpreter, libraries: [...new Set(found.values())].sort() };
}

/**
 * Shared objects embedded in a file: the lastword executable carries its native addons (codecs,
 * system) as assets and writes them out at run time, so their DT_NEEDED libraries (libz, liblzo2,
 * libsnappy, libzstd...) must be in the image too although the executable itself does not name
 * them. Finds every 64-bit little-endian x86_64 ET_DYN ELF header inside the file after offset 0.
 */
export function embeddedObjects(file: string): Array<{ offset: number; needed: string[] }> {
  const fd = fs.openSync(file, 'r');
  const out: Array<{ offset: number; needed: string[] }> = [];
  try {
    const size = fs.fstatSync(fd).size;
    const chunk = Buffer.alloc(8 << 20);
    const magic = Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
    for (let base = 0; base < size; base += chunk.length - magic.length) {
      const n = fs.readSync(fd, chunk, 0, chunk.length, base);
      let i = chunk.subarray(0, n).indexOf(magic, base === 0 ? 1 : 0);
      while (i >= 0 && i + 64 <= n) {
        const offset = base + i;
        // e_type ET_DYN (3), e_machine EM_X86_64 (62)
        if (chunk.readUInt16LE(i + 16) === 3 && chunk.readUInt16LE(i + 18) === 62) {
          try {
            const info = parseDynamic((o, l) => {
              const b = Buffer.alloc(l);
              return b.subarray(0, fs.readSync(fd, b, 0, l, offset + o));
            }, `${file}@${offset}`);
            if (info.needed.length) out.push({ offset, needed: info.needed });
          } catch { /* bytes that only look like an ELF header */ }
        }
        i = chunk.subarray(0, n).indexOf(magic, i + 1);
      }
      if (n < chunk.length) break;
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}
