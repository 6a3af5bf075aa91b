// `lastword plan [--config FILE] [--cmdline STRING] [--root DIR] [--json]`: prints the capture plan
// built from the kdump configs and the kernel command line, with every warning and its line.
import minimist from 'minimist';
import { usageError } from '../errors.ts';
import { loadPlan } from '../config/load.ts';
import { sourceAt, type ConnectRetry, type Plan, type Target } from '../config/plan.ts';
import { describeDevice } from '../config/target-spec.ts';
import { readShippedBlacklists, resolveBlacklist } from '../modules/blacklist.ts';
import { DEFAULT_MOUNT_POINT, nfsMountArgs } from '../targets/open.ts';

const HELP = `usage: lastword plan [--config FILE] [--cmdline STRING] [--root DIR] [--json]

Prints the capture plan: target, path, filter options, actions, modules, network.
  --config FILE     read this kdump.conf or kdump-tools file instead of the standard places
  --cmdline STRING  use this kernel command line instead of /proc/cmdline
  --root DIR        look for /etc/kdump.conf, /etc/default/kdump-tools... under DIR
  --json            print the plan as JSON`;

const tries = (r: ConnectRetry | undefined): string => (r ? `, ${r.attempts} attempt${r.attempts === 1 ? '' : 's'} ${r.delayMs / 1000} s apart` : '');

function target(t: Target): string {
  switch (t.kind) {
    case 'root': return 'root filesystem';
    case 'stdout': return 'standard output (flattened)';
    case 'local-fs': return `${t.fstype} ${describeDevice(t.device)}${t.mountOptions.length ? ` -o ${t.mountOptions.join(',')}` : ''}`;
    case 'raw': return `raw ${describeDevice(t.device)} (flattened)`;
    case 'nfs': return `nfs ${t.server.includes(':') ? `[${t.server}]` : t.server}:${t.export}${t.mountOptions.length ? ` -o ${t.mountOptions.join(',')}` : ''}${tries(t.retry)}`;
    case 'ssh': return `ssh ${t.user}@${t.host}:${t.port} key ${t.key} known_hosts ${t.knownHosts} (${t.transport})${tries(t.retry)}`;
    case 'ftp': return `ftp ${t.user}@${t.host}:${t.port} into ${t.dir} (flattened${t.user === 'anonymous' ? ', anonymous' : ', password set'})`;
  }
}

export function formatPlan(p: Plan, shippedBlacklist = readShippedBlacklists()): string {
  const c = p.collector;
  const at = sourceAt;
  const lines = [
    `sources:        ${p.sources.join(', ') || '(none)'}`,
    `layout:         ${p.layout}${p.enabled ? '' : ' (USE_KDUMP=0: capture disabled)'}`,
    `target:         ${target(p.target)}  [${at(p.target.source)}]`,
    ...(p.target.kind === 'nfs' ? [`  mount:        mount.nfs ${nfsMountArgs(p.target, DEFAULT_MOUNT_POINT).join(' ')}`] : []),
    // Debian's FTP + SSH + NFS: one dump to each, in this order.
    ...p.alsoTargets.flatMap((t) => [`then also:      ${target(t)}  [${at(t.source)}]`,
      ...(t.kind === 'nfs' ? [`  mount:        mount.nfs ${nfsMountArgs(t, DEFAULT_MOUNT_POINT).join(' ')}`] : [])]),
    `path:           ${p.path}`,
    `naming:         host tag ${p.naming.hostTag}${p.naming.testId ? `, test id ${p.naming.testId}` : ''}`,
    `collector:      ${c.program} ${c.args.join(' ')}  [${at(c.source)}]`,
    `  dump level:   ${c.dumpLevel}`,
    `  format:       ${c.format}${c.flattened || p.postCompression ? ' (flattened)' : ''}, codec ${c.codec}${c.messageLevel !== undefined ? `, message level ${c.messageLevel}` : ''}`,
    ...(p.postCompression ? [`  then:         ${p.postCompression.method} of the whole file (KDUMP_COMPRESSION)  [${at(p.postCompression.source)}]`] : []),
    `dmesg:          ${p.dmesg ? 'saved' : 'not saved'}`,
    `keep dumps:     ${p.numDumps === 0 ? 'all' : p.numDumps}`,
    `stall timeout:  ${p.stallTimeoutMs === 0 ? 'none' : `${p.stallTimeoutMs / 1000} s without a byte taken fails the target`}`,
    `final action:   ${p.finalAction}`,
    `failure action: ${p.failureAction}${p.failureCommand ? ` after running: ${p.failureCommand}` : ''}`,
  ];
  for (const [kind, hooks] of Object.entries(p.hooks)) {
    for (const h of hooks) lines.push(`${kind.padEnd(9)} hook:  ${[h.path, ...h.args].join(' ')} (limit ${h.timeoutMs / 1000} s)  [${at(h.source)}]`);
  }
  lines.push(`modules:        extra ${p.modules.extra.join(' ') || '-'}; reset_devices ${p.modules.resetDevices ? 'on' : 'off'}; disk timeout ${p.modules.diskTimeoutMs / 1000} s`);
  // The effective list: the configs' and the command line's entries, then the shipped lists.
  for (const b of resolveBlacklist(p, shippedBlacklist)) lines.push(`  blacklist:    ${b.module} (${b.reason})  [${at(b.source)}]`);
  for (const ip of p.network.ip) {
    const parts = [ip.interface ?? 'any interface', ip.autoconf === 'none' ? `static ${ip.clientIp}/${ip.netmask ?? ''}` : ip.autoconf];
    if (ip.gateway) parts.push(`gateway ${ip.gateway}`);
    if (ip.mtu) parts.push(`mtu ${ip.mtu}`);
    lines.push(`network:        ${parts.join(', ')}`);
  }
  if (p.network.nameservers.length) lines.push(`nameservers:    ${p.network.nameservers.join(' ')}`);
  const f = p.fence;
  if (f) lines.push(`fence_kdump:    notify ${f.nodes.join(' ')} on udp port ${f.port} (${f.family}) every ${f.intervalS} s${f.count ? `, ${f.count} times` : ' until the capture ends'}  [${at(f.source)}]`);
  const k = p.kexec;
  lines.push(`kexec:          kernel ${k.kernel ?? '(running version)'} initrd ${k.initrd ?? '(built)'}`);
  lines.push(`  append:       ${k.commandlineAppend.join(' ')}`);
  if (k.commandlineRemove.length) lines.push(`  remove:       ${k.commandlineRemove.join(' ')}`);
  for (const w of p.warnings) lines.push(`warning: ${at(w)}: ${w.message}`);
  return lines.join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const opts = minimist(argv, { string: ['config', 'cmdline', 'root'], boolean: ['json', 'help'], alias: { h: 'help' } });
  const unknown = Object.keys(opts).filter((k) => !['_', 'config', 'cmdline', 'root', 'json', 'help', 'h'].includes(k));
  if (unknown.length) throw usageError(`unknown option --${unknown[0]}\n${HELP}`);
  if (opts.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (opts._.length) throw usageError(`unexpected argument '${opts._[0]}'`);
  const plan = loadPlan({ config: opts.config, cmdline: opts.cmdline, root: opts.root });
  // The FTP password stays in the config file it came from.
  const hide = (t: Target): Target => (t.kind === 'ftp' ? { ...t, password: '***' } : t);
  const shown = { ...plan, target: hide(plan.target), alsoTargets: plan.alsoTargets.map(hide) };
  process.stdout.write((opts.json ? JSON.stringify(shown, null, 2) : formatPlan(plan)) + '\n');
  return 0;
}
