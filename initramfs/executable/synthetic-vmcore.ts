// Small synthetic ELF vmcores built in code: the vmcore the executable's code caches are trained on
// (train.ts), and the tests' cases a real crash cannot produce on demand (page tables pointing
// outside memory, damaged headers). Layout as the kernel writes it.
import * as fs from 'node:fs';

export interface SyntheticLoad {
  paddr: number;
  vaddr: bigint;
  data: Buffer;          // p_filesz = data.length
  memSize?: number;      // defaults to data.length
}

function note(name: string, type: number, desc: Buffer): Buffer {
  const nameBuf = Buffer.alloc((name.length + 1 + 3) & ~3);
  nameBuf.write(name, 'latin1');
  const hdr = Buffer.alloc(12);
  hdr.writeUInt32LE(name.length + 1, 0);
  hdr.writeUInt32LE(desc.length, 4);
  hdr.writeUInt32LE(type, 8);
  const pad = Buffer.alloc(((desc.length + 3) & ~3) - desc.length);
  return Buffer.concat([hdr, nameBuf, desc, pad]);
}

/**
 * Writes an ELF64 ET_CORE file with one PT_NOTE (nrCpus CORE notes + VMCOREINFO) and the loads.
 * `qemuXnum`: QEMU's layout for many segments: one section header at offset 64 whose sh_info holds
 * the program header count, e_phnum = PN_XNUM, program headers after it.
 */
export function writeSyntheticVmcore(file: string, vmcoreinfo: string, loads: SyntheticLoad[], nrCpus = 1, qemuXnum = false): void {
  const notes = Buffer.concat([
    ...Array.from({ length: nrCpus }, () => note('CORE', 1, Buffer.alloc(336))),
    note('VMCOREINFO', 0, Buffer.from(vmcoreinfo, 'latin1')),
  ]);
  const phnum = 1 + loads.length;
  const ehdr = Buffer.alloc(64);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]).copy(ehdr, 0);
  ehdr.writeUInt16LE(4, 16);   // ET_CORE
  ehdr.writeUInt16LE(62, 18);  // EM_X86_64
  ehdr.writeUInt32LE(1, 20);
  const phoff = qemuXnum ? 128 : 64;
  ehdr.writeBigUInt64LE(BigInt(phoff), 32);
  ehdr.writeUInt16LE(64, 52);
  ehdr.writeUInt16LE(56, 54);
  ehdr.writeUInt16LE(qemuXnum ? 0xffff : phnum, 56);
  const shdr = Buffer.alloc(qemuXnum ? 64 : 0);
  if (qemuXnum) {
    ehdr.writeBigUInt64LE(64n, 40);   // e_shoff
    ehdr.writeUInt16LE(64, 58);       // e_shentsize
    ehdr.writeUInt16LE(1, 60);        // e_shnum
    shdr.writeUInt32LE(phnum, 44);    // sh_info
  }
  const phdrs = Buffer.alloc(56 * phnum);
  let offset = 4096;
  const put = (i: number, type: number, off: number, vaddr: bigint, paddr: number, filesz: number, memsz: number) => {
    const o = i * 56;
    phdrs.writeUInt32LE(type, o);
    phdrs.writeUInt32LE(7, o + 4);
    phdrs.writeBigUInt64LE(BigInt(off), o + 8);
    phdrs.writeBigUInt64LE(vaddr, o + 16);
    phdrs.writeBigUInt64LE(BigInt(paddr), o + 24);
    phdrs.writeBigUInt64LE(BigInt(filesz), o + 32);
    phdrs.writeBigUInt64LE(BigInt(memsz), o + 40);
  };
  put(0, 4, offset, 0n, 0, notes.length, notes.length);
  offset += (notes.length + 4095) & ~4095;
  const body: Buffer[] = [notes, Buffer.alloc(((notes.length + 4095) & ~4095) - notes.length)];
  loads.forEach((l, i) => {
    put(i + 1, 1, offset, l.vaddr, l.paddr, l.data.length, l.memSize ?? l.data.length);
    body.push(l.data);
    offset += l.data.length;
  });
  const head = Buffer.concat([ehdr, shdr, phdrs]);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.alloc(4096 - head.length), ...body]));
}
