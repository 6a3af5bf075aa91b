// `lastword savecore [--root DIR] [--config FILE] [VMCORE]`: what Debian's `kdump-config savecore`
// does, done by lastword: read /etc/default/kdump-tools, take $KDUMP_COREDIR/kdump_lock (the flock
// kdump-config itself takes), save dump.<stamp> and dmesg.<stamp> in $KDUMP_COREDIR/<stamp>/
// (network targets: <ip or hostname>-<stamp>/), keep KDUMP_NUM_DUMPS. It is `lastword save` with
// Debian's layout (the same capture flow, runtime/pid1/capture.ts), and it is kdump-tools'
// fallback when makedumpfile is missing or fails (hooks/kdump-tools/).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isSea } from 'node:sea';
import minimist from 'minimist';
import { LastwordError, usageError } from '../errors.ts';
import { DEBIAN_CONF, loadPlan } from '../config/load.ts';
import { capture } from '../pid1/capture.ts';
import { underRoot } from '../targets/naming.ts';
import { realStages } from './save.ts';

const HELP = `usage: lastword savecore [--root DIR] [--config FILE] [--lock-timeout SEC] [VMCORE]

Debian's kdump-config savecore, done by lastword: saves VMCORE (default /proc/vmcore) as
$KDUMP_COREDIR/<YYYYMMDDHHMM>/dump.<stamp> with dmesg.<stamp>, under $KDUMP_COREDIR/kdump_lock,
keeping KDUMP_NUM_DUMPS dumps.
  --root DIR          read /etc/default/kdump-tools under DIR; KDUMP_COREDIR is under DIR
  --config FILE       this kdump-tools file instead of /etc/default/kdump-tools
  --lock-timeout SEC  wait this long for kdump_lock (default 60; 0: fail at once when held)
Exit status: 0 dump saved, 1 not (complete).`;

/** Set in the child that runs under flock(1), so it does not take the lock again. */
const LOCKED_ENV = 'LASTWORD_SAVECORE_LOCKED';

export async function run(argv: string[]): Promise<number> {
  const o = minimist(argv, {
    string: ['root', 'config', 'lock-timeout'], boolean: ['help'], alias: { h: 'help' },
    unknown: (a) => { if (a.startsWith('-')) throw usageError(`unknown option ${a}\n${HELP}`); return true; },
  });
  if (o.help) { process.stdout.write(HELP + '\n'); return 0; }
  if (o._.length > 1) throw usageError(`one VMCORE at most\n${HELP}`);
  const root = path.resolve(o.root ?? '/');
  const vmcore = o._.length ? String(o._[0]) : '/proc/vmcore';
  const config = o.config ? path.resolve(o.config) : path.join(root, DEBIAN_CONF);
  if (!fs.existsSync(config)) throw new LastwordError('ECONFIG_MISSING', `${config}: no kdump-tools config (savecore is Debian's layout)`, { where: { file: config } });
  const plan = loadPlan({ config, root, cmdline: '' });
  // kdump-config savecore always uses Debian's names, whatever the file looked like.
  plan.layout = 'debian';
  plan.naming = { ...plan.naming, layout: 'debian' };

  const { realSystem } = await import('../system/real.ts');
  const sys = realSystem();
  if (process.env[LOCKED_ENV] !== '1') {
    // kdump-config holds `flock $KDUMP_COREDIR/kdump_lock` while it saves or loads; take the same
    // lock with flock(1), so lastword and kdump-config never run into each other.
    const coredir = plan.target.kind === 'root' || plan.target.kind === 'local-fs' ? underRoot(root, plan.path) : undefined;
    if (coredir && spawnSync('sh', ['-c', 'command -v flock']).status === 0) {
      fs.mkdirSync(coredir, { recursive: true });
      const lock = path.join(coredir, 'kdump_lock');
      const self = isSea() ? [process.execPath] : [process.execPath, process.argv[1]!];
      const wait = String(Number(o['lock-timeout'] ?? 60));
      const r = spawnSync('flock', ['--exclusive', '--timeout', wait, '--conflict-exit-code', '75', lock, ...self, 'savecore', ...argv], {
        stdio: 'inherit', env: { ...process.env, [LOCKED_ENV]: '1' },
      });
      if (r.status === 75) throw new LastwordError('ESAVECORE_LOCKED', `${lock} is held by another kdump-config or lastword for more than ${wait} s`, { where: { file: lock } });
      return r.status ?? 1;
    }
  }
  if (!plan.enabled) {
    sys.log('lastword savecore: USE_KDUMP=0 in the kdump-tools config; nothing saved');
    return 0;
  }
  const outcome = await capture({ sys, plan, vmcore, stages: realStages(sys, { root }), prepareSystem: false });
  sys.log(`lastword savecore: ${outcome.ok ? 'saved' : 'failed'}: ${outcome.reason}${outcome.dump ? ` (${outcome.dump})` : ''}`);
  return outcome.ok ? 0 : 1;
}
