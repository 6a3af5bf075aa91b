// Real fixtures for tests, made at test time with the scripts in ../shared/lab and cached in
// .cache/lab (never committed). Concurrent test processes share one producer through a lock
// directory, so a vmcore is made once per machine and reused.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const repo = path.resolve(import.meta.dirname, '..', '..');
export const sharedDir = process.env.LASTWORD_SHARED ?? path.resolve(repo, '..', 'shared');
export const labDir = path.join(sharedDir, 'lab');
export const cacheDir = path.join(repo, '.cache');

/** Runs `produce` once across processes; returns `file` after it exists. */
export function ensureFile(file: string, produce: () => void): string {
  if (fs.existsSync(file)) return file;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const lock = `${file}.lock`;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch {
      if (fs.existsSync(file)) return file;
      // A lock older than 30 minutes belongs to a dead producer.
      try {
        if (Date.now() - fs.statSync(lock).mtimeMs > 30 * 60_000) fs.rmSync(lock, { recursive: true, force: true });
      } catch { /* gone meanwhile */ }
      spawnSync('sleep', ['1']);
    }
  }
  try {
    if (!fs.existsSync(file)) produce();
    if (!fs.existsSync(file)) throw new Error(`fixture producer did not create ${file}`);
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
  return file;
}

/**
 * Debian unstable's kernel series, the third generation the tests run on beside bookworm's 6.1 and
 * trixie's 6.12 (.ci/setup installs its newest kernel and vmlinux; when unstable moves on, change
 * this and that step together).
 */
export const UNSTABLE_SERIES = '7';
/** The kernel generations the page filter, dmesg and vmcore reader are checked on. */
export const KERNEL_SERIES = ['6.1', '6.12', UNSTABLE_SERIES] as const;

/** Newest installed Debian kernel of a series, e.g. '6.1' -> '6.1.0-56-amd64', '6.12' -> '6.12.48+deb13-amd64'. */
export function kernelVersion(series: string): string | undefined {
  const dir = '/lib/modules';
  if (!fs.existsSync(dir)) return undefined;
  const found = fs.readdirSync(dir)
    .filter((v) => v.startsWith(series + '.') && v.endsWith('-amd64') && fs.existsSync(`/boot/vmlinuz-${v}`))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  return found.at(-1);
}

export function debugVmlinux(kver: string): string {
  return `/usr/lib/debug/boot/vmlinux-${kver}`;
}

export interface LabVmcoreOptions {
  series?: string;          // kernel series, default '6.1'
  kind?: 'kdump' | 'snapshot';
  mem?: number;             // guest MiB
  fill?: number;            // MiB of tmpfs data in the guest
  crashkernel?: string;
}

/** A real vmcore (ELF, with VMCOREINFO) of a QEMU guest that really panicked (kind 'kdump'). */
export function labVmcore(opts: LabVmcoreOptions = {}): string {
  const series = opts.series ?? '6.1';
  const kver = kernelVersion(series);
  if (!kver) throw new Error(`no ${series} kernel installed (run .ci/setup)`);
  const kind = opts.kind ?? 'kdump';
  const mem = opts.mem ?? 1024;
  const fill = opts.fill ?? 64;
  const ck = opts.crashkernel ?? '256M';
  const out = path.join(cacheDir, 'lab', `${kind}-${kver}-m${mem}-f${fill}`);
  const file = path.join(out, kind === 'kdump' ? `kdump-${ck}.vmcore` : 'snapshot.elf');
  return ensureFile(file, () => {
    fs.mkdirSync(out, { recursive: true });
    const env = { ...process.env, KVER: kver, MEM: String(mem), FILL: String(fill), CRASHKERNEL: ck };
    execFileSync(path.join(labDir, 'make-initrd.sh'), [out], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    runGuestScript(kind === 'kdump' ? 'vmcore-kdump.sh' : 'vmcore-snapshot.sh', out, env);
  });
}

/**
 * Runs a lab script that boots a guest (vmcore-kdump.sh, vmcore-snapshot.sh) for a fixture. A guest
 * under TCG on a loaded machine is now and then lost before it writes its vmcore, so a failed run is
 * tried once more; a second failure throws with the script's last lines (the guest console's tail),
 * which otherwise only reach the test runner's stderr, not the failure report.
 */
export function runGuestScript(script: string, out: string, env: NodeJS.ProcessEnv, timeoutMs = 15 * 60_000): void {
  env = { ...env, ACCEL: env.ACCEL ?? tcgAccel(env.KVER ?? '') };
  let last = '';
  for (let attempt = 1; attempt <= 2; attempt++) {
    const r = spawnSync(path.join(labDir, script), [out], { env, stdio: ['ignore', 'ignore', 'pipe'], timeout: timeoutMs, encoding: 'utf8' });
    process.stderr.write(r.stderr ?? '');
    if (r.status === 0) return;
    const why = r.error ? r.error.message : r.signal ? `signal ${r.signal}` : `exit ${r.status}`;
    last = `${script} ${out}: ${why}\n${(r.stderr ?? '').trimEnd().split('\n').slice(-30).join('\n')}`;
    if (attempt === 1) process.stderr.write(`lab: ${script} failed (${why}), running it once more\n`);
  }
  throw new Error(`lab fixture: ${last}`);
}

/**
 * QEMU's `-accel` for a guest running kernel `release`. A 7.x kernel under multi-threaded TCG now and
 * then dies at boot with "Oops: int3" in code whose static key the other vCPU is patching (seen right
 * after "sched_clock: Marking stable": 2 of 18 boots with three guests on the 2 host CPUs, and twice in
 * CI), a cross-modifying-code race of TCG's one host thread per vCPU; with one TCG thread for all vCPUs
 * 0 of 18 failed, and a kdump cycle took 21.4 instead of 18.6 s. 6.1 and 6.12 never showed it and keep
 * the faster multi-threaded TCG.
 */
export function tcgAccel(release: string): string {
  return Number.parseInt(release, 10) >= 7 ? 'tcg,thread=single' : 'tcg';
}

/** The release a bzImage was built as ("7.2.13+deb14-amd64"), from its setup header's kernel_version string. */
export function bzImageRelease(file: string): string | undefined {
  const head = Buffer.alloc(0x10200); // the header and the whole range its 16-bit string offset can reach
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, head, 0, head.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (head.toString('latin1', 0x202, 0x206) !== 'HdrS') return undefined;
  const at = 0x200 + head.readUInt16LE(0x20e);
  const end = head.indexOf(0, at);
  return end > at ? head.toString('latin1', at, end).split(' ')[0] : undefined;
}

/** Debian unstable's crash (9.x), which reads 7.x kernels; .ci/setup unpacks it with its libraries. */
export function unstableCrash(): string {
  const file = path.join(cacheDir, 'lab', 'tools', 'crash-unstable', 'crash');
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: run .ci/setup (crash from Debian unstable step)`);
  return file;
}

/** The crash binary that lists tasks on current 6.1 kernels (built by .ci/setup), else Debian's. */
export function crashBinary(): string {
  const built = path.join(cacheDir, 'lab', 'tools', 'crash');
  return fs.existsSync(built) ? built : 'crash';
}
