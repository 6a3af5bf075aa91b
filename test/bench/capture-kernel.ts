// `npm run bench:capture`: lastword and makedumpfile where they really run, in a capture kernel
// reading /proc/vmcore (whose read() copies old memory page by page, unlike a vmcore file in the
// page cache, which `npm run bench` uses). A 6.1 QEMU TCG guest panics; the capture image's
// kdump_pre hook (shipped by `lastword initramfs` as kdump.conf's `kdump_pre` and `extra_bins`)
// runs each case in turn on /proc/vmcore into the capture kernel's /tmp and prints its wall time
// from /proc/uptime, and the STEP times both report (--message-level 16); then lastword, PID 1,
// saves the dump as usual. One CPU (nr_cpus=1), as kdump's command line has it: lastword then
// compresses in its main thread (--num-threads 1 adds a compression thread). makedumpfile is
// Debian 12's 1.7.2 (its binary and libraries shipped through extra_bins). Not part of npm test.
// Options: --runs N (default 3), --level N (31), --codec -l|-c|-z, --mem MiB (1024), --crashkernel (384M).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { bootCycle, captureConsole, missingPrerequisite, prepareCycle, type CycleOptions } from '../e2e/cycle.ts';

const arg = (name: string, dflt: string) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1]! : dflt; };
const runs = Number(arg('--runs', '3'));
const level = arg('--level', '31');
const codec = arg('--codec', '-l');
const memMiB = Number(arg('--mem', '1024'));
const crashkernel = arg('--crashkernel', '384M');
const missing = missingPrerequisite();
if (missing) { console.error(`bench:capture: ${missing}`); process.exit(1); }

const LW = '/usr/lib/lastword/ro/lastword';
// --message-level 16: both print how long each step took (makedumpfile's STEP report).
const cases: Array<[string, string]> = [
  ['makedumpfile 1.7.2 (mmap)', `/usr/bin/makedumpfile ${codec} -d ${level} --message-level 16 /proc/vmcore /tmp/out`],
  ['lastword (mmap)', `${LW} filter ${codec} -d ${level} --message-level 16 /proc/vmcore /tmp/out`],
  ['makedumpfile 1.7.2 --non-mmap', `/usr/bin/makedumpfile --non-mmap ${codec} -d ${level} --message-level 16 /proc/vmcore /tmp/out`],
  ['lastword --non-mmap', `${LW} filter --non-mmap ${codec} -d ${level} --message-level 16 /proc/vmcore /tmp/out`],
  ['lastword --num-threads 1', `${LW} filter --num-threads 1 ${codec} -d ${level} --message-level 16 /proc/vmcore /tmp/out`],
  // The order lastword save writes in (runtime/filter/crash-first.ts): what it costs in a capture kernel.
  ['lastword --crash-first', `${LW} filter --crash-first ${codec} -d ${level} --message-level 16 /proc/vmcore /tmp/out`],
  ['lastword --version (start-up alone)', `${LW} --version`],
];
// The hook: busybox sh builtins only (no cut, no bc): /proc/uptime in hundredths of a second.
const hook = `#!/bin/sh
now() { read u rest < /proc/uptime; echo \${u%.*}\${u#*.}; }
r=1
while [ $r -le ${runs} ]; do
${cases.map(([name, cmd]) => `  a=$(now); ${cmd} >/tmp/case.log 2>&1; rc=$?; b=$(now); s=$(ls -l /tmp/out 2>/dev/null); rm -f /tmp/out
  echo "BENCH|${name}|$r|$((b - a))|$rc|$s"; [ $rc = 0 ] || tail -3 /tmp/case.log
  while read -r l; do case "$l" in STEP*) echo "STEPS|${name}|$r|$l";; esac; done < /tmp/case.log`).join('\n')}
  r=$((r + 1))
done
exit 0
`;

// makedumpfile and its libraries, busybox as /bin/sh: the guest's root as an admin would have it.
const guestFiles: CycleOptions['guestFiles'] = {
  '/usr/local/sbin/lastword-bench': { data: hook, mode: 0o755 },
  '/bin/sh': { data: fs.readFileSync('/bin/busybox'), mode: 0o755 },
  '/usr/bin/makedumpfile': { data: fs.readFileSync('/usr/bin/makedumpfile'), mode: 0o755 },
};
const ldd = execFileSync('ldd', ['/usr/bin/makedumpfile'], { encoding: 'utf8' });
for (const m of ldd.matchAll(/(?:=> )?(\/\S+) \(0x/g)) guestFiles[m[1]!] = { data: fs.readFileSync(fs.realpathSync(m[1]!)), mode: 0o755 };

const opts: CycleOptions = {
  name: 'bench-capture',
  kdumpConf: ['ext4 LABEL=LWBENCH', 'path /var/crash', `core_collector makedumpfile ${codec} -d ${level}`,
    'extra_bins /usr/bin/makedumpfile', 'kdump_pre /usr/local/sbin/lastword-bench', 'final_action poweroff', 'failure_action poweroff', ''].join('\n'),
  sysconfig: 'KDUMP_COMMANDLINE_APPEND="irqpoll nr_cpus=1 reset_devices panic=1"\n',
  crashkernel,
  memMiB,
  guestFiles,
  disks: [{ name: 'dump', sizeMiB: 1024, ext4Label: 'LWBENCH' }],
};
const prepared = prepareCycle(opts);
const guest = bootCycle(opts, prepared);
if (!(await guest.waitExitOrIdle(300_000, 3_600_000))) { guest.kill(); console.error('bench:capture: the guest did not stop'); process.exit(1); }
const capture = captureConsole(guest.console);
const rows = [...capture.matchAll(/^BENCH\|([^|]+)\|(\d+)\|(\d+)\|(\d+)\|(.*)$/gm)].map((m) => ({ name: m[1]!, run: Number(m[2]), s: Number(m[3]) / 100, rc: Number(m[4]), size: Number(m[5]!.trim().split(/\s+/)[4] ?? 0) }));
if (rows.length === 0) { console.error(`bench:capture: no BENCH lines; console: ${path.join(prepared.dir, 'console.log')}`); process.exit(1); }
for (const m of capture.matchAll(/^STEPS\|([^|]+)\|1\|(.*)$/gm)) console.log(`${m[1]}: ${m[2]}`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`| in the capture kernel, ${memMiB} MiB guest, ${codec} -d ${level}, ${runs} runs | wall (median) | runs | bytes |`);
console.log('|---|---|---|---|');
for (const [name] of cases) {
  const r = rows.filter((x) => x.name === name);
  const failed = r.filter((x) => x.rc !== 0).length;
  console.log(`| ${name} | ${median(r.map((x) => x.s)).toFixed(2)} s | ${r.map((x) => x.s.toFixed(2)).join(', ')}${failed ? ` (${failed} failed)` : ''} | ${median(r.map((x) => x.size))} |`);
}
