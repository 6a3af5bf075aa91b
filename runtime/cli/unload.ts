// `lastword unload`: kdumpctl stop / kdump-config unload, `kexec -p -u`.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import minimist from 'minimist';
import { LastwordError, usageError } from '../errors.ts';
import { loadPlan } from '../config/load.ts';
import { kexecUnloadArgs } from './kexec.ts';
import { readReservation } from './status.ts';

const HELP = `usage: lastword unload [--config FILE] [--dry-run]

Unloads the capture kernel (kexec -p -u).`;

export async function run(argv: string[]): Promise<number> {
  const o = minimist(argv, {
    string: ['config', 'root'], boolean: ['help', 'dry-run'], alias: { h: 'help', n: 'dry-run' },
    unknown: (a) => { if (a.startsWith('-')) throw usageError(`unknown option ${a}\n${HELP}`); return true; },
  });
  if (o.help) { process.stdout.write(HELP + '\n'); return 0; }
  const root = path.resolve(o.root ?? '/');
  const args = kexecUnloadArgs(loadPlan({ config: o.config, root, cmdline: '' }));
  if (o['dry-run']) { process.stdout.write(['kexec', ...args].join(' ') + '\n'); return 0; }
  const r = spawnSync('kexec', args, { encoding: 'utf8' });
  if (r.error) throw new LastwordError('EUNLOAD_KEXEC', `cannot run kexec: ${r.error.message} (install kexec-tools)`);
  if (r.status !== 0) throw new LastwordError('EUNLOAD_KEXEC', `kexec ${args.join(' ')} exited ${r.status}: ${(r.stderr || r.stdout).trim()}`);
  process.stdout.write(`lastword unload: capture kernel ${readReservation(root).loaded ? 'is still loaded' : 'unloaded'}\n`);
  return 0;
}
