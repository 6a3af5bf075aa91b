// `lastword filter`: makedumpfile's command line, so a kdump.conf `core_collector makedumpfile -l
// --message-level 7 -d 31` or Debian's MAKEDUMP_ARGS="-c -d 31" work with the command swapped.
//   lastword filter [-c|-l|-p|-z] [-d N] [-E] [-f] [--num-threads N] VMCORE DUMPFILE
//   lastword filter -F [options] VMCORE            flattened dump to stdout
//   lastword filter -R DUMPFILE < FLATTENED         reassemble
//   lastword filter --dump-dmesg VMCORE FILE
import { once } from 'node:events';
import * as fs from 'node:fs';
import minimist from 'minimist';
import { describeError, usageError } from '../errors.ts';
import { extractDmesg } from '../dmesg/index.ts';
import { usableCodec, type CodecName } from '../codecs/codec.ts';
import { defaultWorkers } from '../codecs/pool.ts';
import { writeElfDump } from '../dumpfile/elf-writer.ts';
import { reassemble } from '../dumpfile/flattened.ts';
import { writeKdumpCompressed, type DumpHeaderInfo, type DumpSummary } from '../dumpfile/kdump-writer.ts';
import { unreadableMessage } from '../dumpfile/kdump-layout.ts';
import { openDumpFile } from '../dumpfile/local-sink.ts';
import { FilePositionalSink, WritableStreamSink } from '../targets/target.ts';
import { DumpOutput } from '../dumpfile/output.ts';
import { ramPageFilter } from '../dumpfile/ram-filter.ts';
import { crashFirstOrder } from '../filter/crash-first.ts';
import { unclassifiedMessage, type PageFilter } from '../filter/types.ts';
import { openVmcore, physBase, readUtsname } from '../vmcore/index.ts';
import type { Vmcore } from '../vmcore/types.ts';
import { writeStderr } from '../system/stderr.ts';

export const USAGE = `usage: lastword filter [-c|-l|-p|-z] [-d LEVEL] [-E] [-f] [--num-threads N] [--message-level N] VMCORE DUMPFILE
       lastword filter -F [options] VMCORE [DUMPFILE]   (flattened, to stdout without DUMPFILE)
       lastword filter -R DUMPFILE < FLATTENED
       lastword filter --dump-dmesg VMCORE FILE
       lastword filter --try PROGRAM [options] ...     PROGRAM (makedumpfile) first, lastword if it fails
  -d LEVEL  dump level 0-31 (1 zero, 2 cache, 4 cache+private, 8 user, 16 free pages)
  -c zlib, -l lzo, -p snappy, -z zstd; none: uncompressed kdump-compressed
  -E ELF output   -F flattened output   -f overwrite DUMPFILE
  --cyclic-buffer KB  accepted as makedumpfile's: its cyclic path (no partial last pages)
  --non-mmap  read /proc/vmcore with read() instead of mapping it
  --mmap      map the vmcore even when it is a file, not /proc/vmcore (a page that cannot be
              read then faults on the load, as a memory error in /proc/vmcore does; caught)
  --crash-first  write first the pages crash needs to open the dump (kernel data, per-CPU
              areas, page tables, stacks, kernel text and modules, slab), so a dump cut short still
              opens; the same pages as without it, in another order (lastword save always does
              this). With -E the PT_LOADs are cut where those pages begin and end
  makedumpfile's --non-cyclic, --work-dir DIR, --splitblock-size N, -b ORDER, -D are accepted and change nothing`;

// makedumpfile options that change nothing here are accepted, so its argument lists (kdump-tools'
// MAKEDUMP_ARGS through hooks/kdump-tools/makedumpfile) work unchanged.
const BOOLEANS = ['c', 'l', 'p', 'z', 'E', 'F', 'R', 'f', 'dump-dmesg', 'help', 'non-mmap', 'mmap', 'non-cyclic', 'D', 'crash-first'];
const STRINGS = ['d', 'message-level', 'num-threads', 'try', 'cyclic-buffer', 'work-dir', 'splitblock-size', 'b'];

export interface FilterOptions {
  dumpLevel: number;
  codec: CodecName;
  elf: boolean;
  flatten: boolean;
  reassemble: boolean;
  dumpDmesg: boolean;
  overwrite: boolean;
  messageLevel: number;
  workers: number;
  /** --try PROGRAM: run PROGRAM with the other arguments first (hooks/kdump-tools/makedumpfile). */
  tryProgram: string | undefined;
  /** --cyclic-buffer given: makedumpfile then stays on its cyclic path. */
  cyclicBuffer: boolean;
  /** --non-mmap: read the vmcore with read() even when it is /proc/vmcore. */
  nonMmap: boolean;
  /** --mmap: read the vmcore through mappings even when it is a file. */
  mmap: boolean;
  /** --crash-first: page data in runtime/filter/crash-first.ts's order (kdump-compressed and ELF). */
  crashFirst: boolean;
  args: string[];
}

