// `npm run bench`: lastword against makedumpfile on the same real vmcores, one after the other in
// one run, vmcore in the page cache for both; then lastword's ssh2 stream against OpenSSH to a
// loopback sshd. Prints markdown tables (also written to .cache/bench/last-run.md for the README).
//   npm run bench [-- --runs N] [--lastword node|dist] [--no-ssh] [--cases d31-zlib,...] [--mdf-threads]
// Not part of `npm test`: timings belong here, not in assertions.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import minimist from 'minimist';
import { benchVmcore, benchWorkloadReport } from '../support/bench-guest.ts';
import { measure, warm, type Command } from '../support/bench-measure.ts';
import { startBenchSshd, opensshArgs } from '../support/bench-ssh.ts';
import { formatCase, formatGoals, summarizeCase, type Goal, type RowSummary, type ToolRuns } from '../support/bench-table.ts';
import { cacheDir, repo } from '../support/lab.ts';
import { BOOKWORM_MAKEDUMPFILE } from '../filter/reference.ts';
import { bundleScript, SEA_EXEC_ARGV } from '../../initramfs/executable/build.ts';
import { DD_BLOCK } from '../../runtime/targets/ssh.ts';

interface FilterCase {
  name: string;
  title: string;
  /** makedumpfile and `lastword filter` take the same options. */
  args: string[];
  /** bookworm's makedumpfile 1.7.2 has no zstd or snappy (1.7.8 has). */
  makedumpfile: boolean;
  magic: Buffer;
}

const KDUMP = Buffer.from('KDUMP   ', 'latin1');
const ELF = Buffer.from('\x7fELF', 'latin1');
const cases: FilterCase[] = [
  { name: 'd31-zlib', title: '-d 31 -c (zlib)', args: ['-d', '31', '-c'], makedumpfile: true, magic: KDUMP },
  { name: 'd31-lzo', title: '-d 31 -l (lzo)', args: ['-d', '31', '-l'], makedumpfile: true, magic: KDUMP },
  { name: 'd31-zstd', title: '-d 31 -z (zstd)', args: ['-d', '31', '-z'], makedumpfile: false, magic: KDUMP },
  { name: 'd1-zlib', title: '-d 1 -c (zlib; only zero pages excluded, so compression dominates)', args: ['-d', '1', '-c'], makedumpfile: true, magic: KDUMP },
  { name: 'd0-elf', title: '-d 0 -E (ELF, every page)', args: ['-d', '0', '-E'], makedumpfile: true, magic: ELF },
];

const argv = minimist(process.argv.slice(2), { boolean: ['ssh', 'mdf-threads'], default: { ssh: true, runs: 3 }, string: ['lastword', 'cases'] });
const runs = Math.max(1, Number(argv.runs) || 3);
const selected = argv.cases ? new Set(String(argv.cases).split(',')) : undefined;
const benchDir = path.join(cacheDir, 'bench');
const outDir = path.join(benchDir, 'out');
const log = (line: string): void => { process.stderr.write(line + '\n'); };
// The two makedumpfiles: Debian 12's (what a bookworm fleet runs) and the current upstream release
// (sid's 1.7.8, put in .cache/lab/tools by .ci/setup). Ratios in the tables are against the first
// one that ran; the goals are judged against each.
const MDF_OLD = 'makedumpfile 1.7.2 (Debian 12)';
const MDF_NEW = 'makedumpfile 1.7.8 (current upstream)';
const newMdf = path.join(cacheDir, 'lab', 'tools', 'makedumpfile-new', 'makedumpfile');

/**
 * The executable as the capture runs it: from the initramfs, a tmpfs. Its peak RSS counts the pages
 * of the executable it maps, and how many those are depends on how the file's page cache was
 * filled: dist/lastword straight from the build (written in large pieces, so in large folios,
 * which the kernel maps whole) peaks ~20 MiB higher than the same bytes copied or unpacked into
 * 4 KiB pages, as the initramfs does. The startup table shows both.
 */
