// Installs PID 1's guards in a plain child process (test/pid1/guard.test.ts), then does everything
// that would end a Node process, and reports on stdout that it is still alive.
import { installPid1Guards } from '../../runtime/pid1/guard.ts';
import { realSystem } from '../../runtime/system/real.ts';

const lines: string[] = [];
const system = { ...realSystem({ log: (l) => { lines.push(l); } }) };
installPid1Guards(system, {
  onRequest: (action, signal) => { lines.push(`request ${action} by ${signal}`); },
  onStray: (err) => { lines.push(`stray reported: ${(err as Error).message}`); },
});

setTimeout(() => { throw new Error('stray exception'); }, 0);
void Promise.reject(new Error('stray rejection'));
setTimeout(() => { process.exit(1); }, 20);
setTimeout(() => {
  for (const sig of ['SIGINT', 'SIGHUP', 'SIGTERM', 'SIGUSR1', 'SIGUSR2', 'SIGPIPE'] as const) process.kill(process.pid, sig);
}, 50);
setTimeout(() => { process.stdout.write(JSON.stringify({ alive: true, lines }) + '\n'); }, 500);