/** makedumpfile's options -> FilterOptions; unknown options and bad values are usage errors. */
export function parseFilterArgs(argv: string[]): FilterOptions | 'help' {
  let unknown: string | undefined;
  const o = minimist(argv, {
    boolean: BOOLEANS, string: STRINGS,
    unknown: (a) => { if (a.startsWith('-') && unknown === undefined) unknown = a; return !a.startsWith('-'); },
  });
  if (unknown !== undefined) throw usageError(`unknown option ${unknown}\n${USAGE}`);
  if (o.help) return 'help';
  const int = (name: string, v: unknown, min: number, max: number, dflt: number): number => {
    if (v === undefined) return dflt;
    const s = String(Array.isArray(v) ? v.at(-1) : v);
    if (!/^\d+$/.test(s) || Number(s) < min || Number(s) > max) throw usageError(`-${name.length > 1 ? '-' : ''}${name} wants a number ${min}..${max}, not ${JSON.stringify(s)}`);
    return Number(s);
  };
  const codecs = (['c', 'l', 'p', 'z'] as const).filter((k) => o[k]);
  if (codecs.length > 1) throw usageError(`choose one compression: ${codecs.map((k) => '-' + k).join(' ')}`);
  const codec: CodecName = codecs.length ? ({ c: 'zlib', l: 'lzo', p: 'snappy', z: 'zstd' } as const)[codecs[0]!] : 'none';
  if (o.E && codecs.length) throw usageError(`-E (ELF) cannot be compressed (-${codecs[0]})`);
  if (o.mmap && o['non-mmap']) throw usageError('--mmap and --non-mmap contradict each other');
  return {
    dumpLevel: int('d', o.d, 0, 31, 0),
    codec,
    elf: o.E,
    flatten: o.F,
    reassemble: o.R,
    dumpDmesg: o['dump-dmesg'],
    overwrite: o.f,
    messageLevel: int('message-level', o['message-level'], 0, 31, 7),
    workers: int('num-threads', o['num-threads'], 0, 256, defaultWorkers()),
    tryProgram: o.try === undefined ? undefined : String(Array.isArray(o.try) ? o.try.at(-1) : o.try),
    cyclicBuffer: o['cyclic-buffer'] !== undefined && int('cyclic-buffer', o['cyclic-buffer'], 1, 2 ** 31, 0) > 0,
    nonMmap: o['non-mmap'],
    mmap: o.mmap,
    crashFirst: o['crash-first'],
    args: o._.map(String),
  };
}

export async function run(argv: string[]): Promise<number> {
  const opts = parseFilterArgs(argv);
  if (opts === 'help') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (opts.tryProgram !== undefined) {
    const { tryProgramFirst } = await import('./filter-try.ts');
    return tryProgramFirst(opts, argv);
  }
  return runFilter(opts);
}