let tmpfsCopy: string | undefined;
function lastwordOnTmpfs(dist: string): string {
  if (tmpfsCopy) return tmpfsCopy;
  const dir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'lastword-bench-'));
  tmpfsCopy = path.join(dir, 'lastword');
  fs.copyFileSync(dist, tmpfsCopy);
  fs.chmodSync(tmpfsCopy, 0o755);
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return tmpfsCopy;
}

function lastwordCommand(): { cmd: string; args: string[]; label: string } {
  const dist = path.join(repo, 'dist', 'lastword');
  if (argv.lastword === 'dist') {
    if (!fs.existsSync(dist)) throw new Error('bench: --lastword dist but dist/lastword is missing (npm run build)');
    return { cmd: lastwordOnTmpfs(dist), args: [], label: 'dist/lastword (SEA), run from a copy on tmpfs as in the initramfs' };
  }
  return { cmd: process.execPath, args: [path.join(repo, 'runtime', 'main.ts')], label: `node runtime/main.ts (Node ${process.version})` };
}

function sh(cmd: string): string {
  try {
    return execFileSync('sh', ['-c', cmd], { encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
}

function machine(): string {
  const cpu = os.cpus();
  return [
    `- machine: ${cpu[0]?.model ?? '?'}, ${cpu.length} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${sh('uname -sr')}, ${sh('. /etc/os-release && echo "$PRETTY_NAME"')}`,
    `- makedumpfile: ${sh('makedumpfile -v 2>&1 | head -1')}; ${fs.existsSync(newMdf) ? sh(`'${newMdf}' -v 2>&1 | head -1`) : 'no makedumpfile 1.7.8 (.ci/setup puts it in .cache/lab/tools)'}; OpenSSH: ${sh('ssh -V 2>&1')}`,
    `- lastword: ${lastwordCommand().label}, commit ${sh(`git -C '${repo}' rev-parse --short HEAD`)}; ${runs} runs per tool, median shown`,
    `- load: ${sh('cut -d" " -f1-3 /proc/loadavg')} (1/5/15 min) when the bench started — other work on the machine skews the timings`,
  ].join('\n');
}

type CaseResult = { name: string; rows: RowSummary[] };

async function filterCase(c: FilterCase, vmcore: string, tag: string): Promise<CaseResult> {
  const inputBytes = fs.statSync(vmcore).size;
  const out = path.join(outDir, `${tag}-${c.name}`);
  log(`${tag} ${c.title}:`);
  warm(vmcore);
  const lw = lastwordCommand();
  let reference: ToolRuns | undefined;
  const others: ToolRuns[] = [];
  const cmd = (cmd: string, args: string[]): Command => ({ cmd, args, output: out, magic: c.magic, cwd: outDir });
  if (c.makedumpfile) {
    reference = await measure(MDF_OLD, cmd(BOOKWORM_MAKEDUMPFILE, [...c.args, vmcore, out]), runs, log);
    if (argv['mdf-threads']) others.push(await measure('makedumpfile 1.7.2 --num-threads 2', cmd(BOOKWORM_MAKEDUMPFILE, [...c.args, '--num-threads', '2', vmcore, out]), runs, log));
  }
  if (fs.existsSync(newMdf)) {
    const t = await measure(MDF_NEW, cmd(newMdf, [...c.args, vmcore, out]), runs, log);
    if (reference) others.push(t);
    else reference = t;
  }
  for (const threads of [1, 2]) {
    const t = await measure(`lastword --num-threads ${threads}`, cmd(lw.cmd, [...lw.args, 'filter', ...c.args, '--num-threads', String(threads), vmcore, out]), runs, log);
    if (!reference) t.note = 'no makedumpfile here has this codec: lastword alone, no ratios';
    others.push(t);
  }
  return { name: c.name, rows: summarizeCase(inputBytes, reference, others) };
}

async function sshCase(vmcore: string): Promise<CaseResult> {
  const inputBytes = fs.statSync(vmcore).size;
  log(`ssh (${inputBytes} bytes):`);
  warm(vmcore);
  const srv = await startBenchSshd();
  try {
    const remote = (name: string) => path.join(srv.inbox, name);
    const size = (name: string) => () => fs.statSync(remote(name)).size;
    const ssh = opensshArgs(srv).map((a) => `'${a}'`).join(' ');
    const openssh = (name: string, remoteCmd: (file: string) => string): Command => ({
      cmd: 'sh', args: ['-c', `cat '${vmcore}' | ssh ${ssh} '${remoteCmd(remote(name))}'`], output: remote(name), outputBytes: size(name), timeoutS: 300,
    });
    // The sender bundled like the executable's code and run with its V8 options, so its memory is
    // lastword's, not that of Node's TypeScript loader.
    const sender = path.join(outDir, 'ssh-send.cjs');
    await bundleScript(path.join(repo, 'test', 'bench', 'ssh-send.ts'), sender);
    const lastword = (name: string, transport: string): Command => ({
      cmd: process.execPath, args: [...SEA_EXEC_ARGV, sender, String(srv.port), srv.clientKey, srv.knownHosts, vmcore, srv.inbox, name, transport],
      env: { LASTWORD_NATIVE_DIR: path.join(repo, 'build', 'native') },
      output: remote(name), outputBytes: size(name), timeoutS: 300,
    });
    const sftpArgs = opensshArgs(srv).map((a) => (a === '-p' ? '-P' : a)).map((a) => `'${a}'`).join(' ');
    const opensshSftp: Command = {
      cmd: 'sh', args: ['-c', `echo 'put ${vmcore} ${remote('openssh-sftp')}' | sftp -q -b - ${sftpArgs} >/dev/null`],
      output: remote('openssh-sftp'), outputBytes: size('openssh-sftp'), timeoutS: 300,
    };
    const reference = await measure("OpenSSH: cat | ssh 'cat > file'", openssh('openssh-cat', (f) => `cat > ${f}`), runs, log);
    const others = [
      await measure("OpenSSH: cat | ssh 'dd bs=512 of=file' (Fedora kdump's command)", openssh('openssh-dd', (f) => `dd bs=512 of=${f} 2>/dev/null`), runs, log),
      await measure(`OpenSSH: cat | ssh 'dd bs=${DD_BLOCK} of=file' (lastword's command)`, openssh('openssh-dd1m', (f) => `dd bs=${DD_BLOCK} of=${f} 2>/dev/null`), runs, log),
      await measure(`lastword ssh2: stream into dd bs=${DD_BLOCK} (transport flattened)`, lastword('lastword-dd', 'flattened'), runs, log),
      await measure('OpenSSH: sftp put', opensshSftp, runs, log),
      await measure('lastword ssh2: SFTP writes at offsets', lastword('lastword-sftp', 'sftp'), runs, log),
    ];
    for (const t of [reference, ...others]) {
      if (!t.error && t.runs.some((r) => r.outBytes !== inputBytes)) t.error = `the server received ${t.runs.map((r) => r.outBytes).join('/')} bytes, not ${inputBytes}`;
    }
    return { name: 'ssh', rows: summarizeCase(inputBytes, reference, others) };
  } finally {
    await srv.stop();
  }
}

const row = (rs: CaseResult[], name: string, tool: string): RowSummary | undefined =>
  rs.find((r) => r.name === name)?.rows.find((x) => x.tool === tool);

/** `a` over `b` when both rows ran. */
function over(a: RowSummary | undefined, b: RowSummary | undefined, key: 'mbps' | 'outBytes' | 'maxRssKib'): number | undefined {
  if (!a || !b || a.error || b.error) return undefined;
  const r = a[key] / b[key];
  return Number.isFinite(r) ? r : undefined;
}

function goals(big: CaseResult[], ssh: CaseResult | undefined): Goal[] {
  const g: Goal[] = [];
  const refs = [['1.7.2', MDF_OLD], ['1.7.8', MDF_NEW]] as const;
  for (const c of ['d31-zlib', 'd31-lzo']) {
    for (const [v, ref] of refs) {
      g.push({ name: `${c} throughput, 1 worker, vs ${v}`, value: over(row(big, c, 'lastword --num-threads 1'), row(big, c, ref), 'mbps'), limit: 1.0, atMost: false });
      g.push({ name: `${c} throughput, 2 workers, vs ${v}`, value: over(row(big, c, 'lastword --num-threads 2'), row(big, c, ref), 'mbps'), limit: 2.0, atMost: false });
    }
  }
  for (const c of ['d31-zlib', 'd31-lzo', 'd31-zstd', 'd1-zlib', 'd0-elf']) {
    // The output does not depend on the worker count: the first lastword row that ran.
    const rows = big.find((r) => r.name === c)?.rows ?? [];
    const lw = rows.find((r) => r.tool.startsWith('lastword') && !r.error);
    for (const [v, ref] of refs) {
      const mdf = rows.find((r) => r.tool === ref);
      if (!mdf && c === 'd31-zstd') continue;       // 1.7.2 has no zstd
      const diff = lw && mdf && !mdf.error ? lw.outBytes - mdf.outBytes : undefined;
      g.push({ name: `${c} output bytes vs ${v}`, value: over(lw, mdf, 'outBytes'), limit: 1.0, atMost: true, detail: diff === undefined ? undefined : `${diff >= 0 ? '+' : ''}${diff.toLocaleString('en-US')} bytes` });
    }
  }
  for (const [v, ref] of refs) {
    const rss = big.flatMap((c) => c.rows.filter((r) => r.tool.startsWith('lastword')).map((r) => over(r, c.rows.find((x) => x.tool === ref), 'maxRssKib')))
      .filter((x): x is number => x !== undefined);
    g.push({ name: `peak RSS, worst case above, vs ${v}`, value: rss.length ? Math.max(...rss) : undefined, limit: 1.5, atMost: true });
  }
  const sshRow = (prefix: string) => ssh?.rows.find((r) => r.tool.startsWith(prefix));
  g.push({ name: 'SSH throughput vs OpenSSH cat', value: sshRow('lastword ssh2: stream')?.mbpsRatio, limit: 0.9, atMost: false });
  g.push({ name: 'SSH SFTP throughput vs OpenSSH sftp put', value: over(sshRow('lastword ssh2: SFTP'), sshRow('OpenSSH: sftp put'), 'mbps'), limit: 0.9, atMost: false });
  return g;
}

function rssSideBySide(small: CaseResult | undefined, big: CaseResult | undefined, smallBytes: number, bigBytes: number): string {
  const lines = [
    `| tool (-d 31 -c) | peak RSS, ${(smallBytes / 2 ** 30).toFixed(2)} GiB vmcore | peak RSS, ${(bigBytes / 2 ** 30).toFixed(2)} GiB vmcore | 4 GiB / 1 GiB |`,
    '|---|---:|---:|---:|',
  ];
  for (const r of big?.rows ?? []) {
    const s = small?.rows.find((x) => x.tool === r.tool);
    const mib = (k: number | undefined) => (k !== undefined && Number.isFinite(k) ? `${(k / 1024).toFixed(1)} MiB` : '–');
    const growth = s && Number.isFinite(s.maxRssKib) && Number.isFinite(r.maxRssKib) ? `${(r.maxRssKib / s.maxRssKib).toFixed(2)}x` : '';
    lines.push(`| ${r.tool} | ${mib(s?.maxRssKib)} | ${mib(r.maxRssKib)} | ${growth} |`);
  }
  return lines.join('\n');
}

/** Peak RSS (KiB) of one short command, from GNU time. */
function startupRssKib(cmd: string, args: string[]): number {
  const r = spawnSync('/usr/bin/time', ['-f', '%M', cmd, ...args], { encoding: 'utf8' });
  return Number(r.stderr.trim().split('\n').at(-1));
}

/** Drops a file's clean pages from the page cache (posix_fadvise DONTNEED, through dd). */
function evict(file: string): void {
  spawnSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0'], { stdio: 'ignore' });
  spawnSync('dd', [`of=${file}`, 'oflag=nocache', 'conv=notrunc,fdatasync', 'count=0'], { stdio: 'ignore' });
}

/**
 * What each program costs before it does any work: its startup RSS. File-backed pages count in
 * RSS; a freshly built executable is all in the page cache, so the kernel's fault-around maps up
 * to 16 pages per fault of it. Evicted first, only the pages touched count.
 */
function rssFloor(): string {
  const lw = lastwordCommand();
  const mib = (k: number) => (Number.isFinite(k) && k > 0 ? `${(k / 1024).toFixed(1)} MiB` : '–');
  const rows: [string, string, string[]][] = [
    ['makedumpfile -v', 'makedumpfile', ['-v']],
    [`node -e 0 (${process.version})`, process.execPath, ['-e', '0']],
    [`${lw.label} --version`, lw.cmd, [...lw.args, '--version']],
  ];
  const dist = path.join(repo, 'dist', 'lastword');
  if (argv.lastword === 'dist') rows.push(['dist/lastword as built --version', dist, ['--version']]);
  const lines = ['| program | startup RSS (executable in page cache) | startup RSS (executable evicted first) |', '|---|---:|---:|'];
  for (const [label, cmd, args] of rows) {
    const warmKib = startupRssKib(cmd, args);
    const exe = cmd.includes('/') ? cmd : sh(`command -v ${cmd}`);
    evict(exe);
    const coldKib = startupRssKib(cmd, args);
    lines.push(`| ${label} | ${mib(warmKib)} | ${mib(coldKib)} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<number> {
  fs.mkdirSync(outDir, { recursive: true });
  log('bench: making (or reusing) the 1 GiB and 4 GiB guest vmcores (.cache/bench)…');
  const small = benchVmcore(1024);
  const big = benchVmcore(4096);
  const report: string[] = ['### Benchmark run', '', `- date: ${new Date().toISOString().slice(0, 16)}Z`, machine()];
  for (const [v, label] of [[big, '4 GiB'], [small, '1 GiB']] as const) {
    report.push(`- ${label} guest vmcore: ${fs.statSync(v).size.toLocaleString('en-US')} bytes (real kdump of a QEMU TCG guest, 6.1 kernel); ${benchWorkloadReport(v)}`);
  }
  const bigResults: CaseResult[] = [];
  for (const c of cases.filter((x) => !selected || selected.has(x.name))) {
    const r = await filterCase(c, big, 'm4096');
    bigResults.push(r);
    report.push('', formatCase(`4 GiB guest: ${c.title}`, r.rows));
  }
  const smallZlib = !selected || selected.has('d31-zlib') ? await filterCase(cases[0]!, small, 'm1024') : undefined;
  if (smallZlib) report.push('', formatCase('1 GiB guest: -d 31 -c (zlib)', smallZlib.rows));
  report.push('', '#### Peak RSS against vmcore size', '', rssSideBySide(smallZlib, bigResults.find((r) => r.name === 'd31-zlib'), fs.statSync(small).size, fs.statSync(big).size));
  report.push('', '#### Startup RSS (the floor under each peak above)', '', rssFloor());
  let ssh: CaseResult | undefined;
  if (argv.ssh) {
    ssh = await sshCase(small);
    report.push('', formatCase(`SSH to a loopback sshd: the 1 GiB guest vmcore as is`, ssh.rows));
  }
  report.push('', '#### Goals (issue 8)', '', formatGoals(goals(bigResults, ssh)));
  const text = report.join('\n') + '\n';
  fs.writeFileSync(path.join(benchDir, 'last-run.md'), text);
  process.stdout.write(text);
  fs.rmSync(outDir, { recursive: true, force: true });
  return 0;
}

main().then((code) => process.exit(code), (err: unknown) => {
  console.error(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exit(1);
});
