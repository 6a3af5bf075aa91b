// Bench vmcores: real kdump vmcores of QEMU guests whose memory is mostly in use by a mix that
// gives every dump level real work — anonymous memory (text-like, random, zeroed and
// pointer-like pages), tmpfs page cache with the same mix, a zero-filled tmpfs file, and free
// pages. Built on ../shared/lab: make-initrd.sh's primary image gets a second, concatenated cpio
// (the kernel unpacks both, the later one wins) whose /init runs the bench workload and then
// hands over to the lab's own /init, which panics the guest and captures /proc/vmcore raw.
// Made at bench time into .cache/bench/, never committed.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cacheDir, ensureFile, kernelVersion, labDir, runGuestScript } from './lab.ts';

export interface BenchWorkload {
  /** MiB of anonymous memory held by a process until the crash. */
  anonMib: number;
  /** MiB of a tmpfs file with mixed content (page cache, LRU, excluded from dump level 2 on). */
  cacheMib: number;
  /** MiB of a zero-filled tmpfs file (zero pages, excluded from dump level 1 on). */
  zeroMib: number;
}

/** Guest RAM in MiB -> workload: about two thirds of what crashkernel=256M leaves in use, the rest free. */
export function workloadFor(memMib: number): BenchWorkload {
  const usable = memMib - 256;
  return {
    anonMib: Math.round(usable * 0.30),
    cacheMib: Math.round(usable * 0.22),
    zeroMib: Math.round(usable * 0.10),
  };
}

// The filler writes 1 MiB chunks in a fixed rotation of content kinds, so anonymous and cache
// pages both hold what real machines hold: compressible text, incompressible data, zeroes
// written by the program (real allocated zero pages, not the shared zero page), and
// pointer-like words. It is static so it runs in the lab's busybox initramfs.
const fillerSource = String.raw`
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#define MIB (1024UL * 1024UL)
static uint64_t s = 0x9e3779b97f4a7c15ULL;
static uint64_t next(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; }
static const char *words[] = { "kernel ", "page ", "vmcore ", "dump ", "level ", "filter ",
  "memory ", "crash ", "the ", "of ", "and ", "lastword ", "makedumpfile ", "\n" };
static void chunk(unsigned char *p, unsigned long i) {
  unsigned long k, n = 0;
  switch (i % 5) {
  case 0: case 1:
    while (n < MIB) { const char *w = words[next() % 14]; size_t l = strlen(w);
      if (n + l > MIB) l = MIB - n; memcpy(p + n, w, l); n += l; }
    break;
  case 2: for (k = 0; k < MIB / 8; k++) ((uint64_t *)p)[k] = next(); break;
  case 3: memset(p, 0, MIB); break;
  default: for (k = 0; k < MIB / 8; k++)
      ((uint64_t *)p)[k] = 0xffff888000000000ULL + ((next() & 0xffff) << 6); break;
  }
}
int main(int argc, char **argv) {
  unsigned long i, mib = argc > 2 ? strtoul(argv[2], 0, 10) : 0;
  if (argc > 3 && !strcmp(argv[1], "file")) {
    unsigned char *buf = malloc(MIB); int fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (!buf || fd < 0) return 1;
    for (i = 0; i < mib; i++) { chunk(buf, i); if (write(fd, buf, MIB) != (ssize_t)MIB) return 1; }
    return close(fd);
  }
  if (argc > 2 && !strcmp(argv[1], "anon")) {
    unsigned char *mem = malloc(mib * MIB);
    if (!mem) return 1;
    for (i = 0; i < mib; i++) chunk(mem + i * MIB, i + 2);
    printf("bench-fill: holding %lu MiB\n", mib); fflush(stdout);
    for (;;) pause();
  }
  fprintf(stderr, "usage: bench-fill anon MIB | file MIB PATH\n");
  return 2;
}
`;

