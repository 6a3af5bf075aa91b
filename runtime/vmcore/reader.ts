// openVmcore: the ELF64 core of a crashed kernel (/proc/vmcore or a copy of it) as a `Vmcore`.
// Only headers and notes are kept in memory; page data is read on demand with pread.
import * as fs from 'node:fs';
import { LastwordError } from '../errors.ts';
import {
  EHDR_SIZE, NT_PRSTATUS, PHDR_SIZE, PN_XNUM, PT_LOAD, PT_NOTE, SHDR_SIZE,
  parseElfHeader, parseNotes, findVmcoreinfoNote, parseProgramHeaders,
} from './elf.ts';
import type { ProgramHeader } from './elf.ts';
import { loadDataEndPfn, type LoadSegment, type Vmcore, type Vmcoreinfo } from './types.ts';
import { parseVmcoreinfo } from './vmcoreinfo.ts';
import { mappedReadFault, onProcfs, readMapped, unmapVmcore } from '../system/vmcore-mmap.ts';

/**
 * Why a read of vmcore pages failed when the failure is the data's own (a bad sector, /proc/vmcore
 * unable to copy a page: the rest of the vmcore may still read), else undefined. The same errors as
 * the codecs addon's pageDataError (codecs.cc), and the end of the file.
 */
export function pageReadFailure(err: unknown): string | undefined {
  if (err instanceof LastwordError) return err.code === 'EVMCORE_TRUNCATED' ? 'the vmcore file ends before it' : undefined;
  const e = err as NodeJS.ErrnoException | undefined;
  if (typeof e?.code === 'string' && PAGE_DATA_ERRORS.has(e.code)) return `${e.code} (errno ${Math.abs(e.errno ?? 0)})`;
  return undefined;
}
const PAGE_DATA_ERRORS = new Set(['EIO', 'ENXIO', 'EFAULT', 'ENOMEM', 'ENODATA', 'EHWPOISON']);

/** __START_KERNEL_map (arch/x86/include/asm/page_64_types.h): kernel image mappings start here. */
export const START_KERNEL_MAP = 0xffffffff80000000n;

export interface OpenVmcoreOptions {
  /**
   * Accept PT_LOADs that reach past the end of the file (an ELF dump cut short for `lastword info`,
   * a vmcore copy that stopped for `lastword filter`); reads there fail with EVMCORE_TRUNCATED, which
   * the writers count as unreadable pages (zeros or unavailable, the dump flagged incomplete).
   */
  allowTruncated?: boolean;
  /** Read through mappings (vmcore-mmap.ts); default: when the file is on procfs (/proc/vmcore). */
  mmap?: boolean;
}

export function openVmcore(file: string, opts: OpenVmcoreOptions = {}): Vmcore {
  const fd = fs.openSync(file, 'r');
  const mapped = opts.mmap ?? onProcfs(file);
  try {
    return new ElfVmcore(file, fd, opts.allowTruncated ?? false, mapped);
  } catch (err) {
    // The window must not outlive the fd: the next file opened may get the same fd number.
    if (mapped) unmapVmcore();
    fs.closeSync(fd);
    throw err;
  }
}

class ElfVmcore implements Vmcore {
  readonly file: string;
  readonly pageSize: number;
  readonly maxMapnr: number;
  readonly notes: Buffer;
  readonly vmcoreinfoDescOffset: number;
  readonly vmcoreinfoDescSize: number;
  readonly vmcoreinfo: Vmcoreinfo;
  readonly problems: readonly string[];
  readonly nrCpus: number;
  readonly loads: readonly LoadSegment[];
  readonly kernelText: readonly LoadSegment[];
  fd: number;
  // Sorted by paddr for binary search; the last hit is remembered since reads are mostly sequential.
  private lastLoad = 0;

  /** Reads go through mappings of the file (cleared when a mapping fails: then pread). */
  mappedReads: boolean;
  private readonly openedMapped: boolean;

