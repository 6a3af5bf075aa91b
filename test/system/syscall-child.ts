// Runs one scenario of the real System inside a namespace that test/system/real.test.ts made
// (unshare -m, -u or -fp), and prints one JSON line with what it saw. Never run directly: the
// reboot scenario refuses to run unless it is PID 1 of a new PID namespace.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describeError } from '../../runtime/errors.ts';
import { realSystem, systemAddon } from '../../runtime/system/real.ts';
import { MNT } from '../../runtime/system/types.ts';

const [scenario, arg] = process.argv.slice(2);
const system = realSystem();
const out = (v: unknown): void => { process.stdout.write(JSON.stringify(v) + '\n'); };
const errorShape = (fn: () => void): unknown => {
  try { fn(); return null; } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { isError: err instanceof Error, code: err.code, errno: err.errno, syscall: err.syscall, message: err.message, described: describeError(err) };
  }
};
const mounted = (dir: string): string | undefined =>
  fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === dir);

switch (scenario) {
  case 'mount': {
    const dir = arg!;
    system.mount('lw-test', dir, 'tmpfs', 0, 'size=1m,mode=0700');
    const line = mounted(dir);
    fs.writeFileSync(path.join(dir, 'probe'), 'x');
    system.umount2(dir, MNT.DETACH);
    out({ line, after: mounted(dir) ?? null, probeAfter: fs.existsSync(path.join(dir, 'probe')) });
    break;
  }
  case 'errors': {
    const dir = arg!;
    out({
      badFstype: errorShape(() => system.mount('none', dir, 'lw-no-such-fs', 0, '')),
      notMounted: errorShape(() => system.umount2(dir, 0)),
      finitJunk: errorShape(() => {
        const fd = fs.openSync(path.join(dir, 'junk.ko'), 'w+');
        fs.writeSync(fd, 'not an ELF module');
        try { system.finitModule(fd, '', 0); } finally { fs.closeSync(fd); }
      }),
      badReboot: errorShape(() => systemAddon().reboot(12345)),
    });
    break;
  }
  case 'hostname': {
    system.sethostname(arg!);
    out({ hostname: os.hostname(), uname: fs.readFileSync('/proc/sys/kernel/hostname', 'utf8').trim() });
    break;
  }
  case 'reap': {
    // sh backgrounds two sleeps and exits: they are re-parented to us (PID 1) and become our orphans
    const pid1 = system.getpid();
    const libuvChild = system.exec('sh', ['-c', 'sleep 0.5; exit 7']);
    const sh = await system.exec('sh', ['-c', 'sleep 0.1 & echo $!; sleep 0.2 & echo $!; exit 0']);
    const orphans = sh.stdout.trim().split('\n').map(Number);
    const reaped: number[] = [];
    while (reaped.length < orphans.length) {
      reaped.push(...system.reapOrphans(new Set()));
      await system.sleep(20);
    }
    const kept = await libuvChild;
    out({ pid1, orphans, reaped: reaped.sort((a, b) => a - b), libuvExit: kept.exitCode });
    break;
  }
  case 'ctty': {
    // started by `script` (a pty) through `setsid`: a new session whose fd 0 is the pty, no ctty yet
    const ttyNr = (): number => Number(fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[4]);
    const before = ttyNr();
    system.setControllingTerminal(0);
    out({ before, after: ttyNr(), stdinRdev: fs.fstatSync(0).rdev });
    break;
  }
  case 'reboot': {
    // arg: the test's own PID namespace ('pid:[4026531836]'); ours must differ
    const [cmd, parentNs] = arg!.split(',');
    const inNewPidNs = !!parentNs && fs.readlinkSync('/proc/self/ns/pid') !== parentNs;
    if (system.getpid() !== 1 || !inNewPidNs) {
      out({ refused: 'not PID 1 of a new PID namespace' });
      process.exit(3);
    }
    // In a child PID namespace reboot(2) ends this namespace's init instead of the machine
    // (pid_namespace.c reboot_pid_ns): SIGHUP for restart, SIGINT for power-off and halt.
    system.reboot(cmd as 'restart' | 'power-off' | 'halt');
    out({ returned: true });
    break;
  }
  default:
    throw new Error(`unknown scenario ${scenario}`);
}
