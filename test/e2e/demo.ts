// `npm run demo`: the whole story in one command. Builds lastword and its capture initramfs, boots a
// QEMU guest (Debian's 6.1 kernel, TCG) with crashkernel=, loads the capture kernel with
// `lastword load`, panics the guest through /proc/sysrq-trigger, lets lastword (PID 1 of the
// capture kernel) save the dump to an ext4 virtio disk found by LABEL=, then opens the dump with
// crash and prints `bt` and the tail of `log`. Every step says how long it took.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { crashBinary, debugVmlinux, repo } from '../support/lab.ts';
import { extractExt4Tree, since } from '../support/qemu.ts';
import { bootCycle, captureConsole, crashReport, DEFAULT_LAYOUT, INIT_DIED, kver61, missingPrerequisite, prepareCycle, type CycleOptions } from './cycle.ts';

const t00 = Date.now();
let stepNo = 0;
function step(what: string): () => void {
  const n = ++stepNo;
  const t0 = Date.now();
  process.stdout.write(`\n== [${n}] ${what}\n`);
  return () => process.stdout.write(`== [${n}] done in ${since(t0)} s\n`);
}
function fail(why: string): never {
  process.stdout.write(`\n!! demo FAILED after ${since(t00)} s: ${why}\n`);
  process.exit(1);
}

/** The guest's console, minus kernel messages, so the user-space story stays readable. */
class ConsoleEcho extends Writable {
  private partial = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    const lines = (this.partial + chunk.toString()).split('\n');
    this.partial = lines.pop() ?? '';
    for (const l of lines) {
      const line = l.replace(/\r$/, '');
      if (/^\[\s*\d+\.\d+\]/.test(line) && !/Linux version|Kernel panic|sysrq|Attempted to kill/.test(line)) continue;
      if (line.trim()) process.stdout.write(`   | ${line}\n`);
    }
    cb();
  }
}

// --no-build reuses dist/lastword (for whoever just built it)
if (!process.argv.includes('--no-build')) {
  const done1 = step('build lastword (npm run build:native && npm run build)');
  for (const script of ['build:native', 'build']) {
    const r = spawnSync('npm', ['run', '-s', script], { cwd: repo, encoding: 'utf8' });
    if (r.status !== 0) fail(`npm run ${script}: ${(r.stderr || r.stdout).trim().split('\n').slice(-10).join('\n')}`);
  }
  done1();
}
const missing = missingPrerequisite();
if (missing) fail(missing);
const kver = kver61();
const vmlinux = debugVmlinux(kver);

const label = 'LWDUMP';
const opts: CycleOptions = {
  name: 'demo',
  kdumpConf: [
    '# /etc/kdump.conf of the demo guest (Fedora syntax, read unchanged by lastword)',
    `ext4 LABEL=${label}`,
    'path /var/crash',
    'core_collector makedumpfile -l --message-level 7 -d 31',
    'final_action poweroff',
    'failure_action poweroff',
    '',
  ].join('\n'),
  sysconfig: 'KDUMP_COMMANDLINE_APPEND="irqpoll nr_cpus=1 reset_devices panic=1"\n',
  crashkernel: process.env.CRASHKERNEL ?? '256M',
  disks: [{ name: 'dump', sizeMiB: 1024, ext4Label: label }],
  echo: new ConsoleEcho(),
};

const done2 = step(`capture initramfs (lastword initramfs --kernel ${kver} --layout ${DEFAULT_LAYOUT}), the guest's system disk and primary initramfs, the ext4 dump disk (mkfs.ext4 -L ${label})`);
let prepared;
try {
  prepared = prepareCycle(opts);
} catch (err) {
  fail((err as Error).message);
}
for (const [what, s] of prepared.steps) process.stdout.write(`   ${what}: ${s.toFixed(1)} s\n`);
process.stdout.write(`   capture initramfs ${fs.statSync(prepared.captureInitrd).size} bytes, primary ${fs.statSync(prepared.primaryInitrd).size} bytes\n`);
done2();

const done3 = step(`boot the guest (QEMU TCG, 1 GiB, crashkernel=${opts.crashkernel}), lastword load, panic, capture`);
const guest = bootCycle(opts, prepared);
const tBoot = Date.now();
const marks: Array<[RegExp, string]> = [
  [/E2E: PRIMARY UP/, 'primary kernel up'],
  [/E2E: LOADED/, 'capture kernel loaded (lastword load)'],
  [/E2E: CRASHING/, 'panicking via /proc/sysrq-trigger'],
];
try {
  let from = 0;
  for (const [re, what] of marks) {
    const m = await guest.waitFor(new RegExp(`${re.source}|E2E: LOAD FAILED.*`), 240_000, from);
    if (/LOAD FAILED/.test(m[0])) throw new Error(`lastword load failed in the guest: ${m[0]}`);
    from += m.index + m[0].length;
    process.stdout.write(`   -- ${what} at +${since(tBoot)} s\n`);
  }
  await guest.waitFor(/Linux version/, 120_000, from);
  process.stdout.write(`   -- capture kernel booting at +${since(tBoot)} s\n`);
  if (!(await guest.waitExitOrIdle(120_000, 900_000))) throw new Error(`the guest did not stop by itself (its console went silent for 2 minutes); console: ${path.join(prepared.dir, 'console.log')}`);
  process.stdout.write(`   -- guest stopped by itself at +${since(tBoot)} s\n`);
} catch (err) {
  guest.kill();
  fail((err as Error).message);
}
const capture = captureConsole(guest.console);
if (INIT_DIED.test(capture)) fail(`PID 1 of the capture kernel died:\n${capture.split('\n').filter((l) => INIT_DIED.test(l)).join('\n')}`);
done3();

const done4 = step('find the dump on the ext4 disk (debugfs rdump)');
const tree = path.join(prepared.dir, 'disk-contents');
const files = extractExt4Tree(prepared.disks.dump!, tree).filter((f) => !f.includes('lost+found'));
for (const f of files) process.stdout.write(`   ${path.relative(tree, f)}  ${fs.statSync(f).size} bytes\n`);
const dump = files.find((f) => path.basename(f) === 'vmcore') ?? files.find((f) => /vmcore/.test(path.basename(f)) && !/dmesg/.test(f));
if (!dump) fail('no vmcore on the dump disk; console log: ' + path.join(prepared.dir, 'console.log'));
if (path.basename(dump) !== 'vmcore') process.stdout.write(`   !! only a partial dump was saved: ${path.basename(dump)}\n`);
done4();

const done5 = step(`open the dump with crash (${crashBinary()}, ${vmlinux})`);
const report = crashReport(crashBinary(), vmlinux, dump);
const out = report.output;
const bt = out.slice(out.indexOf('PID:'), out.indexOf('\n\n', out.indexOf('PID:')) + 1 || undefined);
process.stdout.write('crash> bt\n' + bt.trimEnd().split('\n').filter((l) => !/^\[\s*\d+\.\d+\]/.test(l)).slice(0, 40).join('\n') + '\n');
const logLines = out.split('\n').filter((l) => /^\[\s*\d+\.\d+\]/.test(l));
process.stdout.write('crash> log | tail -15\n' + logLines.slice(-15).join('\n') + '\n');
if (!report.ok) fail('crash could not open the dump:\n' + out.split('\n').slice(-20).join('\n'));
done5();
process.stdout.write(`\ndemo OK in ${since(t00)} s: ${path.relative(repo, dump)}\n`);
