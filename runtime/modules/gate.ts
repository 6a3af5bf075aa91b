// The kernel loads modules by itself too: mount(2) of ext4 asks for "fs-ext4", crypto for
// "crypto-crc32c", a new device for its modalias. It runs the program named in
// /proc/sys/kernel/modprobe (/sbin/modprobe, kmod's, in the capture image), which would load a
// blacklisted dependency as readily as anything else (closure.ts says why kmod's own config does
// not stop it). So the capture points /proc/sys/kernel/modprobe at a small busybox sh script that
// knows every blocked module: it resolves each requested name with `modprobe -R`, refuses the
// request with a console line naming the module and the blacklisted one, and otherwise execs the
// real modprobe. The script is generated, not hand-written: its list comes from closure.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { System } from '../system/types.ts';
import { describeBlocked, type BlockedModule } from './closure.ts';

export const KERNEL_MODPROBE = '/proc/sys/kernel/modprobe';
export const GATE_PATH = '/run/lastword/modprobe-gate';

const shQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The gate script for `blocked`, exec'ing `realModprobe` for everything else. Pure. */
export function modprobeGateScript(blocked: ReadonlyMap<string, BlockedModule>, realModprobe: string, consolePath = '/dev/console'): string {
  const cases: string[] = [];
  for (const [name, b] of [...blocked].sort(([a], [c]) => a.localeCompare(c))) {
    // modprobe -R prints names as modules.dep spells them; '-' and '_' are the same module.
    const pats = [...new Set([name, name.replace(/_/g, '-')])].join('|');
    cases.push(`    ${pats}) why=${shQuote(describeBlocked(b))} ;;`);
  }
  return `#!/bin/sh
# Written by lastword (runtime/modules/gate.ts) and named in ${KERNEL_MODPROBE}: the kernel's own
# module requests pass here, so that no blacklisted module loads, not even as a dependency.
set -f
real=${shQuote(realModprobe)}
console=${shQuote(consolePath)}
for a in "$@"; do
  case $a in -*) continue ;; esac
  for m in $("$real" -R "$a" 2>/dev/null) "$a"; do
    why=
    case $m in
${cases.join('\n')}
    esac
    if [ -n "$why" ]; then
      line="lastword: refusing the kernel's request for module $a: $why"
      { echo "$line" > "$console"; } 2>/dev/null || echo "$line" >&2
      exit 1
    fi
  done
done
exec "$real" "$@"
`;
}

export interface GateOptions {
  /** where the script goes; default GATE_PATH */
  path?: string;
  /** the kernel's knob; default /proc/sys/kernel/modprobe */
  procFile?: string;
  /** kmod's modprobe, used when the knob names nothing usable */
  modprobe?: string;
  /** where refusals are written; default /dev/console */
  console?: string;
}

/**
 * Writes the gate and points the kernel at it; returns the script's path. The program the knob
 * named before (kmod's /sbin/modprobe) is what the gate runs for allowed requests.
 */
export function installModprobeGate(system: Pick<System, 'log'>, blocked: ReadonlyMap<string, BlockedModule>, opts: GateOptions = {}): string {
  const gate = opts.path ?? GATE_PATH;
  const procFile = opts.procFile ?? KERNEL_MODPROBE;
  let before = '';
  try { before = fs.readFileSync(procFile, 'utf8').trim(); } catch { /* no knob: CONFIG_MODULES=n */ }
  let real = before && before !== gate ? before : '';
  if (!real && before === gate) {
    // A second capture run (lastword save from the rescue shell): keep what the first one found.
    try { real = /^real='([^']*)'$/m.exec(fs.readFileSync(gate, 'utf8'))?.[1] ?? ''; } catch { /* gone: the default */ }
  }
  real ||= opts.modprobe ?? '/sbin/modprobe';
  fs.mkdirSync(path.dirname(gate), { recursive: true });
  fs.writeFileSync(gate, modprobeGateScript(blocked, real, opts.console), { mode: 0o755 });
  fs.chmodSync(gate, 0o755);
  fs.writeFileSync(procFile, gate + '\n');
  const names = [...blocked.keys()].sort();
  system.log(`lastword: kernel module requests go through ${gate} (${procFile} was ${before || 'unset'}); ${names.length} modules refused${names.length ? `: ${names.slice(0, 12).join(' ')}${names.length > 12 ? ' ...' : ''}` : ''}`);
  return gate;
}
