// Runs one command of the bench and measures it: wall time around the whole process, peak RSS
// from wait4's rusage as GNU time reports it (`%M`, KiB; for a pipeline run through sh it is the
// largest single process of the tree), and the size of what it wrote.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Measurement, ToolRuns } from './bench-table.ts';

export interface Command {
  cmd: string;
  args: string[];
  /** The file the command writes; removed before and after each run. */
  output: string;
  /** Reads the output's size when it is not a local file (e.g. on the ssh server). Defaults to stat. */
  outputBytes?: () => number;
  /** The output must start with these bytes (a quick sign the tool wrote the format asked for). */
  magic?: Buffer;
  cwd?: string;
  /** Added to the environment. */
  env?: Record<string, string>;
  /** Kills the command's process group after this long (a hung tool must not hang the bench). */
  timeoutS?: number;
}

const timeBinary = '/usr/bin/time';

function lastLine(s: string): string {
  return s.trim().split('\n').filter(Boolean).at(-1) ?? '';
}

/** One run; rejects with the command's own last stderr line when it fails. */
export async function measureOnce(c: Command): Promise<Measurement> {
  fs.rmSync(c.output, { force: true });
  // Every run starts with no dirty pages: neither tool fsyncs its output, and the writeback of the
  // run before (another tool's 1-4 GB) would otherwise throttle this one's writes.
  spawnSync('sync');
  const timeFile = path.join(os.tmpdir(), `lastword-bench-time-${process.pid}`);
  const t0 = process.hrtime.bigint();
  const child = spawn(timeBinary, ['-f', '%M %U %S', '-o', timeFile, c.cmd, ...c.args], { cwd: c.cwd, env: c.env ? { ...process.env, ...c.env } : undefined, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* already gone */ }
  }, (c.timeoutS ?? 900) * 1000);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4096); });
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (rc) => resolve(rc ?? -1));
  }).finally(() => clearTimeout(timer));
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  const timeOut = fs.existsSync(timeFile) ? fs.readFileSync(timeFile, 'utf8') : '';
  fs.rmSync(timeFile, { force: true });
  try {
    if (timedOut) throw new Error(`killed after ${c.timeoutS ?? 900} s without finishing (hung?); ${lastLine(stderr)}`.slice(0, 300));
    if (code !== 0) throw new Error(`exit ${code}: ${lastLine(stderr) || lastLine(timeOut)}`.slice(0, 300));
    const [maxRssKib, userS, sysS] = lastLine(timeOut).split(' ').map(Number) as [number, number, number];
    if (!Number.isFinite(maxRssKib) || maxRssKib <= 0) throw new Error(`no peak RSS from ${timeBinary}: '${timeOut.trim()}'`);
    const cpuS = userS + sysS;
    const outBytes = c.outputBytes ? c.outputBytes() : fs.statSync(c.output).size;
    if (c.magic) {
      const head = Buffer.alloc(c.magic.length);
      const fd = fs.openSync(c.output, 'r');
      fs.readSync(fd, head, 0, head.length, 0);
      fs.closeSync(fd);
      if (!head.equals(c.magic)) throw new Error(`output does not start with ${JSON.stringify(c.magic.toString('latin1'))}`);
    }
    return { wallS, maxRssKib, outBytes, cpuS };
  } finally {
    fs.rmSync(c.output, { force: true });
  }
}

/** `runs` runs of one tool; stops at the first failure and records why. */
export async function measure(tool: string, c: Command, runs: number, log: (line: string) => void): Promise<ToolRuns> {
  const result: ToolRuns = { tool, runs: [] };
  for (let i = 0; i < runs; i++) {
    try {
      const m = await measureOnce(c);
      result.runs.push(m);
      log(`  ${tool}: ${m.wallS.toFixed(2)} s, ${m.cpuS?.toFixed(2)} s CPU, ${(m.maxRssKib / 1024).toFixed(1)} MiB RSS, ${m.outBytes} bytes`);
    } catch (err) {
      result.error = err instanceof Error ? err.message : String(err);
      result.runs = [];
      log(`  ${tool}: FAILED ${result.error}`);
      break;
    }
  }
  return result;
}

/** Reads a file through once so every tool starts with it in the page cache. */
export function warm(file: string): void {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(8 << 20);
  try {
    for (let off = 0; ;) {
      const n = fs.readSync(fd, buf, 0, buf.length, off);
      if (n === 0) break;
      off += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}
