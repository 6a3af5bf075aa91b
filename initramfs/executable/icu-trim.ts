// The pinned Node carries full ICU: a 33 MB data package (`icudt<N>_dat` in .rodata, 10.8 MB of
// the 35 MB zstd-compressed executable). A capture never formats dates or numbers for other
// locales, but the capture image holds every byte of the executable in the crashkernel
// reservation (compressed while the initramfs unpacks, then as a squashfs pinned in rootfs). Much
// as Node's own `small-icu` build (English only), the build keeps the root and `en` locales and
// zeroes the rest of the package in place: zero blocks cost nothing in the compressed image, and
// no code or offset in the binary moves.
//
// The package format is ICU's common data (source/common/ucmndata.h, UDataOffsetTOC): a data
// header, then a table of contents `count, {nameOffset, dataOffset}[count]` (offsets from the
// start of that table), the item names (sorted; ICU finds an item by binary search), and the
// items, each 16-byte aligned. An item's length is the distance to the next one; the last item
// ends where the package does.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { LastwordError } from '../../runtime/errors.ts';

export interface IcuItem {
  /** e.g. `icudt78l/coll/root.res` */
  name: string;
  /** offset of the item's bytes from the start of the package */
  offset: number;
  length: number;
}

const DATA_MAGIC = 0xda27; // ICU udata.h: MappedData magic bytes 0xda, 0x27
const ITEM_ALIGN = 16;

/** The data header of a common-data package starts at `at`: the magic bytes, then format `CmnD` at +12. */
function isCommonDataHeader(b: Buffer, at: number): boolean {
  return b[at + 2] === DATA_MAGIC >> 8 && b[at + 3] === (DATA_MAGIC & 0xff) && b.toString('latin1', at + 12, at + 16) === 'CmnD';
}

/** The items of an ICU common-data package (`pkg` holds exactly the package). */
export function icuItems(pkg: Buffer, where = 'ICU data'): IcuItem[] {
  const headerSize = pkg.readUInt16LE(0);
  if (!isCommonDataHeader(pkg, 0)) {
    throw new LastwordError('EICU_DATA', `${where}: not an ICU common data package (magic ${pkg.subarray(2, 4).toString('hex')}, format ${JSON.stringify(pkg.toString('latin1', 12, 16))} at offset 12)`, { where: { file: where, offset: 2 } });
  }
  const count = pkg.readUInt32LE(headerSize);
  const items: IcuItem[] = [];
  for (let i = 0; i < count; i++) {
    const nameOffset = headerSize + pkg.readUInt32LE(headerSize + 4 + 8 * i);
    const offset = headerSize + pkg.readUInt32LE(headerSize + 8 + 8 * i);
    const end = pkg.indexOf(0, nameOffset);
    items.push({ name: pkg.toString('latin1', nameOffset, end), offset, length: 0 });
  }
  for (let i = 0; i < items.length; i++) {
    const end = i + 1 < items.length ? items[i + 1]!.offset : pkg.length;
    if (end < items[i]!.offset || end > pkg.length) {
      throw new LastwordError('EICU_DATA', `${where}: item ${items[i]!.name} at offset ${items[i]!.offset} ends at ${end}, outside the ${pkg.length}-byte package`, { where: { file: where, offset: items[i]!.offset } });
    }
    items[i]!.length = end - items[i]!.offset;
  }
  return items;
}

/** A locale's bundle name: `en`, `de_CH`, `sr_Latn_BA`, `yue` (not `res_index`, `pool`, `units`). */
const LOCALE_BUNDLE = /^[a-z]{2,3}(_[A-Za-z0-9]*)*$/;

/**
 * What a capture keeps: everything but other locales' bundles, the word dictionaries of the break
 * iterators, transliterators and charset converters (UTF-8/16 and Latin-1 are built into ICU's
 * code, windows-1252 into Node's). Kept, among others: normalization
 * (String.prototype.normalize), case mapping, root collation (localeCompare), time zones (Date),
 * plural rules, the pools and res_index of each tree (a dropped locale then falls back to root),
 * and the break iterators' rules: without them `new Intl.Segmenter()` crashes Node (SIGSEGV), and
 * a crash of PID 1 panics the capture kernel. Without a dictionary, CJK and Thai words are not
 * split; an encoding without its converter (shift_jis, gbk) is refused by TextDecoder.
 */
