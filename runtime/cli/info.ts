// `lastword info DUMP`: what a kdump-compressed dump holds (ours or makedumpfile's): the header,
// a VMCOREINFO summary, page counts per class, the codec and whether the dump is complete. Also an
// ELF dump (makedumpfile -E, ours) or a vmcore (/proc/vmcore, a copy): its PT_LOADs, VMCOREINFO and
// whether it is flagged (e_flags DUMP_ELF_INCOMPLETE) or cut short.
import * as fs from 'node:fs';
import minimist from 'minimist';
import { describeError, LastwordError, usageError } from '../errors.ts';
import { openKdumpFile, type KdumpReader } from '../dumpfile/kdump-reader.ts';
import { PAGE_DESC_SIZE, compressionName } from '../dumpfile/kdump-layout.ts';
import { DUMP_ELF_INCOMPLETE } from '../dumpfile/elf-writer.ts';
import { openVmcore, readUtsname, type Utsname } from '../vmcore/index.ts';
import { loadDataEndPfn } from '../vmcore/types.ts';

export const USAGE = 'usage: lastword info [--json] DUMPFILE';

export interface DumpInfo {
  file: string;
  format: 'kdump-compressed' | 'ELF';
  /** kdump-compressed only. */
  headerVersion?: number;
  codec: string;
  incomplete: boolean;
  /** kdump-compressed only: an ELF dump does not record it. */
  dumpLevel?: number;
  osrelease?: string;
  utsRelease: string;
  nodename: string;
  machine: string;
  crashTime?: number;
  pageSize: number;
  nrCpus: number;
  maxMapnr: number;
  pages: {
    ram: number;        // 1st bitmap
    dumpable: number;   // 2nd bitmap: page_descs
    excluded: number;   // RAM the filter left out
    zero: number;       // dumpable pages stored as the shared zero page
    compressed: number;
    raw: number;
    missing: number;    // page_descs never written, or ELF data past the end of the file (incomplete dumps)
  };
  bytes: { data: number };
}

export function describeDump(dump: KdumpReader): DumpInfo {
  const info = dump.vmcoreinfo;
  const field = (i: number) => {
    const b = dump.header.utsname.subarray(i * 65, (i + 1) * 65);
    const nul = b.indexOf(0);
    return b.toString('latin1', 0, nul < 0 ? b.length : nul);
  };
  let ram = 0;
  const chunk = 1 << 20;
  const bm = Buffer.alloc(chunk / 8);
  for (let pfn = 0; pfn < dump.maxMapnr; pfn += chunk) {
    dump.readBitmap(1, pfn, bm);
    const bytes = Math.min(bm.length, Math.ceil((dump.maxMapnr - pfn) / 8));
    for (let i = 0; i < bytes; i++) for (let v = bm[i]!; v; v &= v - 1) ram++;
  }
  // Zero pages all point at the one shared zero page, the first item of the page data.
  const zeroOffset = dump.offsetPageData;
  const sharedZero = (dump.subHeader.dumpLevel & 1) !== 0;
  let zero = 0, compressed = 0, raw = 0, missing = 0, data = 0;
  const per = Math.floor((1 << 20) / PAGE_DESC_SIZE);
  // A file cut short (a copy or transfer that stopped) lacks the descs and the data past its end:
  // those pages are missing, as in an ELF dump cut short, though the header was never flagged.
  const descsInFile = Math.max(0, Math.min(dump.dumpablePages, Math.floor((dump.fileSize - dump.geometry.offsetPageDesc) / PAGE_DESC_SIZE)));
  missing += dump.dumpablePages - descsInFile;
  for (let i = 0; i < descsInFile; i += per) {
    const n = Math.min(per, descsInFile - i);
    const descs = dump.pageDescs(i, n);
    for (let j = 0; j < n; j++) {
      const at = j * PAGE_DESC_SIZE;
      const offset = Number(descs.readBigInt64LE(at));
      const size = descs.readUInt32LE(at + 8);
      const flags = descs.readUInt32LE(at + 12);
      if ((offset === 0 && size === 0) || offset + size > dump.fileSize) missing++;
      else if (sharedZero && offset === zeroOffset && flags === 0) zero++;
      else {
        if (flags !== 0) compressed++; else raw++;
        data += size;
      }
    }
  }
  return {
    file: dump.file,
    format: 'kdump-compressed',
    headerVersion: dump.header.headerVersion,
    codec: compressionName(dump.header.status),
    incomplete: dump.incomplete || missing > 0,
    dumpLevel: dump.subHeader.dumpLevel,
    osrelease: info.osrelease,
    utsRelease: field(2),
    nodename: field(1),
    machine: field(4),
    crashTime: info.crashTime ?? (dump.header.timestampSec > 0n ? Number(dump.header.timestampSec) : undefined),
    pageSize: info.pageSize ?? dump.pageSize,
    nrCpus: dump.header.nrCpus,
    maxMapnr: dump.maxMapnr,
    pages: { ram, dumpable: dump.dumpablePages, excluded: ram - dump.dumpablePages, zero, compressed, raw, missing },
    bytes: { data },
  };
}

/**
 * An ELF dump or vmcore: RAM = the pages of its PT_LOADs' p_memsz, dumpable = those of p_filesz
 * (the rest were excluded), missing = dumpable pages whose bytes (some of them) lie past the end of
 * the file.
 */
