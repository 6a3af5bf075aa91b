// A real kdump vmcore of a guest booted with `hugepages=8` (16 MiB hugetlb pool), so the hugetlb
// rules run on real struct pages: compound_dtor on 6.1, the hugetlb page type on 6.12.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cacheDir, ensureFile, kernelVersion, labDir } from '../support/lab.ts';

export function hugetlbVmcore(series: string): string {
  const kver = kernelVersion(series);
  if (!kver) throw new Error(`no ${series} kernel installed (run .ci/setup)`);
  const out = path.join(cacheDir, 'lab', `kdump-hugetlb-${kver}-m1024-f64`);
  return ensureFile(path.join(out, 'kdump-256M.vmcore'), () => {
    fs.mkdirSync(out, { recursive: true });
    const env = { ...process.env, KVER: kver, MEM: '1024', FILL: '64', CRASHKERNEL: '256M', APPEND_EXTRA: 'hugepages=8' };
    execFileSync(path.join(labDir, 'make-initrd.sh'), [out], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    execFileSync(path.join(labDir, 'vmcore-kdump.sh'), [out], { env, stdio: ['ignore', 'ignore', 'inherit'], timeout: 15 * 60_000 });
  });
}