/** The filter itself; `continueStream`: stdout already carries another writer's flattened header. */
export async function runFilter(opts: FilterOptions, continueStream = false): Promise<number> {
  const log = (level: number, msg: string) => { if (opts.messageLevel & level) writeStderr(msg + '\n'); };
  if (opts.reassemble) {
    if (opts.args.length !== 1) throw usageError(`-R takes one DUMPFILE and reads the flattened dump from stdin\n${USAGE}`);
    const file = opts.args[0]!;
    const sink = new FilePositionalSink(openDumpFile(file, opts.overwrite), file, { fsync: false });
    try {
      await reassemble(process.stdin, (b, off) => sink.pwrite(b, off), 'stdin');
      await sink.close();
    } catch (err) {
      await sink.abort();
      throw err;
    }
    log(4, `The dumpfile is saved to ${file}.`);
    return 0;
  }
  if (opts.dumpDmesg) {
    if (opts.args.length !== 2) throw usageError(`--dump-dmesg takes VMCORE and FILE\n${USAGE}`);
    return dumpDmesg(opts, (m) => log(1, `lastword filter: warning: ${m}`));
  }
  const [vmcoreFile, dumpFile] = opts.args;
  if (opts.args.length > 2 || vmcoreFile === undefined || (dumpFile === undefined && !opts.flatten)) {
    throw usageError(`expected VMCORE and DUMPFILE (or -F to write to stdout)\n${USAGE}`);
  }
  // makedumpfile's report (message level bit 16): how long each step took, start-up included.
  let stepStart = 0;
  const step = (name: string) => {
    const now = process.uptime() * 1000;     // since the process started; performance.now() would load perf_hooks
    log(16, `STEP [${name.padEnd(27)}] : ${((now - stepStart) / 1000).toFixed(6)} seconds`);
    stepStart = now;
  };
  step('Start-up (to the vmcore)');
  const vmcore = openVmcore(vmcoreFile, { allowTruncated: true, ...mmapChoice(opts) });
  try {
    if (vmcore.mappedReads) log(4, `lastword filter: reading ${vmcoreFile} through mappings of it`);
    for (const p of vmcore.problems) log(1, `lastword filter: warning: ${p}`);
    // Pass 1 walks mem_map on this thread and on as many more as compression will use (idle until pass 2).
    const filter = await choosePageFilter(vmcore, opts.dumpLevel, (m) => log(1, m), { cyclicBuffer: opts.cyclicBuffer, walkThreads: 1 + opts.workers });
    const fellBackAtStart = filter.fallbackReason;
    const output = dumpFile === undefined
      ? new DumpOutput(stdoutSink(), { streamStarted: continueStream })
      : new DumpOutput(opts.flatten
        ? fileStreamSink(openDumpFile(dumpFile, opts.overwrite), dumpFile)
        // kdump-compressed: written from this thread, as makedumpfile writes (see FilePositionalSink);
        // the ELF writer overlaps a chunk's write with the next one's read, so its writes stay async.
        : new FilePositionalSink(openDumpFile(dumpFile, opts.overwrite), dumpFile, { fsync: false, sync: !opts.elf }));
    const headerInfo = dumpHeaderInfo(vmcore, (m) => log(1, m));
    let summary: DumpSummary;
    const codec = usableCodec(opts.codec, (m) => log(1, `lastword filter: warning: ${m}`));      // 'none' with -E
    const order = opts.crashFirst ? crashFirstOrder(vmcore, (m) => log(1, `lastword filter: warning: ${m}`)) : undefined;
    if (opts.elf) {
      summary = await writeElfDump({ vmcore, filter, output, step, order });
    } else {
      summary = await writeKdumpCompressed({ vmcore, filter, output, codec, headerInfo, workers: opts.workers, step, order });
    }
    const how = opts.elf ? 'ELF' : `${codec}, ${opts.workers ? `${opts.workers} compression threads` : 'compressed in the main thread'}`;
    log(4, `lastword filter: ${summary.dumpablePages} of ${summary.ramPages} pages saved (dump level ${filter.dumpLevel}${summary.zeroPages ? `, ${summary.zeroPages} zero` : ''}), ${summary.bytes} bytes (${how})`);
    if (summary.unreadable) log(1, `lastword filter: warning: ${unreadableMessage(vmcoreFile, summary.unreadable)}`);
    if (filter.unclassified) log(1, `lastword filter: warning: ${unclassifiedMessage(filter.unclassified)}`);
    // The walk of mem_map can fail part-way (a struct page that is not mapped): the cycles from there
    // on are saved unfiltered. The header keeps the level of the cycles before; say so.
    if (filter.fallbackReason !== undefined && filter.fallbackReason !== fellBackAtStart) {
      log(1, `lastword filter: warning: pages could not be classified from some pfn on (${filter.fallbackReason}); those were saved unfiltered`);
    }
    if (dumpFile !== undefined) log(4, `The dumpfile is saved to ${dumpFile}.`);
    return 0;
  } finally {
    vmcore.close();
  }
}

/**
 * The page filter for a dump level. At every level, levels 0 and 1 included, the mem_map is walked
 * as makedumpfile's create_2nd_bitmap does when VMCOREINFO has NUMBER(PG_hwpoison): hwpoison and
 * logically offline pages (PageOffline: balloons, hot-unplug) are never saved. When the filter
 * cannot classify pages the dump is still written with every page (level 0, or 1: zero pages are
 * found while writing), and a warning says why.
 */
