// ELF64 core headers and notes of a vmcore: /proc/vmcore (one merged PT_NOTE, then PT_LOADs), a
// vmcore file copied from it, or QEMU's dump-guest-memory output (section headers before the
// program headers, one PT_NOTE per CPU, e_phnum = PN_XNUM when there are many PT_LOADs).
import { LastwordError } from '../errors.ts';

// <elf.h>
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const ET_CORE = 4;
export const EM_X86_64 = 62;
export const PT_LOAD = 1;
export const PT_NOTE = 4;
export const PN_XNUM = 0xffff;
export const NT_PRSTATUS = 1;
export const EHDR_SIZE = 64;
export const PHDR_SIZE = 56;
export const SHDR_SIZE = 64;

export interface ElfHeader {
  machine: number;
  phoff: number;
  phnum: number;
  shoff: number;
  shnum: number;
}

export interface ProgramHeader {
  type: number;
  offset: number;
  vaddr: bigint;
  paddr: number;
  fileSize: number;
  memSize: number;
}

export interface ElfNote {
  name: string;
  type: number;
  /** Offset of the descriptor inside the buffer the notes were parsed from. */
  descOffset: number;
  descSize: number;
}

/** Parses the 64-byte ELF header; `sectionZeroInfo` supplies sh_info of section 0 for PN_XNUM. */
export function parseElfHeader(buf: Buffer, file: string): ElfHeader {
  if (buf.length < EHDR_SIZE) {
    throw new LastwordError('EVMCORE_TRUNCATED', `${file}: ${buf.length} bytes, shorter than an ELF header`, { where: { file, offset: 0 } });
  }
  if (buf.readUInt32BE(0) !== 0x7f454c46) {
    throw new LastwordError('EVMCORE_NOT_ELF', `${file}: bad ELF magic ${buf.subarray(0, 4).toString('hex')} at offset 0 (not a vmcore)`, { where: { file, offset: 0 } });
  }
  if (buf[4] !== ELFCLASS64 || buf[5] !== ELFDATA2LSB) {
    throw new LastwordError('EVMCORE_NOT_ELF', `${file}: not a little-endian ELF64 file (class ${buf[4]}, data ${buf[5]} at offset 4)`, { where: { file, offset: 4 } });
  }
  const type = buf.readUInt16LE(16);
  if (type !== ET_CORE) {
    throw new LastwordError('EVMCORE_NOT_ELF', `${file}: ELF e_type ${type} at offset 16 is not ET_CORE`, { where: { file, offset: 16 } });
  }
  const phentsize = buf.readUInt16LE(54);
  if (phentsize !== PHDR_SIZE) {
    throw new LastwordError('EVMCORE_NOT_ELF', `${file}: e_phentsize ${phentsize} at offset 54, expected ${PHDR_SIZE}`, { where: { file, offset: 54 } });
  }
  return {
    machine: buf.readUInt16LE(18),
    phoff: safeNumber(buf.readBigUInt64LE(32), file, 32),
    shoff: safeNumber(buf.readBigUInt64LE(40), file, 40),
    phnum: buf.readUInt16LE(56),
    shnum: buf.readUInt16LE(60),
  };
}

export function parseProgramHeaders(buf: Buffer, count: number, file: string, baseOffset: number): ProgramHeader[] {
  const out: ProgramHeader[] = [];
  for (let i = 0; i < count; i++) {
    const o = i * PHDR_SIZE;
    out.push({
      type: buf.readUInt32LE(o),
      offset: safeNumber(buf.readBigUInt64LE(o + 8), file, baseOffset + o + 8),
      vaddr: buf.readBigUInt64LE(o + 16),
      paddr: safeNumber(buf.readBigUInt64LE(o + 24), file, baseOffset + o + 24),
      fileSize: safeNumber(buf.readBigUInt64LE(o + 32), file, baseOffset + o + 32),
      memSize: safeNumber(buf.readBigUInt64LE(o + 40), file, baseOffset + o + 40),
    });
  }
  return out;
}

/**
 * Walks the notes of a PT_NOTE payload; stops at a zero header (padding after the last note). A
 * note that runs past the PT_NOTE ends the walk, keeping the notes before it (the dump needs only
 * VMCOREINFO, not every CPU's registers); a VMCOREINFO note that does so is cut at the PT_NOTE's
 * end. `problems` gets one message for either.
 */
export function parseNotes(buf: Buffer, file: string, fileOffset: number, problems: string[] = []): ElfNote[] {
  const notes: ElfNote[] = [];
  let o = 0;
  while (o + 12 <= buf.length) {
    const namesz = buf.readUInt32LE(o);
    const descsz = buf.readUInt32LE(o + 4);
    const type = buf.readUInt32LE(o + 8);
    if (namesz === 0 && descsz === 0) break;
    const nameAt = o + 12;
    const descAt = nameAt + align4(namesz);
    const end = descAt + align4(descsz);
    if (descAt + descsz > buf.length) {
      const where = `${file}: ELF note at offset 0x${(fileOffset + o).toString(16)} runs past its PT_NOTE (namesz ${namesz}, descsz ${descsz})`;
      if (namesz === VMCOREINFO_NAME.length && descAt < buf.length && buf.toString('latin1', nameAt, nameAt + namesz) === VMCOREINFO_NAME) {
        notes.push({ name: 'VMCOREINFO', type, descOffset: descAt, descSize: buf.length - descAt });
        problems.push(`${where}; its text is cut there`);
      } else {
        problems.push(`${where}; the notes after it are not read`);
      }
      break;
    }
    const name = buf.toString('latin1', nameAt, nameAt + namesz).replace(/\0+$/, '');
    notes.push({ name, type, descOffset: descAt, descSize: descsz });
    o = end;
  }
  return notes;
}

const VMCOREINFO_NAME = 'VMCOREINFO\0';

/**
 * The VMCOREINFO note found by its name alone, for a PT_NOTE whose walk broke off before it (a
 * damaged header earlier): the 12-byte header before the name gives its size, cut at the buffer's end.
 */
export function findVmcoreinfoNote(buf: Buffer): ElfNote | undefined {
  for (let at = buf.indexOf(VMCOREINFO_NAME, 12, 'latin1'); at >= 12; at = buf.indexOf(VMCOREINFO_NAME, at + 1, 'latin1')) {
    if (buf.readUInt32LE(at - 12) !== VMCOREINFO_NAME.length) continue;
    const descAt = at + align4(VMCOREINFO_NAME.length);
    if (descAt >= buf.length) return undefined;
    return { name: 'VMCOREINFO', type: buf.readUInt32LE(at - 4), descOffset: descAt, descSize: Math.min(buf.readUInt32LE(at - 8), buf.length - descAt) };
  }
  return undefined;
}

/** n rounded up to a multiple of 4, for any u32 (the bit trick wraps at 2^31). */
function align4(n: number): number {
  return Math.ceil(n / 4) * 4;
}

function safeNumber(v: bigint, file: string, offset: number): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new LastwordError('EVMCORE_HEADER', `${file}: ELF header value 0x${v.toString(16)} at offset 0x${offset.toString(16)} is out of range`, { where: { file, offset } });
  }
  return Number(v);
}
