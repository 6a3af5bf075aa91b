// `lastword save [--config FILE] [--cmdline STRING] [--root DIR] [--capture] [VMCORE]`: the capture,
// from PID 1 (--capture: modules and network are prepared, the outcome goes to
// /run/lastword/outcome.json for PID 1 to act on) or from any shell (a rescue shell after a
// failure, a running system holding a vmcore file): there the final action is only reported.
import * as fs from 'node:fs';
import * as path from 'node:path';
import minimist from 'minimist';
import { usageError } from '../errors.ts';
import { loadPlan } from '../config/load.ts';
import type { Plan } from '../config/plan.ts';
import { defaultWorkers } from '../codecs/pool.ts';
import { usableCodec } from '../codecs/codec.ts';
import { writeElfDump } from '../dumpfile/elf-writer.ts';
import { writeKdumpCompressed } from '../dumpfile/kdump-writer.ts';
import { crashFirstOrder } from '../filter/crash-first.ts';
import { unclassifiedMessage } from '../filter/types.ts';
import { DumpOutput } from '../dumpfile/output.ts';
import { waitForBlockDevice } from '../modules/blockdev.ts';
import { prepareTarget } from '../modules/prepare.ts';
import { bringUpNetwork, effectiveIpSpecs } from '../network/bringup.ts';
import { readKernelLog } from '../dmesg/kmsg.ts';
import { capture, failedOutcome, type CaptureStages, type Outcome } from '../pid1/capture.ts';
import { OUTCOME_FILE } from '../pid1/outcome.ts';
import type { System } from '../system/types.ts';
import { openTarget, type OpenTargetOptions } from '../targets/open.ts';
import { splitCmdline } from '../config/cmdline.ts';
import { parseDeviceSpec } from '../config/target-spec.ts';
import type { DeviceSpec } from '../config/plan.ts';
import { openVmcore } from '../vmcore/index.ts';
import { choosePageFilter, dumpHeaderInfo } from './filter.ts';

const HELP = `usage: lastword save [--config FILE] [--cmdline STRING] [--root DIR] [--mount-point DIR] [--capture] [VMCORE]

Saves VMCORE (default /proc/vmcore) to the target of the kdump config, in the distribution's
names, with the kernel log and a run log next to it; a dump cut short stays *-incomplete, and opens
in crash: the pages crash needs to open a dump are written first.
  --config FILE     read this kdump.conf or kdump-tools file instead of the standard places
  --cmdline STRING  use this kernel command line instead of /proc/cmdline
  --root DIR        read the configs under DIR; the root-filesystem target is DIR
  --mount-point DIR where a disk or NFS target is mounted (default /run/lastword/target)
  --capture         run as PID 1's capture: load modules, bring up ip=, write ${OUTCOME_FILE}
Exit status: 0 dump saved, 1 not (complete).`;

/** The real stages: the filter and writers, dmesg, modules, network and targets of this build. */
/** root=, rootfstype=, rootflags= of a command line, for the root target under PID 1. Pure. */
export function rootFsFromCmdline(cmdline: string): OpenTargetOptions['rootFs'] {
  let device: DeviceSpec | undefined;
  let fstype: string | undefined;
  let options: string[] = [];
  for (const p of splitCmdline(cmdline)) {
    if (p.name === 'root' && p.value) device = parseDeviceSpec(p.value, { file: '<cmdline>' });
    else if (p.name === 'rootfstype' && p.value) fstype = p.value;
    else if (p.name === 'rootflags' && p.value) options = p.value.split(',');
  }
  return device ? { device, fstype, options } : 'missing';
}

