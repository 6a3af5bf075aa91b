// `lastword filter --try PROGRAM [makedumpfile options]`: run PROGRAM (the real makedumpfile) with
// the same arguments, and take over with lastword's own filter when it is missing, fails or is
// killed — kdump-tools' fallback (hooks/kdump-tools/makedumpfile). kdump-config pipes
// `makedumpfile -F ... /proc/vmcore` into the dump file, so for a flattened stream on stdout
// PROGRAM's output is relayed record by record: when it dies half-way, only whole records have
// gone out and lastword continues the same stream (its records overwrite every offset it writes)
// instead of starting a second one behind a broken first. A makedumpfile known to misread the
// crashed kernel without failing (see knownMisreading) is not run at all.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { encodeEndMarker, relayRecords, type RelayResult } from '../dumpfile/flattened.ts';
import { loadNative } from '../system/native-loader.ts';
import { writeStderr } from '../system/stderr.ts';
import { tailMarkerKey } from '../filter/page-rules.ts';
import { openVmcore } from '../vmcore/index.ts';
import { runFilter, stdoutSink, type FilterOptions } from './filter.ts';

interface Exit { code: number | null; signal: NodeJS.Signals | null; error?: Error }

export async function tryProgramFirst(opts: FilterOptions, argv: string[]): Promise<number> {
  const program = opts.tryProgram!;
  const say = (m: string) => writeStderr(`lastword filter: ${m}\n`);
  if (opts.reassemble) {
    // Standard input can be read once: reassembling is the same job whoever does it.
    return runFilter(opts);
  }
  const misreading = knownMisreading(program, opts);
  if (misreading) {
    say(`${misreading}; lastword filter runs instead`);
    return runFilter(opts);
  }
  const toStdout = opts.flatten && opts.args.length === 1 && !opts.dumpDmesg;
  // PROGRAM's stdout is a pipe of our own, read into one buffer: a Node stream allocates a Buffer per
  // read, and relaying makedumpfile's ~30 MB of a small guest's dump that way grew this process by
  // 8 MB of anonymous memory, which got it killed by the OOM killer in a 120M capture kernel (where
  // makedumpfile alone works). Now it is the relay's record and read buffers, 64 KiB each.
  const pipe = toStdout ? loadNative<{ pipe(): [number, number] }>('system').pipe() : undefined;
  const child = spawn(program, withoutTry(argv), { stdio: ['inherit', pipe ? pipe[1] : 'inherit', 'inherit'] });
  if (pipe) fs.closeSync(pipe[1]);   // the child has it: the pipe ends when the child does
  const exited = new Promise<Exit>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  const stdout = toStdout ? stdoutSink() : undefined;
  let relay: RelayResult | undefined;
  if (stdout && pipe) {
    try {
      relay = await relayRecords(readChunks(pipe[0]), (b) => stdout.write(b), program);
    } finally {
      fs.closeSync(pipe[0]);
    }
    if (relay.malformed !== undefined) child.kill('SIGKILL');
  }
  const exit = await exited;
  if (exit.code === 0 && (relay === undefined || relay.ended)) {
    if (stdout) await stdout.write(encodeEndMarker());
    return 0;
  }
  say(`${program} ${describeExit(exit)}${relay ? streamState(relay) : ''}; lastword filter takes over`);
  return toStdout ? runFilter(opts, relay!.headerSent) : runFilter({ ...opts, overwrite: true });
}

/**
 * Why PROGRAM would write a dump that looks fine but is not, or undefined. Linux 7.1 renamed the
 * tail-page marker's VMCOREINFO key to OFFSET(page.compound_info) (kernel d50569612c29);
 * makedumpfile up to 1.7.9 looks only for OFFSET(page.compound_head), cannot tell tail pages and,
 * at dump levels with bit 8, drops page 1 of every large folio (its mapping word holds
 * _entire_mapcount = -1): slab pages and task structs, so crash stops at the task table. It exits
 * 0 all the same. The fix (upstream f50c015) came after 1.7.9, in the 1.8.0 line; 1.7.9++ builds may
 * lack it, so only >= 1.8.0 is trusted (lastword writes the page set a fixed one writes).
 */
export function knownMisreading(program: string, opts: FilterOptions): string | undefined {
  if (!(opts.dumpLevel & 8) || opts.dumpDmesg || opts.reassemble || opts.args.length === 0) return undefined;
  let offsets: Map<string, number>;
  try {
    const vmcore = openVmcore(opts.args[0]!);
    offsets = vmcore.vmcoreinfo.offset;
    vmcore.close();
  } catch {
    return undefined;          // unreadable here: PROGRAM gets its chance, lastword the fallback
  }
  const key = tailMarkerKey({ offset: offsets });
  if (key !== 'page.compound_info' || !offsets.has(key)) return undefined;
  const r = spawnSync(program, ['-v'], { encoding: 'utf8', timeout: 10_000 });
  const m = /version (\d+)\.(\d+)\.(\d+)/.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`);
  if (!m) return undefined;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  if (major > 1 || (major === 1 && minor >= 8)) return undefined;
  return `${program} ${m[1]}.${m[2]}.${m[3]} does not know Linux 7.1's OFFSET(page.compound_info) and would drop `
    + `tail pages (slab, task structs) at dump level ${opts.dumpLevel}`;
}

/** The bytes of `fd` (a blocking pipe) as they come, always in the same buffer. */
async function* readChunks(fd: number, size = 64 * 1024): AsyncGenerator<Buffer> {
  const buf = Buffer.allocUnsafe(size);
  for (;;) {
    const n = await new Promise<number>((resolve, reject) => fs.read(fd, buf, 0, size, null, (err, bytes) => (err ? reject(err) : resolve(bytes))));
    if (n === 0) return;
    yield buf.subarray(0, n);
  }
}

/** argv without `--try PROGRAM` / `--try=PROGRAM`: what PROGRAM gets. */
export function withoutTry(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--try') i++;
    else if (!argv[i]!.startsWith('--try=')) out.push(argv[i]!);
  }
  return out;
}

function describeExit(e: Exit): string {
  if (e.error) return `cannot run (${(e.error as NodeJS.ErrnoException).code ?? e.error.message})`;
  if (e.signal) return `was killed by ${e.signal}`;
  return e.code === 0 ? 'exited 0 without ending its flattened stream' : `exited ${e.code}`;
}

function streamState(r: RelayResult): string {
  if (r.malformed) return ` (${r.malformed})`;
  return ` after ${r.records} whole records${r.droppedBytes ? `, ${r.droppedBytes} bytes of a cut record dropped` : ''}`;
}