  constructor(file: string, fd: number, allowTruncated: boolean, mapped: boolean) {
    this.file = file;
    this.fd = fd;
    this.mappedReads = mapped;
    this.openedMapped = mapped;
    const st = fs.fstatSync(fd);
    // /proc/vmcore and regular files report their size; devices may say 0 (then trust headers).
    const fileSize = st.isFile() && st.size > 0 ? st.size : Infinity;

    const ehdr = parseElfHeader(this.pread(Buffer.alloc(EHDR_SIZE), 0, true), file);
    let phnum = ehdr.phnum;
    if (phnum === PN_XNUM) {
      // More than 0xfffe program headers (QEMU, large guests): the real count is sh_info of section 0.
      if (ehdr.shoff === 0) {
        throw new LastwordError('EVMCORE_HEADER', `${file}: e_phnum is PN_XNUM but there is no section header`, { where: { file, offset: 56 } });
      }
      phnum = this.pread(Buffer.alloc(SHDR_SIZE), ehdr.shoff, true).readUInt32LE(44);
    }
    if (ehdr.phoff + phnum * PHDR_SIZE > fileSize) {
      throw truncated(file, `program headers end at offset 0x${(ehdr.phoff + phnum * PHDR_SIZE).toString(16)}`, fileSize);
    }
    const phdrs = parseProgramHeaders(this.pread(Buffer.alloc(phnum * PHDR_SIZE), ehdr.phoff, true), phnum, file, ehdr.phoff);

    // Notes: /proc/vmcore has one merged PT_NOTE; QEMU writes one per CPU plus VMCOREINFO.
    const noteParts: Buffer[] = [];
    const noteProblems: string[] = [];
    let vmcoreinfoAt = -1;
    let vmcoreinfoSize = 0;
    let cpus = 0;
    let noteBase = 0;
    for (const ph of phdrs) {
      if (ph.type !== PT_NOTE || ph.fileSize === 0) continue;
      if (ph.offset + ph.fileSize > fileSize) throw truncated(file, `PT_NOTE ends at offset 0x${(ph.offset + ph.fileSize).toString(16)}`, fileSize);
      const part = this.pread(Buffer.alloc(ph.fileSize), ph.offset, true);
      const notes = parseNotes(part, file, ph.offset, noteProblems);
      if (noteProblems.length && !notes.some((n) => n.name === 'VMCOREINFO')) {
        const found = findVmcoreinfoNote(part);
        if (found) { notes.push(found); noteProblems.push(`${file}: VMCOREINFO note found by its name at offset 0x${(ph.offset + found.descOffset).toString(16)}`); }
      }
      for (const note of notes) {
        if (note.name === 'CORE' && note.type === NT_PRSTATUS) cpus++;
        if (note.name === 'VMCOREINFO' && vmcoreinfoAt < 0) {
          vmcoreinfoAt = noteBase + note.descOffset;
          vmcoreinfoSize = note.descSize;
        }
      }
      noteParts.push(part);
      noteBase += part.length;
    }
    this.notes = Buffer.concat(noteParts);
    this.nrCpus = cpus;
    if (vmcoreinfoAt < 0) {
      throw new LastwordError('EVMCOREINFO_MISSING', `${file}: no VMCOREINFO note in the PT_NOTE segment(s)`, { where: { file } });
    }
    this.vmcoreinfoDescOffset = vmcoreinfoAt;
    this.vmcoreinfoDescSize = vmcoreinfoSize;
    this.vmcoreinfo = parseVmcoreinfo(this.notes.toString('latin1', vmcoreinfoAt, vmcoreinfoAt + vmcoreinfoSize), file);
    const problems = [...noteProblems, ...this.vmcoreinfo.problems];
    this.problems = problems;
    this.pageSize = this.vmcoreinfo.pageSize ?? 4096;
    // x86_64's pages are 4 KiB; a damaged PAGESIZE (0, 9999) would size every buffer and header.
    if (!Number.isInteger(this.pageSize) || this.pageSize < 4096 || this.pageSize > 65536 || (this.pageSize & (this.pageSize - 1)) !== 0) {
      problems.push(`VMCOREINFO PAGESIZE=${this.pageSize} is not a page size; using 4096 (${file})`);
      this.pageSize = 4096;
    }

    const all = phdrs.filter((p) => p.type === PT_LOAD);
    if (all.length === 0) throw new LastwordError('EVMCORE_HEADER', `${file}: no PT_LOAD segments`, { where: { file } });
    for (const [i, p] of all.entries()) {
      if (p.offset + p.fileSize > fileSize && !allowTruncated) {
        throw truncated(file, `PT_LOAD ${i} (paddr 0x${p.paddr.toString(16)}, ${p.fileSize} bytes) ends at offset 0x${(p.offset + p.fileSize).toString(16)}`, fileSize);
      }
      // The kernel writes p_memsz >= p_filesz; a damaged smaller one would hide data the file has.
      if (p.memSize < p.fileSize) {
        problems.push(`${file}: PT_LOAD ${i} (paddr 0x${p.paddr.toString(16)}) has p_memsz ${p.memSize} < p_filesz ${p.fileSize}; taken as ${p.fileSize}`);
        p.memSize = p.fileSize;
      }
    }
    const segment = (p: ProgramHeader): LoadSegment => ({ paddr: p.paddr, vaddr: p.vaddr, offset: p.offset, fileSize: p.fileSize, memSize: p.memSize });
    this.loads = dedupeLoads(all).map(segment);
    this.kernelText = all.filter((p) => p.vaddr >= START_KERNEL_MAP && p.fileSize > 0).map(segment);
    const top = Math.max(...all.map((p) => p.paddr + p.memSize));
    this.maxMapnr = Math.ceil(top / this.pageSize);
  }

