// The core collector: `core_collector makedumpfile -l --message-level 7 -d 31` (Fedora) or
// MAKEDUMP_ARGS="-c -d 31" (Debian) become filter options. lastword does the collector's job
// itself, so only the options that change the dump matter; makedumpfile options that make no
// sense here (-x, -i, --split...) are reported as warnings, never fatal, so an existing config
// always still gives a dump.
import { LastwordError } from '../errors.ts';
import { sourceAt, type Codec, type CoreCollector, type PlanWarning, type SourceRef } from './plan.ts';
import { splitShellWords } from './shell.ts';

// makedumpfile's getopt_long string (makedumpfile.c main): options that take an argument.
const SHORT_WITH_ARG = new Set(['b', 'd', 'g', 'i', 'L', 'x']);
const SHORT_FLAGS = new Set(['c', 'l', 'p', 'z', 'E', 'F', 'f', 'D', 'e', 'X', 'R', 'v', 'h']);
const LONG_WITH_ARG = new Set([
  'message-level', 'num-threads', 'cyclic-buffer', 'work-dir', 'eppic', 'splitblock-size', 'config',
  'exclude-xen-dom', 'vtop',
]);
// Long options that do not change the dump content or that we ignore with a note.
const LONG_IGNORED = new Set(['non-cyclic', 'mem-usage', 'check-params', 'debug', 'work-dir', 'splitblock-size', 'num-threads']);

export interface CollectorResult {
  collector: CoreCollector;
  warnings: PlanWarning[];
}

function bad(source: SourceRef, what: string): never {
  const at = sourceAt(source);
  throw new LastwordError('ECONFIG_COLLECTOR', `${at}: ${what}`, { where: { ...source } });
}

function parseLevel(text: string, source: SourceRef): number {
  // makedumpfile -d accepts a single level 0-31 (old comma lists like "1,2" are gone since 1.6).
  if (!/^\d+$/.test(text)) bad(source, `dump level '${text}' is not a number 0-31`);
  const n = Number(text);
  if (n > 31) bad(source, `dump level ${n} is out of range 0-31`);
  return n;
}

/** Parses makedumpfile's options (everything after the program name). */
export function parseMakedumpfileArgs(args: string[], source: SourceRef, program: CoreCollector['program'] = 'makedumpfile'): CollectorResult {
  const warnings: PlanWarning[] = [];
  const warn = (message: string) => warnings.push({ ...source, message });
  let dumpLevel = 0; // makedumpfile's own default when -d is missing
  let codec: Codec = 'none';
  let elf = false;
  let flattened = false;
  let force = false;
  let messageLevel: number | undefined;
  let numThreads: number | undefined;
  let cyclicBuffer = false;
  let nonMmap = false;
  let sawLevel = false;
  const setCodec = (c: Codec) => {
    if (codec !== 'none' && codec !== c) warn(`more than one compression option; using ${c}`);
    codec = c;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq);
      let value: string | undefined = eq < 0 ? undefined : a.slice(eq + 1);
      if (LONG_WITH_ARG.has(name) && value === undefined) {
        value = args[++i];
        if (value === undefined) bad(source, `makedumpfile option --${name} needs a value`);
      }
      switch (name) {
        case 'message-level': {
          const n = Number(value);
          if (!Number.isInteger(n) || n < 0 || n > 31) bad(source, `--message-level '${value}' is not 0-31`);
          messageLevel = n;
          break;
        }
        case 'num-threads': {
          const n = Number(value);
          if (!Number.isInteger(n) || n < 0) bad(source, `--num-threads '${value}' is not a count`);
          numThreads = n;
          break;
        }
        case 'cyclic-buffer': {
          // makedumpfile then stays on its cyclic path, which never saves a PT_LOAD's partial last page.
          const n = Number(value);
          if (!Number.isInteger(n) || n < 0) bad(source, `--cyclic-buffer '${value}' is not a size in KiB`);
          if (n > 0) cyclicBuffer = true;
          break;
        }
        case 'non-mmap':
          nonMmap = true;
          break;
        case 'dump-dmesg':
          bad(source, '--dump-dmesg in a core collector would save only the kernel log, not the dump');
        case 'split':
          warn('--split is not supported: one dump file is written');
          break;
        case 'reassemble':
          bad(source, '--reassemble is not a collector option');
        default:
          if (LONG_IGNORED.has(name)) break;
          warn(`makedumpfile option --${name} is ignored by lastword`);
      }
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const o = a[j]!;
        if (SHORT_WITH_ARG.has(o)) {
          let value = a.slice(j + 1);
          if (value === '') {
            value = args[++i] ?? '';
            if (value === '') bad(source, `makedumpfile option -${o} needs a value`);
          }
          if (o === 'd') { dumpLevel = parseLevel(value, source); sawLevel = true; }
          else if (o === 'x' || o === 'i' || o === 'g') warn(`-${o} ${value}: lastword reads the layout from VMCOREINFO; ignored`);
          else warn(`makedumpfile option -${o} is ignored by lastword`);
          break;
        }
        if (!SHORT_FLAGS.has(o)) bad(source, `unknown makedumpfile option -${o}`);
        switch (o) {
          case 'c': setCodec('zlib'); break;
          case 'l': setCodec('lzo'); break;
          case 'p': setCodec('snappy'); break;
          case 'z': setCodec('zstd'); break;
          case 'E': elf = true; break;
          case 'F': flattened = true; break;
          case 'f': force = true; break;
          case 'R': bad(source, '-R (reassemble) is not a collector option');
            default: warn(`makedumpfile option -${o} is ignored by lastword`);
        }
      }
      continue;
    }
    // Positional words: makedumpfile's own collector lines carry no file names (kdump.sh adds them).
    warn(`'${a}' in the core collector is ignored: lastword chooses the input and output files`);
  }
  if (!sawLevel) warn('no -d dump level given: makedumpfile then saves every page (level 0)');
  if (elf && codec !== 'none') {
    warn('-E (ELF) cannot be compressed; the compression option is ignored');
    codec = 'none';
  }
  return {
    collector: {
      program, args, dumpLevel, codec, format: elf ? 'elf' : 'kdump', flattened, force, messageLevel, numThreads,
      ...(cyclicBuffer ? { cyclicBuffer } : {}), ...(nonMmap ? { nonMmap } : {}), source,
    },
    warnings,
  };
}

/**
 * Parses a whole kdump.conf core_collector value: `makedumpfile ...`, `cp`, `scp`, or
 * `lastword filter ...`. cp/scp copy every page as an ELF file (level 0, uncompressed).
 */
export function parseCoreCollector(value: string, source: SourceRef): CollectorResult {
  const words = splitShellWords(value, source.file, source.line);
  const prog = (words[0] ?? '').split('/').pop() ?? '';
  if (prog === 'makedumpfile') return parseMakedumpfileArgs(words.slice(1), source, 'makedumpfile');
  if (prog === 'lastword') {
    const rest = words[1] === 'filter' ? words.slice(2) : words.slice(1);
    return parseMakedumpfileArgs(rest, source, 'lastword');
  }
  if (prog === 'cp' || prog === 'scp') {
    const warnings: PlanWarning[] = words.length > 1 ? [{ ...source, message: `arguments of '${prog}' are ignored` }] : [];
    return {
      collector: {
        program: prog, args: words.slice(1), dumpLevel: 0, codec: 'none', format: 'elf', flattened: false, force: false, source,
      },
      warnings,
    };
  }
  if (prog === '') bad(source, 'core_collector has no command');
  bad(source, `core_collector '${prog}' is not supported (makedumpfile, cp or scp)`);
}