export async function choosePageFilter(vmcore: Vmcore, dumpLevel: number, warn: (m: string) => void, opts: PartialPageOptions = {}): Promise<PageFilter> {
  vmcore.partialPages = !opts.cyclicBuffer && makedumpfileOneCycle(vmcore.maxMapnr, opts.memFree ?? memFree());
  const fallback = (reason: string): PageFilter => {
    if ((dumpLevel & ~1) === 0) {
      warn(`lastword filter: warning: hwpoison and offline pages cannot be excluded (${reason}); saving every page`);
      return ramPageFilter(vmcore, dumpLevel, reason);
    }
    // The header then says level 0: the dump holds every page, whatever was asked for.
    warn(`lastword filter: warning: dump level ${dumpLevel} not possible (${reason}); saving every page`);
    return ramPageFilter(vmcore, 0, reason);
  };
  try {
    const { createPageFilter } = await import('../filter/index.ts');
    const f = createPageFilter(vmcore, dumpLevel, { walkThreads: opts.walkThreads });
    return f.fallbackReason === undefined ? f : fallback(f.fallbackReason);
  } catch (err) {
    return fallback(describeError(err));
  }
}

export interface PartialPageOptions {
  /** makedumpfile's --cyclic-buffer was given: it stays on its cyclic path. */
  cyclicBuffer?: boolean;
  /** MemFree in bytes; default: /proc/meminfo's. */
  memFree?: number;
  /** Threads for the mem_map walk (PageFilterOptions.walkThreads). */
  walkThreads?: number;
}

/**
 * Whether makedumpfile (initial(), calculate_cyclic_buffer_size) would do this vmcore in one cycle
 * with its bitmaps in a temporary file: when both bitmaps of the PT_LOADs' max_mapnr fit exactly in
 * min(4 MiB, 60% of MemFree). Only then does it keep a PT_LOAD's partial last page
 * (create_1st_bitmap_file; the cyclic create_bitmap_from_memhole rounds it away), so lastword,
 * which always works in cycles, follows the same choice to write the same pages.
 */
export function makedumpfileOneCycle(maxMapnr: number, memFreeBytes: number): boolean {
  const bitmapSize = Math.floor((maxMapnr * 2) / 8);
  const bufsize = Math.min(Math.floor(memFreeBytes * 0.6), 4 * 1024 * 1024, bitmapSize);
  return bufsize * 8 >= maxMapnr * 2;
}

function memFree(): number {
  try {
    return Number(/^MemFree:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** utsname, crash time and phys_base for the header; the dump is still written when memory is unreadable. */
export function dumpHeaderInfo(vmcore: Vmcore, warn: (m: string) => void): DumpHeaderInfo {
  let utsname: Buffer;
  try {
    utsname = readUtsname(vmcore).raw;
  } catch (err) {
    warn(`lastword filter: warning: cannot read init_uts_ns (${describeError(err)}); header utsname from VMCOREINFO`);
    utsname = Buffer.alloc(390);
    const put = (i: number, s: string) => utsname.write(s.slice(0, 64), i * 65, 'latin1');
    put(0, 'Linux');
    put(2, vmcore.vmcoreinfo.osrelease ?? '');
    put(4, 'x86_64');
  }
  return { utsname, crashTime: vmcore.vmcoreinfo.crashTime ?? 0, physBase: physBase(vmcore) };
}

/** --non-mmap / --mmap as openVmcore's option; neither: its default (map /proc/vmcore only). */
function mmapChoice(opts: FilterOptions): { mmap?: boolean } {
  return opts.nonMmap ? { mmap: false } : opts.mmap ? { mmap: true } : {};
}

/** makedumpfile --dump-dmesg: the kernel log of the vmcore, as makedumpfile prints it. */
async function dumpDmesg(opts: FilterOptions, warn: (message: string) => void): Promise<number> {
  const [vmcoreFile, out] = [opts.args[0]!, opts.args[1]!];
  const overwrite = opts.overwrite;
  const vmcore = openVmcore(vmcoreFile, mmapChoice(opts));
  try {
    const text = extractDmesg(vmcore, { warn });
    const fd = openDumpFile(out, overwrite);
    try {
      fs.writeSync(fd, text);
    } finally {
      fs.closeSync(fd);
    }
    return 0;
  } finally {
    vmcore.close();
  }
}

/** The flattened stream to stdout: flushed at the end, never ended (the process may write more). */
export function stdoutSink(): WritableStreamSink {
  return new WritableStreamSink(process.stdout, 'stdout', () => new Promise<void>((resolve) => process.stdout.write('', () => resolve())));
}

/** The flattened stream kept in a file (-F DUMPFILE). */
function fileStreamSink(fd: number, file: string): WritableStreamSink {
  const stream = fs.createWriteStream('', { fd });
  return new WritableStreamSink(stream, file, async () => {
    stream.end();
    await once(stream, 'finish');
  });
}