  readPages(pfn: number, count: number, into: Buffer): void {
    this.readRange(pfn * this.pageSize, count * this.pageSize, into, false);
  }

  pageSpans(pfn: number, count: number, add: (fileOffset: number, bytes: number) => void): void {
    this.fileSpans(pfn * this.pageSize, count * this.pageSize, add);
  }

  fileSpans(paddr: number, length: number, add: (fileOffset: number, bytes: number) => void): void {
    const end = paddr + length;
    let pa = paddr;
    while (pa < end) {
      const i = this.findLoad(pa);
      const l = i >= 0 ? this.loads[i] : undefined;
      if (l && pa < l.paddr + l.fileSize) {
        const n = Math.min(end - pa, l.paddr + l.fileSize - pa);
        add(l.offset + (pa - l.paddr), n);
        pa += n;
        continue;
      }
      const n = Math.min(end - pa, this.holeEnd(pa, l) - pa);
      add(-1, n);
      pa += n;
    }
  }

  readPhys(paddr: number, length: number, into?: Buffer): Buffer {
    const buf = into ?? Buffer.allocUnsafe(length);
    this.readRange(paddr, length, buf, true);
    return buf;
  }

  partialPages = false;

  // makedumpfile's 1st bitmap (loadDataEndPfn).
  pfnHasData(pfn: number): boolean {
    const ps = this.pageSize;
    const i = this.findLoad(pfn * ps);
    if (i < 0) return false;
    const l = this.loads[i];
    return pfn >= Math.floor(l.paddr / ps) && pfn < loadDataEndPfn(l, ps, this.partialPages);
  }

  close(): void {
    if (this.openedMapped) unmapVmcore();      // before the fd goes: its number may name another file next
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }

