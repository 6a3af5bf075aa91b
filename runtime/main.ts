// CLI dispatch only: `lastword <command> [options]`. When the kernel starts lastword as PID 1
// (or as /init), it runs the init shell instead; see runtime/pid1.
import minimist from 'minimist';
import { describeError, LastwordError } from './errors.ts';
import { VERSION } from './version.ts';
import type { CommandEntry } from './cli/command.ts';

// Each loader is a static import() so esbuild bundles every command into the one executable.
export const COMMANDS: Record<string, CommandEntry> = {
  filter: { summary: 'filter and save a vmcore like makedumpfile (-d, -c/-l/-p/-z, -E, -F, -R, --dump-dmesg)', load: () => import('./cli/filter.ts') },
  info: { summary: 'print the header, VMCOREINFO summary and page counts of a dump file', load: () => import('./cli/info.ts') },
  plan: { summary: 'print the capture plan built from the kdump configs and the kernel command line', load: () => import('./cli/plan.ts') },
  save: { summary: 'run the capture: save /proc/vmcore (or VMCORE) to the configured target', load: () => import('./cli/save.ts') },
  savecore: { summary: 'Debian kdump-config savecore, done by lastword', load: () => import('./cli/savecore.ts') },
  initramfs: { summary: 'build a capture initramfs whose /init is lastword', load: () => import('./cli/initramfs.ts') },
  load: { summary: 'load the capture kernel with kexec -p', load: () => import('./cli/load.ts') },
  unload: { summary: 'unload the capture kernel', load: () => import('./cli/unload.ts') },
  status: { summary: 'is a capture kernel loaded; the crashkernel reservation', load: () => import('./cli/status.ts') },
  estimate: { summary: 'recommend a crashkernel= size for this machine and config', load: () => import('./cli/estimate.ts') },
  init: { summary: 'run as the init of a capture initramfs (automatic when PID 1)', load: () => import('./cli/init.ts') },
};

export function usage(): string {
  const names = Object.keys(COMMANDS);
  const width = Math.max(...names.map((n) => n.length));
  return [
    `lastword ${VERSION} - takes down a Linux kernel's last words (kdump capture)`,
    '',
    'usage: lastword <command> [options] [args]',
    '       lastword --help | --version [--verbose]',
    '',
    'commands:',
    ...names.map((n) => `  ${n.padEnd(width)}  ${COMMANDS[n]!.summary}`),
    '',
    "'lastword <command> --help' shows a command's options.",
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const invokedAs = process.argv0.split('/').pop() ?? '';
  // The capture child PID 1 starts is the same executable, /init, with a command: only a bare
  // `init` (or PID 1 itself, whatever the kernel passes in argv) is the init shell.
  if (process.pid === 1 || (invokedAs === 'init' && argv.length === 0)) return runCommand('init', argv);
  const first = argv[0];
  if (first !== undefined && !first.startsWith('-')) return runCommand(first, argv.slice(1));
  const opts = minimist(argv, { boolean: ['help', 'version', 'verbose'], alias: { h: 'help', V: 'version', v: 'verbose' } });
  const unknown = Object.keys(opts).filter((k) => !['_', 'help', 'version', 'verbose', 'h', 'V', 'v'].includes(k));
  if (unknown.length) {
    process.stderr.write(`lastword: unknown option --${unknown[0]}\n${usage()}\n`);
    return 2;
  }
  if (opts.version) {
    process.stdout.write(`lastword ${VERSION}\n`);
    if (opts.verbose) {
      // loads ssh2, so only on request: plain --version stays the startup-cost probe of the bench
      const { sshNativeCrypto } = await import('./targets/ssh.ts');
      process.stdout.write(`ssh2 ciphers: ${sshNativeCrypto() ? 'native (sshcrypto.node, OpenSSL)' : 'JavaScript fallback (sshcrypto.node not loaded)'}\n`);
      // what this system's libraries allow (a missing one leaves its codec's dumps to zlib)
      const { CODEC_FLAG, codecsAddon, LIBRARY_CODECS } = await import('./codecs/codec.ts');
      try {
        const codecs = codecsAddon();
        const state = LIBRARY_CODECS.map((c) => {
          const why = codecs.codecError(CODEC_FLAG[c]);
          return why === null ? c : `${c} not available (${why})`;
        });
        process.stdout.write(`codecs: zlib, ${state.join(', ')}\n`);
      } catch (err) {
        process.stdout.write(`codecs: none (${(err as Error).message})\n`);
      }
      const { startupPagesGivenBack } = await import('./system/native-loader.ts');
      process.stdout.write(`start-up pages given back: ${startupPagesGivenBack} bytes\n`);
    }
    return 0;
  }
  process.stdout.write(usage() + '\n');
  return opts.help ? 0 : 2;
}

async function runCommand(name: string, rest: string[]): Promise<number> {
  const entry = COMMANDS[name];
  if (!entry) {
    process.stderr.write(`lastword: unknown command '${name}'\n${usage()}\n`);
    return 2;
  }
  try {
    const cmd = await entry.load();
    return await cmd.run(rest);
  } catch (err) {
    // A usage error keeps its lines: it usually carries the command's help text.
    const usageErr = err instanceof LastwordError && err.action === 'usage';
    process.stderr.write(`lastword ${name}: ${usageErr ? (err as LastwordError).message : describeError(err)}\n`);
    return usageErr ? 2 : 1;
  }
}

// Entry point, both for `node runtime/main.ts` and for the bundled executable. Tests run the CLI
// as a subprocess, as a user would.
main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { process.stderr.write(`lastword: ${describeError(err)}\n`); process.exitCode = 1; },
);
