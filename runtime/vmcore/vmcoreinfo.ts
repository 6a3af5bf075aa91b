// VMCOREINFO: the KEY=value text the crashed kernel leaves in its notes (kernel/vmcore_info.c).
// Parsed the way makedumpfile reads it, so both tools see the same numbers.
import { LastwordError } from '../errors.ts';
import type { Vmcoreinfo } from './types.ts';

/**
 * Parses the note text. Unknown keys are kept in `raw`. A malformed line is left out and named in
 * `problems` (the caller warns): a key nothing needs (kallsyms_*, CRASHTIME...) must not cost the
 * dump, and a needed one is then missing, which each stage handles (the filter saves every page).
 */
export function parseVmcoreinfo(text: string, file = 'VMCOREINFO'): Vmcoreinfo {
  const info: Vmcoreinfo = {
    text,
    symbol: new Map(),
    size: new Map(),
    offset: new Map(),
    length: new Map(),
    number: new Map(),
    raw: new Map(),
    problems: [],
  };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    // The note is NUL-padded to its descriptor size.
    const line = lines[i].replace(/\0+$/, '');
    if (line === '') continue;
    const eq = line.indexOf('=');
    if (eq <= 0) {
      info.problems.push(damaged(file, i + 1, `line without KEY=value: ${JSON.stringify(line.slice(0, 60))}`));
      continue;
    }
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    // makedumpfile takes a key's first line (it searches the note for "KEY="): so does lastword.
    if (info.raw.has(key)) {
      info.problems.push(damaged(file, i + 1, `${key} again; the first one is used`));
      continue;
    }
    info.raw.set(key, value);
    try {
      parseLine(info, key, value, file, i + 1);
    } catch (err) {
      if (!(err instanceof LastwordError)) throw err;
      info.problems.push(err.oneLine());
    }
  }
  return info;
}

function parseLine(info: Vmcoreinfo, key: string, value: string, file: string, line: number): void {
  const m = /^(SYMBOL|SIZE|OFFSET|LENGTH|NUMBER)\((.+)\)$/.exec(key);
  if (m) {
    const [, kind, name] = m;
    switch (kind) {
      case 'SYMBOL': info.symbol.set(name, parseHex(value, file, line, key)); break;
      case 'SIZE': info.size.set(name, Number(parseNumber(value, file, line, key))); break;
      case 'OFFSET': info.offset.set(name, Number(parseNumber(value, file, line, key))); break;
      case 'LENGTH': info.length.set(name, Number(parseNumber(value, file, line, key))); break;
      case 'NUMBER': info.number.set(name, parseNumber(value, file, line, key)); break;
    }
    return;
  }
  switch (key) {
    case 'OSRELEASE': info.osrelease = value; break;
    case 'PAGESIZE': info.pageSize = Number(parseNumber(value, file, line, key)); break;
    case 'CRASHTIME': info.crashTime = Number(parseNumber(value, file, line, key)); break;
    case 'KERNELOFFSET': info.kernelOffset = parseHex(value, file, line, key); break;
    case 'BUILD-ID': info.buildId = value; break;
  }
}

// SYMBOL() and KERNELOFFSET are printed with %lx: hex without 0x.
function parseHex(value: string, file: string, line: number, key: string): bigint {
  const v = value.replace(/^0x/i, '');
  if (!/^[0-9a-fA-F]+$/.test(v)) throw damagedError(file, line, `${key} is not hex: ${JSON.stringify(value)}`);
  return BigInt('0x' + v);
}

// NUMBER/OFFSET/SIZE/LENGTH: signed decimal, or hex when the decimal parse does not consume the
// whole value (makedumpfile's strtol-then-base-16 fallback; some arch code prints 0x...).
function parseNumber(value: string, file: string, line: number, key: string): bigint {
  if (/^-?\d+$/.test(value)) return BigInt(value);
  const hex = /^(-?)(?:0x)?([0-9a-fA-F]+)$/i.exec(value);
  if (hex) return (hex[1] ? -1n : 1n) * BigInt('0x' + hex[2]);
  throw damagedError(file, line, `${key} is not a number: ${JSON.stringify(value)}`);
}

function damaged(file: string, line: number, what: string): string {
  return damagedError(file, line, what).oneLine();
}

function damagedError(file: string, line: number, what: string): LastwordError {
  return new LastwordError('EVMCOREINFO_DAMAGED', `VMCOREINFO line ${line}: ${what}`, { where: { file, line } });
}

/** A key the caller cannot work without; throws EVMCOREINFO_KEY naming it. */
export function requireKey<T>(map: Map<string, T>, kind: string, name: string, file?: string): T {
  const v = map.get(name);
  if (v === undefined) {
    throw new LastwordError('EVMCOREINFO_KEY', `VMCOREINFO has no ${kind}(${name})`, { where: { file } });
  }
  return v;
}
