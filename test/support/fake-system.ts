// A recording System for unit tests of the stages that act (pid1, modules, network, targets):
// every call is appended to `calls`; exec answers come from `onExec`, so a test plays the
// programs' part (write an outcome file, fail, hang). reboot(2) is recorded, never called.
import type { ExecOptions, ExecResult, RebootCommand, System } from '../../runtime/system/types.ts';

export type FakeCall =
  | { call: 'mount'; source: string; target: string; fstype: string; flags: number; data: string }
  | { call: 'umount2'; target: string; flags: number }
  | { call: 'reboot'; cmd: RebootCommand }
  | { call: 'sync' }
  | { call: 'sethostname'; name: string }
  | { call: 'setControllingTerminal'; fd: number }
  | { call: 'finitModule'; fd: number; params: string; flags: number }
  | { call: 'reapOrphans'; keep: number[] }
  | { call: 'dup2'; from: number; to: number }
  | { call: 'exec'; file: string; args: string[]; opts: ExecOptions };

export interface FakeSystem extends System {
  calls: FakeCall[];
  logs: string[];
  /** A syscall name -> the error it throws (e.g. { reboot: Object.assign(new Error('EPERM'), { code: 'EPERM' }) }). */
  failures: Partial<Record<FakeCall['call'], Error>>;
  onExec: (file: string, args: string[], opts: ExecOptions) => Promise<ExecResult> | ExecResult;
  /** the calls named `name`, in order */
  only<N extends FakeCall['call']>(name: N): Extract<FakeCall, { call: N }>[];
}

export const ok = (stdout = ''): ExecResult => ({ exitCode: 0, stdout, stderr: '', timedOut: false });

export function fakeSystem(opts: { pid?: number } = {}): FakeSystem {
  let clock = 0;
  const sys: FakeSystem = {
    calls: [],
    logs: [],
    failures: {},
    onExec: () => ok(),
    only(name) {
      return sys.calls.filter((c) => c.call === name) as never;
    },
    mount(source, target, fstype, flags, data) { record({ call: 'mount', source, target, fstype, flags, data }); },
    umount2(target, flags) { record({ call: 'umount2', target, flags }); },
    reboot(cmd) { record({ call: 'reboot', cmd }); },
    sync() { record({ call: 'sync' }); },
    sethostname(name) { record({ call: 'sethostname', name }); },
    setControllingTerminal(fd) { record({ call: 'setControllingTerminal', fd }); },
    finitModule(fd, params, flags) { record({ call: 'finitModule', fd, params, flags }); },
    reapOrphans(keep) { record({ call: 'reapOrphans', keep: [...keep] }); return []; },
    dup2(from, to) { record({ call: 'dup2', from, to }); },
    getpid: () => opts.pid ?? 1,
    async exec(file, args, o = {}) {
      record({ call: 'exec', file, args: [...args], opts: o });
      return sys.onExec(file, [...args], o);
    },
    now: () => clock,
    async sleep(ms) { clock += ms; },
    log(line) { sys.logs.push(line); },
  };
  function record(c: FakeCall): void {
    sys.calls.push(c);
    const err = sys.failures[c.call];
    if (err) throw err;
  }
  return sys;
}
