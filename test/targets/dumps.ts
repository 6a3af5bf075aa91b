// Real dump payloads for the target tests and the reference readers that judge what arrived:
// makedumpfile (Debian's) filters a lab vmcore from a real QEMU guest, crash opens the result.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cacheDir, crashBinary, debugVmlinux, kernelVersion, labVmcore } from '../support/lab.ts';
import type { DumpSink } from '../../runtime/targets/sink.ts';
import { LastwordError } from '../../runtime/errors.ts';
export { flaggedIncomplete } from '../support/kdump-header.ts';

/** Why the payload tests cannot run here, or undefined. */
export function missingReference(): string | undefined {
  const kver = kernelVersion('6.1');
  if (!kver) return 'no Debian 6.1 kernel (bash .ci/setup)';
  if (!fs.existsSync(debugVmlinux(kver))) return `no ${debugVmlinux(kver)} (bash .ci/setup)`;
  if (spawnSync('sh', ['-c', 'command -v makedumpfile']).status !== 0) return 'makedumpfile is missing (bash .ci/setup)';
  return undefined;
}

/** makedumpfile -d 31 -l of the 6.1 lab vmcore: 'kdump' = kdump-compressed, 'flat' = the same flattened (-F). */
export function referenceDump(kind: 'kdump' | 'flat'): string {
  const vmcore = labVmcore();
  const dir = path.join(cacheDir, 'targets');
  fs.mkdirSync(dir, { recursive: true });
  const out = path.join(dir, kind === 'kdump' ? 'd31-lzo.kdump' : 'd31-lzo.flat');
  if (fs.existsSync(out)) return out;
  const tmp = `${out}.${process.pid}`;
  const r = kind === 'kdump'
    ? spawnSync('makedumpfile', ['-l', '-d', '31', '--message-level', '1', vmcore, tmp], { encoding: 'utf8' })
    : spawnSync('sh', ['-c', `makedumpfile -F -l -d 31 --message-level 1 '${vmcore}' > '${tmp}'`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`makedumpfile failed: ${r.stderr}`);
  fs.renameSync(tmp, out);
  return out;
}

/** Feeds `file` into a sink as a writer would: 1 MiB pieces, positional ones out of order. */
export async function feed(file: string, sink: DumpSink, opts: { chunk?: number; onChunk?: (done: number) => Promise<void> | void } = {}): Promise<number> {
  const chunk = opts.chunk ?? 1 << 20;
  const size = fs.statSync(file).size;
  const fd = fs.openSync(file, 'r');
  try {
    const offsets: number[] = [];
    for (let o = 0; o < size; o += chunk) offsets.push(o);
    // The kdump-compressed writer fills the header last: do the same with the first piece.
    if (sink.kind === 'positional') offsets.push(offsets.shift()!);
    let done = 0;
    const buf = Buffer.alloc(chunk);
    for (const o of offsets) {
      const n = fs.readSync(fd, buf, 0, chunk, o);
      if (sink.kind === 'positional') await sink.pwrite(buf.subarray(0, n), o);
      else await sink.write(buf.subarray(0, n));
      buf.fill(0xee); // the sink must have copied what it needs
      done += n;
      await opts.onChunk?.(done);
    }
    return done;
  } finally {
    fs.closeSync(fd);
  }
}

export function reassemble(flat: string, out: string): string {
  const r = spawnSync('sh', ['-c', `makedumpfile -R '${out}' < '${flat}'`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`makedumpfile -R of ${flat} failed: ${r.stderr || r.stdout}`);
  return out;
}

/** crash(8) with the -dbg vmlinux: `sys`, `bt`, `log`; ok when it printed the release and a backtrace. */
export function crashOpens(dump: string): { ok: boolean; output: string } {
  const kver = kernelVersion('6.1')!;
  const r = spawnSync(crashBinary(), ['-s', debugVmlinux(kver), dump], { input: 'sys\nbt\nlog\nquit\n', encoding: 'utf8', maxBuffer: 256 << 20, timeout: 300_000 });
  const output = (r.stdout ?? '') + (r.stderr ?? '');
  return { ok: r.status === 0 && /RELEASE:/.test(output) && /PID:/.test(output), output };
}

/** drgn (python3-drgn) with the -dbg vmlinux: the release, the task list and the kernel log read from the dump. */
export function drgnReads(dump: string): { ok: boolean; output: string } {
  const kver = kernelVersion('6.1')!;
  const script = path.join(os.tmpdir(), `lw-drgn-check-${process.pid}.py`);
  fs.writeFileSync(script, [
    'from drgn.helpers.linux.pid import for_each_task',
    'from drgn.helpers.linux.printk import get_dmesg',
    'print("release:", prog["init_uts_ns"].name.release.string_().decode())',
    'print("tasks:", len(list(for_each_task(prog))))',
    'print("dmesg_lines:", get_dmesg(prog).decode(errors="replace").count("\\n"))',
  ].join('\n') + '\n');
  try {
    const r = spawnSync('drgn', ['-q', '-c', dump, '-s', debugVmlinux(kver), script], { encoding: 'utf8', timeout: 300_000 });
    const output = (r.stdout ?? '') + (r.stderr ?? '');
    const tasks = Number(/^tasks: (\d+)/m.exec(output)?.[1] ?? 0);
    return { ok: r.status === 0 && output.includes(`release: ${kver}`) && tasks > 2, output };
  } finally {
    fs.rmSync(script, { force: true });
  }
}


/**
 * Feeds `file` into `sink` and, once `atBytes` went in, runs `cut` (kills the server's session);
 * asserts the feed or the close then failed with ETARGET_IO, and aborts the sink.
 */
export async function feedAndCut(file: string, sink: DumpSink, atBytes: number, cut: () => void, chunk?: number): Promise<void> {
  let cutAt = 0;
  const err = await feed(file, sink, {
    chunk,
    onChunk: (done) => {
      if (cutAt === 0 && done >= atBytes) {
        cutAt = done;
        cut();
      }
    },
  }).then(() => sink.close()).then(() => undefined, (e: unknown) => e);
  assert.ok(cutAt > 0, 'the payload was too small to cut');
  assert.ok(err instanceof LastwordError, `the cut went unnoticed (${String(err)})`);
  assert.equal(err.code, 'ETARGET_IO');
  await sink.abort();
}