export function describeElf(file: string): DumpInfo {
  const v = openVmcore(file, { allowTruncated: true });
  try {
    const B = v.pageSize;
    const st = fs.fstatSync(v.fd!);
    const size = st.isFile() && st.size > 0 ? st.size : Infinity;    // /proc/vmcore has its size; a device may say 0
    const eh = Buffer.alloc(64);
    fs.readSync(v.fd!, eh, 0, eh.length, 0);
    let ram = 0, dumpable = 0, missing = 0, data = 0;
    for (const l of v.loads) {
      // Pages as makedumpfile's 1st bitmap counts them (a partial last page of p_memsz is not one).
      const first = Math.floor(l.paddr / B);
      ram += Math.max(0, Math.floor((l.paddr + l.memSize) / B) - first);
      const withData = Math.max(0, loadDataEndPfn(l, B, false) - first);
      dumpable += withData;
      const present = Math.max(0, Math.min(l.fileSize, size - l.offset));
      data += present;
      if (present < l.fileSize) missing += withData - Math.min(withData, Math.max(0, Math.floor((l.paddr + present) / B) - first));
    }
    let uts: Utsname | undefined;
    try {
      uts = readUtsname(v);
    } catch { /* memory not in the dump: VMCOREINFO's release still names the kernel */ }
    const flagged = (eh.readUInt32LE(48) & DUMP_ELF_INCOMPLETE) !== 0;
    return {
      file,
      format: 'ELF',
      codec: 'none',
      incomplete: flagged || missing > 0,
      osrelease: v.vmcoreinfo.osrelease,
      utsRelease: uts?.release ?? v.vmcoreinfo.osrelease ?? '',
      nodename: uts?.nodename ?? '',
      machine: uts?.machine ?? 'x86_64',
      crashTime: v.vmcoreinfo.crashTime,
      pageSize: B,
      nrCpus: v.nrCpus,
      maxMapnr: v.maxMapnr,
      pages: { ram, dumpable, excluded: ram - dumpable, zero: 0, compressed: 0, raw: dumpable - missing, missing },
      bytes: { data },
    };
  } finally {
    v.close();
  }
}

export function formatInfo(i: DumpInfo): string {
  const mib = (pages: number) => `${(pages * i.pageSize / 1048576).toFixed(1)} MiB`;
  const elf = i.format === 'ELF';
  const lines = [
    `file:           ${i.file}`,
    `format:         ${i.format}${elf ? '' : ` (header version ${i.headerVersion})`}${i.incomplete ? ' INCOMPLETE' : ''}`,
    `status:         ${!i.incomplete ? 'complete'
      : elf ? `incomplete: ${i.pages.missing ? 'cut short, pages past the end of the file are missing' : 'flagged in e_flags (pages the vmcore could not give are zeros)'}`
      : `incomplete: ${i.pages.missing ? `${i.pages.missing} pages missing (never written, or past the end of the file)` : 'flagged'}; they read as unavailable`}`,
    `compression:    ${i.codec}`,
    `dump level:     ${i.dumpLevel ?? 'not recorded (ELF)'}`,
    `release:        ${i.osrelease ?? i.utsRelease}`,
    `node:           ${i.nodename || 'unknown'}  machine: ${i.machine}  cpus: ${i.nrCpus}`,
    `crash time:     ${i.crashTime !== undefined ? new Date(i.crashTime * 1000).toISOString() : 'unknown'}`,
    `page size:      ${i.pageSize}`,
    `max_mapnr:      ${i.maxMapnr}`,
    `pages:`,
    `  ram           ${i.pages.ram} (${mib(i.pages.ram)})`,
    `  dumpable      ${i.pages.dumpable} (${mib(i.pages.dumpable)})`,
    `  excluded      ${i.pages.excluded}`,
    `  zero          ${i.pages.zero}`,
    `  compressed    ${i.pages.compressed}`,
    `  raw           ${i.pages.raw}`,
  ];
  if (i.pages.missing) lines.push(`  not written   ${i.pages.missing}`);
  lines.push(`page data:      ${i.bytes.data} bytes`);
  return lines.join('\n') + '\n';
}

export async function run(argv: string[]): Promise<number> {
  let unknown: string | undefined;
  const o = minimist(argv, { boolean: ['json', 'help'], unknown: (a) => { if (a.startsWith('-')) unknown ??= a; return !a.startsWith('-'); } });
  if (unknown !== undefined) throw usageError(`unknown option ${unknown}\n${USAGE}`);
  if (o.help) { process.stdout.write(USAGE + '\n'); return 0; }
  if (o._.length !== 1) throw usageError(USAGE);
  const file = String(o._[0]);
  const info = isElf(file) ? describeElf(file) : withKdumpFile(file, describeDump);
  process.stdout.write(o.json ? JSON.stringify(info, null, 2) + '\n' : formatInfo(info));
  return 0;
}

function withKdumpFile<T>(file: string, use: (dump: KdumpReader) => T): T {
  const dump = openKdumpFile(file);
  try {
    return use(dump);
  } finally {
    dump.close();
  }
}

/** Starts with the ELF magic (anything else goes to the kdump-compressed reader, which names what it found). */
function isElf(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const b = Buffer.alloc(4);
    return fs.readSync(fd, b, 0, 4, 0) === 4 && b.toString('latin1') === '\x7fELF';
  } catch (err) {
    // Node's EISDIR ("illegal operation on a directory, read") does not name the file
    throw new LastwordError('EDUMP_OPEN', `${file}: cannot read it: ${(err as NodeJS.ErrnoException).code ?? describeError(err)}`, { where: { file }, cause: err });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