function benchInit(w: BenchWorkload): string {
  return `#!/bin/sh
# bench /init (primary kernel only): the bench workload, then the lab's /init.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
if [ ! -e /proc/vmcore ]; then
  mount -t proc proc /proc
  mount -t devtmpfs devtmpfs /dev 2>/dev/null
  mkdir -p /bench && mount -t tmpfs -o size=90% tmpfs /bench
  /bench-fill file ${w.cacheMib} /bench/cache.bin || echo "BENCH: cache fill failed"
  dd if=/dev/zero of=/bench/zero.bin bs=1M count=${w.zeroMib} 2>/dev/null || echo "BENCH: zero fill failed"
  /bench-fill anon ${w.anonMib} > /bench/anon.ready &
  i=0; while ! grep -q holding /bench/anon.ready && [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done
  echo "BENCH: workload $(grep -E '^(MemTotal|MemFree|Shmem|AnonPages|Cached):' /proc/meminfo | tr -s ' ' | tr '\\n' ' ')"
  umount /proc
fi
exec /lab-init "$@"
`;
}

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeout?: number } = {}): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'], ...opts });
}

/** Adds the bench workload to the lab's primary image in `out` (made by make-initrd.sh). */
function addWorkload(out: string, w: BenchWorkload): void {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'lastword-bench-initrd-'));
  try {
    const root = path.join(work, 'root');
    fs.mkdirSync(root);
    fs.writeFileSync(path.join(work, 'fill.c'), fillerSource);
    run('gcc', ['-O2', '-static', '-o', path.join(root, 'bench-fill'), path.join(work, 'fill.c')]);
    // The lab's /init, renamed: taken from the image it came with.
    const init = execFileSync('sh', ['-c', 'gzip -dc primary.cpio.gz | cpio -i --quiet --to-stdout init'], { cwd: out });
    if (!init.includes('/proc/vmcore')) throw new Error(`bench: no lab /init in ${out}/primary.cpio.gz`);
    fs.writeFileSync(path.join(root, 'lab-init'), init, { mode: 0o755 });
    fs.writeFileSync(path.join(root, 'init'), benchInit(w), { mode: 0o755 });
    const overlay = path.join(work, 'overlay.cpio.gz');
    run('sh', ['-c', `find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0 | gzip -9n > '${overlay}'`], { cwd: root });
    fs.appendFileSync(path.join(out, 'primary.cpio.gz'), fs.readFileSync(overlay));
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** A real kdump vmcore (ELF, with VMCOREINFO) of a `memMib` guest running the bench workload. */
export function benchVmcore(memMib: number, series = '6.1'): string {
  const kver = kernelVersion(series);
  if (!kver) throw new Error(`bench: no ${series} kernel installed (run .ci/setup)`);
  const w = workloadFor(memMib);
  const out = path.join(cacheDir, 'bench', `kdump-${kver}-m${memMib}-a${w.anonMib}-c${w.cacheMib}-z${w.zeroMib}`);
  return ensureFile(path.join(out, 'kdump-256M.vmcore'), () => {
    fs.rmSync(out, { recursive: true, force: true });
    fs.mkdirSync(out, { recursive: true });
    const env = { ...process.env, KVER: kver, MEM: String(memMib), FILL: '8', CRASHKERNEL: '256M', TIMEOUT: '1200' };
    run(path.join(labDir, 'make-initrd.sh'), [out], { env });
    addWorkload(out, w);
    runGuestScript('vmcore-kdump.sh', out, env, 25 * 60_000);
    const log = fs.readFileSync(path.join(out, 'console-kdump-256M.log'), 'utf8');
    const line = log.split('\n').find((l) => l.startsWith('BENCH: workload'));
    if (!line) throw new Error(`bench: the guest did not report its workload (${out}/console-kdump-256M.log)`);
    fs.writeFileSync(path.join(out, 'workload.txt'), line.trim() + '\n');
  });
}

/** The guest's /proc/meminfo summary after the workload, as the console reported it. */
export function benchWorkloadReport(vmcore: string): string {
  const f = path.join(path.dirname(vmcore), 'workload.txt');
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim() : '';
}
