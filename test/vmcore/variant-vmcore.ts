// Real kdump vmcores of lab guests booted with extra kernel parameters (APPEND_EXTRA of
// ../shared/lab/vmcore-kdump.sh), cached in .cache/lab/kdump-<tag>-<kver>-m1024-f64.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cacheDir, ensureFile, kernelVersion, labDir, runGuestScript } from '../support/lab.ts';

export function variantVmcore(series: string, tag: string, appendExtra: string): string {
  const kver = kernelVersion(series);
  if (!kver) throw new Error(`no ${series} kernel installed (run .ci/setup)`);
  const out = path.join(cacheDir, 'lab', `kdump-${tag}-${kver}-m1024-f64`);
  return ensureFile(path.join(out, 'kdump-256M.vmcore'), () => {
    fs.mkdirSync(out, { recursive: true });
    const env = { ...process.env, KVER: kver, MEM: '1024', FILL: '64', CRASHKERNEL: '256M', APPEND_EXTRA: appendExtra };
    execFileSync(path.join(labDir, 'make-initrd.sh'), [out], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    runGuestScript('vmcore-kdump.sh', out, env);
  });
}