  /** Index of the load whose [paddr, paddr+memSize) holds pa, else -1. */
  private findLoad(pa: number): number {
    const loads = this.loads;
    const c = loads[this.lastLoad];
    if (c && pa >= c.paddr && pa < c.paddr + c.memSize) return this.lastLoad;
    let lo = 0;
    let hi = loads.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const l = loads[mid];
      if (pa < l.paddr) hi = mid - 1;
      else if (pa >= l.paddr + l.memSize) lo = mid + 1;
      else return (this.lastLoad = mid);
    }
    return -1;
  }

  // Copies [paddr, paddr+length) into buf, zero-filling holes; `strict` throws on a hole instead.
  private readRange(paddr: number, length: number, buf: Buffer, strict: boolean): void {
    let done = 0;
    while (done < length) {
      const pa = paddr + done;
      const i = this.findLoad(pa);
      const l = i >= 0 ? this.loads[i] : undefined;
      if (l && pa < l.paddr + l.fileSize) {
        const n = Math.min(length - done, l.paddr + l.fileSize - pa);
        this.pread(buf.subarray(done, done + n), l.offset + (pa - l.paddr), true);
        done += n;
        continue;
      }
      if (strict) {
        throw new LastwordError('EVMCORE_PADDR', `${this.file}: physical address 0x${pa.toString(16)} is not in the vmcore`, { where: { file: this.file } });
      }
      // A hole: up to the next load (or the end of the request).
      const n = Math.min(length - done, this.holeEnd(pa, l) - pa);
      buf.fill(0, done, done + n);
      done += n;
    }
  }

  /** Where the hole at `pa` ends: the end of its load's memSize, or the next load (Infinity: none). */
  private holeEnd(pa: number, l: LoadSegment | undefined): number {
    if (l) return l.paddr + l.memSize;
    const next = this.loads.find((x) => x.paddr > pa);
    return next ? next.paddr : Infinity;
  }

  private pread(buf: Buffer, position: number, exact: boolean): Buffer {
    if (this.mappedReads) {
      const r = readMapped(this.fd, buf, position);
      if (r === 0) return buf;
      if (r < -1) throw mappedReadFault(this.file, position, buf.length, -r);      // no pread of those bytes
      if (r > 0) this.mappedReads = false;      // mmap refused: read from here on
      // r === -1 (past the end of the file): pread says how much there is.
    }
    let got = 0;
    while (got < buf.length) {
      const n = fs.readSync(this.fd, buf, got, buf.length - got, position + got);
      if (n === 0) break;
      got += n;
    }
    if (exact && got < buf.length) {
      throw new LastwordError('EVMCORE_TRUNCATED', `${this.file}: truncated: wanted ${buf.length} bytes at offset 0x${position.toString(16)}, file ends after ${got}`, { where: { file: this.file, offset: position + got } });
    }
    return buf;
  }
}

/**
 * Drops the kernel-text PT_LOAD (p_vaddr in the __START_KERNEL_map region) where RAM PT_LOADs cover
 * it, one or several end to end (a dump's loads split where its pages were excluded): it repeats
 * memory that the direct-map loads already hold. What RAM does not cover (a dump without the RAM
 * load there) stays, as loads of its own, so the loads never overlap: the lookup by address needs
 * that. Sorted by paddr.
 */
export function dedupeLoads(loads: ProgramHeader[]): ProgramHeader[] {
  const ram = loads.filter((p) => p.vaddr < START_KERNEL_MAP).sort((a, b) => a.paddr - b.paddr);
  // The RAM loads' extents, adjacent ones joined.
  const covered: { start: number; end: number }[] = [];
  for (const r of ram) {
    const last = covered[covered.length - 1];
    if (last && r.paddr <= last.end) last.end = Math.max(last.end, r.paddr + r.memSize);
    else covered.push({ start: r.paddr, end: r.paddr + r.memSize });
  }
  const kept = [...ram];
  for (const t of loads.filter((p) => p.vaddr >= START_KERNEL_MAP)) {
    // The text load's parts outside `covered` (and outside text loads kept before it).
    let at = t.paddr;
    const end = t.paddr + t.memSize;
    const keep = (from: number, to: number) => {
      if (to <= from) return;
      const d = from - t.paddr;
      kept.push({ ...t, paddr: from, vaddr: BigInt.asUintN(64, t.vaddr + BigInt(d)), offset: t.offset + d, fileSize: Math.max(0, Math.min(t.fileSize - d, to - from)), memSize: to - from });
      covered.push({ start: from, end: to });
    };
    for (const c of [...covered].sort((x, y) => x.start - y.start)) {
      if (c.end <= at) continue;
      if (c.start >= end) break;
      keep(at, Math.min(c.start, end));
      at = Math.max(at, c.end);
    }
    keep(at, end);
  }
  return kept.sort((a, b) => a.paddr - b.paddr);
}

function truncated(file: string, what: string, fileSize: number): LastwordError {
  return new LastwordError('EVMCORE_TRUNCATED', `${file}: truncated: ${what}, but the file is ${fileSize} bytes`, { where: { file, offset: fileSize } });
}
