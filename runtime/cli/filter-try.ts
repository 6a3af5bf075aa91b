// `lastword filter --try PROGRAM [makedumpfile options]`: run PROGRAM (the real makedumpfile) with
// the same arguments, and take over with lastword's own filter when it is missing, fails or is
// killed — kdump-tools' fallback (hooks/kdump-tools/makedumpfile). kdump-config pipes
// `makedumpfile -F ... /proc/vmcore` into the dump file, so for a flattened stream on stdout
// PROGRAM's output is relayed record by record: when it dies half-way, only whole records have
// gone out and lastword continues the same stream (its records overwrite every offset it writes)
// instead of starting a second one behind a broken first.
import { spawn } from 'node:child_process';
import { encodeEndMarker, relayRecords, type RelayResult } from '../dumpfile/flattened.ts';
import { writeStderr } from '../system/stderr.ts';
import { runFilter, stdoutSink, type FilterOptions } from './filter.ts';

interface Exit { code: number | null; signal: NodeJS.Signals | null; error?: Error }

export async function tryProgramFirst(opts: FilterOptions, argv: string[]): Promise<number> {
  const program = opts.tryProgram!;
  const say = (m: string) => writeStderr(`lastword filter: ${m}\n`);
  if (opts.reassemble) {
    // Standard input can be read once: reassembling is the same job whoever does it.
    return runFilter(opts);
  }
  const toStdout = opts.flatten && opts.args.length === 1 && !opts.dumpDmesg;
  const child = spawn(program, withoutTry(argv), { stdio: ['inherit', toStdout ? 'pipe' : 'inherit', 'inherit'] });
  const exited = new Promise<Exit>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  const stdout = toStdout ? stdoutSink() : undefined;
  let relay: RelayResult | undefined;
  if (stdout) {
    relay = await relayRecords(child.stdout!, (b) => stdout.write(b), program);
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
