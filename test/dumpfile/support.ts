// Shared helpers of the dump file tests: makedumpfile as the reference writer, temp dirs that are
// removed even on failure, and comparisons of saved pfn sets and page contents.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { KdumpReader } from '../../runtime/dumpfile/kdump-reader.ts';
import { EHDR_SIZE, PHDR_SIZE, PT_LOAD, parseElfHeader, parseProgramHeaders, type ProgramHeader } from '../../runtime/vmcore/elf.ts';
import { START_KERNEL_MAP } from '../../runtime/vmcore/reader.ts';
import type { Vmcore } from '../../runtime/vmcore/types.ts';
import { cacheDir, ensureFile } from '../support/lab.ts';

export function tempDir(t: { after(fn: () => void): void } | undefined, prefix = 'lastword-dump-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t?.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A tmpfs (12 MiB, or `kib` KiB) for a dump target that fills up, in a directory of its own:
 * unmounted before that directory goes (a temp dir's own hook would fail on a live mount).
 */
export function smallTmpfs(t: { after(fn: () => void): void }, kib = 12 << 10): string {
  const dir = tempDir(undefined);
  const mnt = path.join(dir, 'small');
  fs.mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k`, 'lastword-test', mnt]);
  t.after(() => { spawnSync('umount', [mnt]); fs.rmSync(dir, { recursive: true, force: true }); });
  return mnt;
}

/** Runs Debian's makedumpfile (the reference) with `args` on `vmcore` into `out`. */
export function makedumpfile(args: string[], vmcore: string, out: string): string {
  execFileSync('makedumpfile', [...args, vmcore, out], { stdio: ['ignore', 'ignore', 'pipe'] });
  return out;
}

/** The PT_LOAD program headers of the ELF file `file`, in header order. */
export function elfLoads(file: string): ProgramHeader[] {
  const fd = fs.openSync(file, 'r');
  try {
    const eh = Buffer.alloc(EHDR_SIZE);
    fs.readSync(fd, eh, 0, EHDR_SIZE, 0);
    const h = parseElfHeader(eh, file);
    const ph = Buffer.alloc(h.phnum * PHDR_SIZE);
    fs.readSync(fd, ph, 0, ph.length, h.phoff);
    return parseProgramHeaders(ph, h.phnum, file, h.phoff).filter((p) => p.type === PT_LOAD);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Asserts that each kernel-text PT_LOAD of `loads` (p_vaddr at or above __START_KERNEL_map) lies,
 * p_memsz and all, inside one RAM PT_LOAD, as in makedumpfile's -E output: readers drop it then,
 * and none overlaps partly. `what` names the dump (or the plan) in the message.
 */
export function assertTextInsideOneRam(loads: readonly { paddr: number; vaddr: bigint; memSize: number }[], what: string): void {
  const ram = loads.filter((l) => l.vaddr < START_KERNEL_MAP);
  for (const t of loads.filter((l) => l.vaddr >= START_KERNEL_MAP)) {
    const holder = ram.find((r) => r.paddr <= t.paddr && t.paddr + t.memSize <= r.paddr + r.memSize);
    assert.ok(holder, `${what}: the text PT_LOAD at paddr 0x${t.paddr.toString(16)} (p_memsz 0x${t.memSize.toString(16)}) is inside no one RAM PT_LOAD: ${ram.map((r) => `0x${r.paddr.toString(16)}+0x${r.memSize.toString(16)}`).join(' ')}`);
  }
}

/** assertTextInsideOneRam on the PT_LOADs of the ELF dump `file`. */
export function assertTextInsideOneRamLoad(file: string): void {
  assertTextInsideOneRam(elfLoads(file), file);
}

/** Asserts that both dumps saved the same pfns (2nd bitmap) with the same RAM map (1st bitmap). */
export function assertSamePfnSet(ours: KdumpReader, ref: KdumpReader): void {
  assert.equal(ours.maxMapnr, ref.maxMapnr, 'max_mapnr');
  const chunk = 1 << 20;
  const a = Buffer.alloc(chunk / 8), b = Buffer.alloc(chunk / 8);
  for (const which of [1, 2] as const) {
    for (let pfn = 0; pfn < ours.maxMapnr; pfn += chunk) {
      ours.readBitmap(which, pfn, a);
      ref.readBitmap(which, pfn, b);
      if (!a.equals(b)) {
        const i = [...a].findIndex((v, j) => v !== b[j]);
        assert.fail(`bitmap ${which} differs first at pfn 0x${(pfn + i * 8).toString(16)}: ours 0x${a[i]!.toString(16)}, reference 0x${b[i]!.toString(16)}`);
      }
    }
  }
  assert.equal(ours.dumpablePages, ref.dumpablePages, 'dumpable pages');
}

/** Asserts every saved page of `dump` equals the vmcore's page; returns the number compared. */
export function assertPagesMatchVmcore(dump: KdumpReader, vmcore: Vmcore, step = 1): number {
  const a = Buffer.alloc(dump.pageSize), b = Buffer.alloc(dump.pageSize);
  let n = 0;
  for (let pfn = 0; pfn < dump.maxMapnr; pfn++) {
    if (!dump.isDumpable(pfn)) continue;
    if (n++ % step !== 0) continue;
    const got = dump.readPage(pfn, a);
    assert.ok(got, `pfn 0x${pfn.toString(16)} is dumpable but has no data`);
    vmcore.readPages(pfn, 1, b);
    if (!a.equals(b)) assert.fail(`${dump.file}: pfn 0x${pfn.toString(16)} differs from the vmcore`);
  }
  return n;
}

/**
 * crash 8.0.6 with lzo, snappy and zstd: the lab's crash (built by .ci/setup) only has lzo. The
 * cached build tree is copied and relinked with all three codecs once per machine (~30 s).
 */
export function crashWithAllCodecs(): string {
  const tools = path.join(cacheDir, 'lab', 'tools');
  const out = path.join(tools, 'crash-codecs');
  return ensureFile(out, () => {
    const src = path.join(tools, 'src', 'crash-8.0.6');
    if (!fs.existsSync(path.join(src, 'crash'))) throw new Error(`${src} has no built crash: run .ci/setup`);
    const work = fs.mkdtempSync(path.join(tools, 'src', 'crash-codecs-'));
    try {
      execFileSync('cp', ['-a', `${src}/.`, work]);
      execFileSync('make', ['-C', work, `-j${os.availableParallelism()}`, 'lzo', 'snappy', 'zstd'], { stdio: ['ignore', 'ignore', 'pipe'] });
      fs.copyFileSync(path.join(work, 'crash'), `${out}.tmp`);
      fs.chmodSync(`${out}.tmp`, 0o755);
      fs.renameSync(`${out}.tmp`, out);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
}