export function realStages(sys: System, o: { root?: string; mountPoint?: string; rootFs?: OpenTargetOptions['rootFs'] }): CaptureStages {
  return {
    async writeDump({ vmcore: file, collector, sink, progress, warn }) {
      const vmcore = openVmcore(file, { allowTruncated: true, ...(collector.nonMmap ? { mmap: false } : {}) });
      try {
        for (const p of vmcore.problems) warn(`lastword: warning: ${p}`);
        const workers = collector.numThreads ?? defaultWorkers();
        // Pass 1 walks mem_map on this thread and on as many more as compression will use.
        const filter = await choosePageFilter(vmcore, collector.dumpLevel, warn, { cyclicBuffer: collector.cyclicBuffer, walkThreads: 1 + workers });
        const output = new DumpOutput(sink);
        // What crash needs to open the dump first: a dump cut short (a full target, a reboot by a
        // watchdog) still opens.
        const order = crashFirstOrder(vmcore, warn);
        const codec = usableCodec(collector.codec, warn);      // 'none' for ELF (collector.ts)
        const s = collector.format === 'elf'
          ? await writeElfDump({ vmcore, filter, output, order })
          : await writeKdumpCompressed({
            vmcore, filter, output, codec, headerInfo: dumpHeaderInfo(vmcore, warn),
            workers, order,
            progress: (done, total) => progress(done, total, vmcore.pageSize),
          });
        if (filter.unclassified) warn(`lastword: warning: ${unclassifiedMessage(filter.unclassified)}`);
        return {
          ...s, counts: filter.counts, fallbackReason: filter.fallbackReason, vmcoreMapped: vmcore.mappedReads,
          ...(codec !== collector.codec ? { codec } : {}),
        };
      } finally {
        vmcore.close();
      }
    },
    async dmesg(file, warn) {
      const { extractDmesg } = await import('../dmesg/index.ts');
      const vmcore = openVmcore(file);
      try {
        return extractDmesg(vmcore, { warn: (m) => warn?.(`lastword: warning: ${m}`) });
      } finally {
        vmcore.close();
      }
    },
    async loadModules(plan) {
      // reset_devices, the blacklist file, the target's modules, hardware drivers by sysfs
      // modalias (no udev in the capture initramfs), then the block device.
      // Refusals and failures are on the console already, each naming the module (and the
      // blacklisted one it needs); the target stage says what is then missing.
      await prepareTarget(sys, plan);
    },
    async bringUpNetwork(plan) {
      const up = await bringUpNetwork(sys, effectiveIpSpecs(plan), plan.network);
      return { hostIp: up[0]?.address };
    },
    kernelLog: () => readKernelLog(),
    async startFence(plan, log) {
      const { startFenceKdump } = await import('../network/fence-kdump.ts');
      return startFenceKdump(plan.fence!, log);
    },
    openTarget(plan, log) {
      return openTarget(plan, {
        sys, log, root: o.root, mountPoint: o.mountPoint, rootFs: o.rootFs,
        findDevice: (spec) => waitForBlockDevice(sys, spec, { timeoutMs: plan.modules.diskTimeoutMs }),
      });
    },
  };
}

export interface SaveArgs {
  config?: string;
  cmdline?: string;
  root?: string;
  mountPoint?: string;
  capture: boolean;
  vmcore: string;
}

export function parseSaveArgs(argv: string[]): SaveArgs | 'help' {
  let unknown: string | undefined;
  const o = minimist(argv, {
    string: ['config', 'cmdline', 'root', 'mount-point'], boolean: ['capture', 'help'],
    unknown: (a) => { if (a.startsWith('-') && unknown === undefined) unknown = a; return !a.startsWith('-'); },
  });
  if (unknown !== undefined) throw usageError(`unknown option ${unknown}\n${HELP}`);
  if (o.help) return 'help';
  if (o._.length > 1) throw usageError(`one VMCORE at most\n${HELP}`);
  return {
    config: o.config, cmdline: o.cmdline, root: o.root, mountPoint: o['mount-point'], capture: o.capture,
    vmcore: o._.length ? String(o._[0]) : '/proc/vmcore',
  };
}

function readCmdline(): string {
  try {
    return fs.readFileSync('/proc/cmdline', 'utf8');
  } catch {
    return '';
  }
}

/** outcome.json for PID 1, written atomically so PID 1 never reads half of it. */
export function writeOutcome(root: string, outcome: Outcome): void {
  const file = path.join(root, OUTCOME_FILE);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(`${file}.tmp`, JSON.stringify({ ok: outcome.ok, action: outcome.action, reason: outcome.reason }) + '\n');
  fs.renameSync(`${file}.tmp`, file);
}

/** `outcomeRoot`: where /run/lastword/outcome.json goes (tests point it at a temp dir). */
export async function runSave(sys: System, a: SaveArgs, stages?: CaptureStages, outcomeRoot = '/'): Promise<Outcome> {
  let plan: Plan | undefined;
  let outcome: Outcome;
  try {
    plan = loadPlan({ config: a.config, cmdline: a.cmdline, root: a.root });
    if (!plan.enabled) {
      sys.log('lastword: USE_KDUMP=0: the capture is disabled; nothing saved');
      outcome = { ok: true, action: plan.finalAction, reason: 'capture disabled (USE_KDUMP=0)', incomplete: false };
    } else {
      // Under PID 1 nothing is mounted: the root target means root= of the capture command line.
      const rootFs = a.capture ? rootFsFromCmdline(a.cmdline ?? readCmdline()) : undefined;
      outcome = await capture({ sys, plan, vmcore: a.vmcore, stages: stages ?? realStages(sys, { ...a, rootFs }), prepareSystem: a.capture });
    }
  } catch (err) {
    // A bad config line or a bug: PID 1 still gets an outcome and takes the failure action.
    outcome = failedOutcome(plan, err);
    sys.log(`lastword: capture failed: ${outcome.reason}`);
  }
  if (a.capture) writeOutcome(outcomeRoot, outcome);
  else sys.log(`lastword: ${outcome.ok ? 'final' : 'failure'} action ${outcome.action} is left to you (not running as the capture's PID 1)`);
  return outcome;
}

export async function run(argv: string[]): Promise<number> {
  const a = parseSaveArgs(argv);
  if (a === 'help') {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const { realSystem } = await import('../system/real.ts');
  const outcome = await runSave(realSystem(), a);
  return outcome.ok ? 0 : 1;
}
