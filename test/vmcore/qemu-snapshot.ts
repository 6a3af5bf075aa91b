// A QEMU `dump-guest-memory` ELF of a running 6.1 guest in QEMU's own layout (section headers
// before the program headers, one PT_NOTE per CPU, p_vaddr 0), i.e. without the lab's
// qemu-elf-fixup.sh. Cached in .cache/lab like the other fixtures.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cacheDir, ensureFile, kernelVersion, labDir, runGuestScript } from '../support/lab.ts';

export function qemuSnapshotVmcore(series = '6.1'): string {
  const kver = kernelVersion(series);
  if (!kver) throw new Error(`no ${series} kernel installed (run .ci/setup)`);
  const out = path.join(cacheDir, 'lab', `snapshot-raw-${kver}-m1024-f64`);
  // Not named snapshot.*: the script starts with `rm -f OUT/snapshot.*`, which would hit the lock.
  const file = path.join(out, 'qemu-layout.elf');
  return ensureFile(file, () => {
    fs.mkdirSync(out, { recursive: true });
    const env = { ...process.env, KVER: kver, MEM: '1024', FILL: '64', FIXUP: '0', FORMATS: 'elf' };
    execFileSync(path.join(labDir, 'make-initrd.sh'), [out], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    runGuestScript('vmcore-snapshot.sh', out, env, 10 * 60_000);
    fs.renameSync(path.join(out, 'snapshot.elf'), file);
  });
}

/** A copy of `elf` patched by qemu-elf-fixup.sh, which makedumpfile 1.7.x can read. */
export function fixedUpCopy(elf: string, dir: string): string {
  const copy = path.join(dir, 'snapshot-fixed.elf');
  execFileSync('cp', ['--sparse=always', elf, copy]);
  execFileSync(path.join(labDir, 'qemu-elf-fixup.sh'), [copy], { stdio: 'ignore' });
  return copy;
}
