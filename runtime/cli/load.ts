// `lastword load [--config FILE] [--kernel FILE] [--initrd FILE] [--dry-run]`: loads the capture
// kernel with `kexec -p`, on the command line kdumpctl / kdump-config would build from the same
// configs (kexec.ts), after checking that crashkernel= reserved memory.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import minimist from 'minimist';
import { LastwordError, usageError } from '../errors.ts';
import { loadPlan } from '../config/load.ts';
import { bootCpuApicId, captureCmdline, formatMiB, kexecFiles, kexecLoadArgs } from './kexec.ts';
import { readReservation } from './status.ts';

const HELP = `usage: lastword load [--config FILE] [--kernel FILE] [--initrd FILE] [--dry-run]

Loads the capture kernel (kexec -p) with the command line built from the kdump configs.
  --config FILE   this kdump.conf or kdump-tools file instead of the standard places
  --kernel FILE   capture kernel (default: KDUMP_KERNEL, or where kdumpctl finds it: /boot/vmlinuz-<version>...)
  --initrd FILE   capture initramfs (default: KDUMP_INITRD, or kdumpctl's: /boot/initramfs-<version>kdump.img...)
  --root DIR      read configs, /proc and /sys under DIR (tests, chroots)
  --dry-run       print the kexec command instead of running it`;

export async function run(argv: string[]): Promise<number> {
  const o = minimist(argv, {
    string: ['config', 'kernel', 'initrd', 'root'],
    boolean: ['help', 'dry-run'],
    alias: { h: 'help', n: 'dry-run' },
    unknown: (a) => { if (a.startsWith('-')) throw usageError(`unknown option ${a}\n${HELP}`); return true; },
  });
  if (o.help) { process.stdout.write(HELP + '\n'); return 0; }
  const root = path.resolve(o.root ?? '/');
  const at = (p: string) => path.join(root, p);
  const procCmdline = fs.readFileSync(at('/proc/cmdline'), 'utf8').trim();
  const plan = loadPlan({ config: o.config, root, cmdline: procCmdline });
  let cpuinfo = '';
  try { cpuinfo = fs.readFileSync(at('/proc/cpuinfo'), 'utf8'); } catch { /* not x86 or no /proc: no disable_cpu_apicid */ }
  const cmdline = captureCmdline(plan, { procCmdline, bootCpuApicId: bootCpuApicId(cpuinfo) });
  const files = kexecFiles(plan, os.release(), { root, procCmdline });
  if (o.kernel) files.kernel = o.kernel;
  if (o.initrd) files.initrd = o.initrd;
  const args = kexecLoadArgs(plan, files, cmdline);
  if (o['dry-run']) {
    process.stdout.write(['kexec', ...args].map((a) => (/[\s"']/.test(a) ? `'${a}'` : a)).join(' ') + '\n');
    return 0;
  }
  for (const f of [files.kernel, files.initrd]) {
    if (!fs.existsSync(at(f))) {
      throw new LastwordError('ELOAD_FILE', `${f} does not exist${f === files.initrd ? ' (build it with lastword initramfs, mkdumprd or kdump-config)' : ''}`);
    }
  }
  const r0 = readReservation(root);
  if (r0.crashSize === 0) {
    throw new LastwordError('ELOAD_NO_RESERVATION', 'no memory is reserved for the capture kernel (/sys/kernel/kexec_crash_size is 0): add crashkernel= to the kernel command line and reboot; lastword estimate recommends a size');
  }
  const r = spawnSync('kexec', args, { encoding: 'utf8' });
  if (r.error) throw new LastwordError('ELOAD_KEXEC', `cannot run kexec: ${r.error.message} (install kexec-tools)`);
  if (r.status !== 0) throw new LastwordError('ELOAD_KEXEC', `kexec ${args.join(' ')} exited ${r.status}: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' / ')}`);
  const loaded = readReservation(root).loaded;
  if (!loaded) throw new LastwordError('ELOAD_KEXEC', 'kexec returned 0 but /sys/kernel/kexec_crash_loaded is still 0');
  process.stdout.write(`lastword load: capture kernel ${files.kernel} with ${files.initrd} loaded into the ${formatMiB(r0.crashSize)} reservation\n  command line: ${cmdline}\n`);
  return 0;
}