export function keepForCapture(name: string): boolean {
  const parts = name.split('/').slice(1);
  const file = parts[parts.length - 1] ?? '';
  const dot = file.lastIndexOf('.');
  const base = dot < 0 ? file : file.slice(0, dot);
  const ext = dot < 0 ? '' : file.slice(dot + 1);
  if (parts.length > 1 && parts[0] === 'translit') return false;
  if (ext === 'dict') return false;       // brkitr's dictionaries (CJK, Thai, Lao, Khmer, Burmese words)
  if (ext === 'cnv') return false;
  if (ext === 'res' && base !== 'res_index' && LOCALE_BUNDLE.test(base) && base !== 'en' && base !== 'root') return false;
  return true;
}

/**
 * A package of the same length holding only the items `keep` accepts, byte for byte, in their
 * order; the rest of the bytes are zero. The data header is kept as it is.
 */
export function trimIcuPackage(pkg: Buffer, keep: (name: string) => boolean, where = 'ICU data'): { pkg: Buffer; kept: IcuItem[]; dropped: number } {
  const items = icuItems(pkg, where);
  const kept = items.filter((it) => keep(it.name));
  const headerSize = pkg.readUInt16LE(0);
  const out = Buffer.alloc(pkg.length);
  pkg.copy(out, 0, 0, headerSize);
  const toc = headerSize;
  out.writeUInt32LE(kept.length, toc);
  let at = toc + 4 + 8 * kept.length;
  kept.forEach((it, i) => {
    out.writeUInt32LE(at - toc, toc + 4 + 8 * i);
    at += out.write(it.name, at, 'latin1') + 1;
  });
  const placed: IcuItem[] = [];
  kept.forEach((it, i) => {
    at = Math.ceil(at / ITEM_ALIGN) * ITEM_ALIGN;
    out.writeUInt32LE(at - toc, toc + 8 + 8 * i);
    pkg.copy(out, at, it.offset, it.offset + it.length);
    placed.push({ name: it.name, offset: at, length: it.length });
    at += it.length;
  });
  return { pkg: out, kept: placed, dropped: items.length - kept.length };
}

/** The ICU package of a Node binary, a copy of its bytes and where they are: its symbol's size from `nm`, its bytes found by their header. */
export function readIcuPackage(binary: string): { offset: number; symbol: string; pkg: Buffer } {
  const nm = spawnSync('nm', ['--print-size', '--defined-only', binary], { encoding: 'utf8', maxBuffer: 512 << 20 });
  if (nm.status !== 0) throw new LastwordError('EICU_DATA', `${binary}: nm failed (${nm.error?.message ?? `exit ${nm.status}`}): ${nm.stderr.trim().split('\n')[0]}`, { where: { file: binary } });
  const m = /^[0-9a-f]+ ([0-9a-f]+) [rR] (icudt\d+_dat)$/m.exec(nm.stdout);
  if (!m) throw new LastwordError('EICU_DATA', `${binary}: no icudt*_dat symbol (not a full-icu Node, or stripped)`, { where: { file: binary } });
  const length = Number.parseInt(m[1]!, 16);
  const bin = fs.readFileSync(binary);
  const offsets: number[] = [];
  for (let at = bin.indexOf('CmnD'); at >= 0; at = bin.indexOf('CmnD', at + 1)) {
    const start = at - 12;
    if (start >= 0 && start + length <= bin.length && isCommonDataHeader(bin, start)) offsets.push(start);
  }
  if (offsets.length !== 1) throw new LastwordError('EICU_DATA', `${binary}: ${offsets.length} ICU common data headers found, expected 1`, { where: { file: binary } });
  const offset = offsets[0]!;
  return { offset, symbol: m[2]!, pkg: Buffer.from(bin.subarray(offset, offset + length)) };
}

/** Trims the ICU package of a Node binary in place (before it is stripped: `nm` needs its symbols). */
export function trimNodeIcu(binary: string, keep: (name: string) => boolean = keepForCapture): { symbol: string; length: number; keptBytes: number; kept: number; dropped: number } {
  const { offset, symbol, pkg } = readIcuPackage(binary);
  const trimmed = trimIcuPackage(pkg, keep, `${binary} ${symbol}`);
  const fd = fs.openSync(binary, 'r+');
  try {
    fs.writeSync(fd, trimmed.pkg, 0, pkg.length, offset);
  } finally {
    fs.closeSync(fd);
  }
  const last = trimmed.kept[trimmed.kept.length - 1];
  return { symbol, length: pkg.length, keptBytes: last ? last.offset + last.length : 0, kept: trimmed.kept.length, dropped: trimmed.dropped };
}
