// makedumpfile as the reference for page sets and dmesg. Bookworm's 1.7.2 reads 6.1 right; 6.12's
// page types need >= 1.7.7 (upstream 72c3414), which .ci/setup puts in .cache/lab/tools.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cacheDir, ensureFile } from '../support/lab.ts';

/** Bookworm's makedumpfile (1.7.2). */
export const BOOKWORM_MAKEDUMPFILE = 'makedumpfile';

/** makedumpfile 1.7.8 from .ci/setup. */
export function newMakedumpfile(): string {
  const built = path.join(cacheDir, 'lab', 'tools', 'makedumpfile-new', 'makedumpfile');
  if (!fs.existsSync(built)) throw new Error(`${built} is missing: run .ci/setup (makedumpfile >= 1.7.7 step)`);
  return built;
}

/** The reference for a kernel series' page sets: 1.7.2 reads 6.1 right, 6.12 and later need >= 1.7.7. */
export function referenceMakedumpfile(series: string): string {
  return series === '6.1' ? BOOKWORM_MAKEDUMPFILE : newMakedumpfile();
}

/**
 * makedumpfile works in cycles unless both bitmaps fit in 4 MiB and 60% of free memory exactly
 * (max_mapnr * 2 / 8 bytes with no remainder); then it keeps them in a temporary file and its 1st
 * bitmap (and since 1.7.7 the 2nd) also holds a PT_LOAD's partial last page (0x9f of the low 640K
 * segment). `lastword filter` makes the same choice (cli/filter.ts makedumpfileOneCycle, tested in
 * test/dumpfile/kdump-header.test.ts); the page filter's own comparisons hold the reference to its
 * cyclic path with --cyclic-buffer (4 MiB: one cycle for every fixture here).
 */
export const CYCLIC = ['--cyclic-buffer', '4096'];

const COMPOUND_INFO = 'OFFSET(page.compound_info)=';
const COMPOUND_HEAD = 'OFFSET(page.compound_head)=';

/**
 * The vmcore makedumpfile reads as the page-set reference. Linux 7.1 renamed VMCOREINFO's tail-page
 * marker OFFSET(page.compound_head) to OFFSET(page.compound_info); makedumpfile <= 1.7.9 knows only
 * the old name and then drops page 1 of every large folio at -d 8 (slab and stack pages crash
 * needs). Upstream's fix (f50c015, after 1.7.9, in no Debian package yet) reads the new key into the
 * old variable; a copy of the vmcore whose note says compound_head (same length: 13 bytes of the
 * note change) gives 1.7.8 that same input. Other vmcores are returned as they are.
 */
export function referenceVmcore(vmcore: string): string {
  // The first PT_NOTE bytes that hold the key (the kernel's own copy of the text is in a PT_LOAD).
  const notes = execFileSync('readelf', ['-lW', vmcore], { encoding: 'utf8' }).split('\n')
    .filter((l) => /^\s+NOTE\s/.test(l))
    .map((l) => { const f = l.trim().split(/\s+/); return { offset: Number(f[1]), size: Number(f[4]) }; });
  let at = -1;
  const fd = fs.openSync(vmcore, 'r');
  try {
    for (const n of notes) {
      const buf = Buffer.alloc(n.size);
      fs.readSync(fd, buf, 0, n.size, n.offset);
      const i = buf.indexOf(COMPOUND_INFO, 0, 'latin1');
      if (i >= 0) { at = n.offset + i; break; }
    }
  } finally {
    fs.closeSync(fd);
  }
  if (at < 0) return vmcore;
  const copy = `${vmcore}.compound-head`;
  return ensureFile(copy, () => {
    const tmp = `${copy}.tmp`;
    fs.copyFileSync(vmcore, tmp);
    const out = fs.openSync(tmp, 'r+');
    try { fs.writeSync(out, Buffer.from(COMPOUND_HEAD, 'latin1'), 0, COMPOUND_HEAD.length, at); } finally { fs.closeSync(out); }
    fs.renameSync(tmp, copy);
  });
}

/**
 * Runs `makedumpfile -F -d level vmcore` and reassembles only the first `keep` bytes of the
 * kdump-compressed file (headers, notes, both bitmaps, page descriptors) into `out`: a file our
 * kdump-compressed reader opens, without writing hundreds of MB of page data per level.
 */
export function makedumpfileHead(series: string, vmcore: string, level: number, out: string, keep = 32 << 20): Promise<string> {
  fs.rmSync(out, { force: true });
  const fd = fs.openSync(out, 'w', 0o600);
  const child = spawn(referenceMakedumpfile(series), [...CYCLIC, '-F', '-d', String(level), referenceVmcore(vmcore)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  let pending: Buffer = Buffer.alloc(0);
  let headerSeen = false;
  let record: { offset: number; left: number } | undefined;
  let ended = false;
  child.stdout.on('data', (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    for (;;) {
      if (!headerSeen) {
        if (pending.length < 4096) return;
        if (pending.toString('latin1', 0, 12) !== 'makedumpfile') throw new Error('makedumpfile -F: no flattened header');
        pending = pending.subarray(4096);
        headerSeen = true;
      }
      if (!record) {
        if (ended || pending.length < 16) return;
        const offset = pending.readBigInt64BE(0);
        const size = pending.readBigInt64BE(8);
        pending = pending.subarray(16);
        if (offset === -1n && size === -1n) { ended = true; return; }
        record = { offset: Number(offset), left: Number(size) };
      }
      if (pending.length === 0) return;
      const n = Math.min(record.left, pending.length);
      if (record.offset < keep) fs.writeSync(fd, pending, 0, Math.min(n, keep - record.offset), record.offset);
      record.offset += n;
      record.left -= n;
      pending = pending.subarray(n);
      if (record.left === 0) record = undefined;
    }
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      fs.closeSync(fd);
      if (code !== 0 || !ended) reject(new Error(`makedumpfile -F -d ${level} ${vmcore}: exit ${code}${ended ? '' : ', no end marker'}: ${stderr.slice(-500)}`));
      else resolve(out);
    });
  });
}

/** `makedumpfile --dump-dmesg vmcore out`, the bytes it writes. */
export function makedumpfileDmesg(binary: string, vmcore: string, out: string): Buffer {
  fs.rmSync(out, { force: true });
  execFileSync(binary, ['--dump-dmesg', vmcore, out], { stdio: ['ignore', 'ignore', 'pipe'] });
  return fs.readFileSync(out);
}
