// The capture, in the order of dracut + kdump.sh: modules -> network (nfs/ssh, fence_kdump) ->
// fence_kdump notification -> kdump_pre (a failure: no dump, final action) -> target -> dmesg
// file -> dump (filter + writer) under its incomplete name -> rename -> kdump_post -> run log next
// to the dump -> outcome (final action on success, failure action otherwise). Nothing is lost: a
// failure part-way leaves what was written under the incomplete name, and the outcome says why.
// The stages are injected, so the flow is tested with fakes and used for real by `lastword save`,
// both under PID 1 (--capture) and from any shell.
import * as os from 'node:os';
import { describeError, LastwordError } from '../errors.ts';
import { isNetworkTarget, needsNetwork, planFor, planTargets, sourceAt, type CoreCollector, type FinalAction, type Hook, type Plan, type PostCompression } from '../config/plan.ts';
import { unreadableMessage, type UnreadablePages } from '../dumpfile/kdump-layout.ts';
import { compressingSink, POST_COMPRESSION_EXTENSION, postCompressor, type PostCompressor } from '../dumpfile/post-compression.ts';
import { stallGuardTarget } from '../targets/stall.ts';
import type { PageClassCounts } from '../filter/types.ts';
import { formatSummary, RunLog } from '../progress/progress.ts';
import type { System } from '../system/types.ts';
import { dumpNames, dumpsToRemove, joinInside, type DumpNames } from '../targets/naming.ts';
import type { DumpSink } from '../targets/sink.ts';
import type { DumpTarget } from '../targets/target.ts';

export interface DumpResult {
  bytes: number;
  ramPages: number;
  dumpablePages: number;
  zeroPages: number;
  counts?: PageClassCounts;
  /** The filter could not classify pages and every page was saved. */
  fallbackReason?: string;
  /** Pages the vmcore could not give (kdump-writer.ts): the dump has the rest and is flagged incomplete. */
  unreadable?: UnreadablePages;
  /** The vmcore was read through mappings of it (/proc/vmcore). */
  vmcoreMapped?: boolean;
  /** The codec the pages were compressed with, when not the configured one (its library was missing). */
  codec?: string;
}

export interface WriteDumpArgs {
  vmcore: string;
  collector: CoreCollector;
  sink: DumpSink;
  /** pages done, total, bytes per page */
  progress: (done: number, total: number, pageSize: number) => void;
  warn: (line: string) => void;
}

export interface CaptureStages {
  /** Filters and writes the vmcore into the sink (flattened when the sink is a stream); closes the sink. */
  writeDump(a: WriteDumpArgs): Promise<DumpResult>;
  /** The crashed kernel's log, as makedumpfile --dump-dmesg prints it. */
  dmesg(vmcore: string, warn?: (line: string) => void): Promise<Buffer>;
  /** Modules the target needs, honouring blacklists; reset_devices. */
  loadModules(plan: Plan): Promise<void>;
  /** ip= bring-up; the address the dump directory is named after. */
  bringUpNetwork(plan: Plan): Promise<{ hostIp?: string }>;
  /** fence_kdump_nodes: starts notifying the cluster nodes; stopped when the capture ends. */
  startFence(plan: Plan, log: (line: string) => void): Promise<{ stop(): Promise<void> }>;
  openTarget(plan: Plan, log: (line: string) => void): Promise<DumpTarget>;
  /** The capture kernel's own log (/dev/kmsg), for the run log; only under PID 1. */
  kernelLog?(): string | undefined;
}

export interface CaptureOptions {
  sys: System;
  plan: Plan;
  vmcore: string;
  stages: CaptureStages;
  /** Console lines; sys.log by default. */
  emit?: (line: string) => void;
  /** Capture start for the names; now by default. */
  time?: Date;
  hostname?: string;
  /** Under PID 1: load modules and bring the network up (a running system has both). */
  prepareSystem: boolean;
}

export type OutcomeAction = FinalAction;

export interface Outcome {
  ok: boolean;
  action: OutcomeAction;
  reason: string;
  /** The dump as found on the target, under its final or its incomplete name. */
  dump?: string;
  incomplete: boolean;
}

/** kdump.sh's KDUMP_TEST_STATUS, next to the dump of a `kdumpctl test`. */
export const VMCORE_CREATION_STATUS = 'vmcore-creation.status';

const isNetwork = (plan: Plan) => isNetworkTarget(plan.target);

/** The summary lines of one target's attempt. */
function summaryOf(plan: Plan, target: DumpTarget | undefined, attempt: DumpAttempt, s: { ok: boolean; elapsedMs: number; reason?: string; next: string }): string[] {
  const r = attempt.result;
  const c = r?.counts;
  return formatSummary({
    ok: s.ok, target: target?.description ?? describeTarget(plan), file: attempt.dumpFile, incomplete: attempt.incomplete,
    bytes: attempt.bytes,
    format: plan.collector.format + (attempt.flattened ? ' (flattened)' : '') + (attempt.postCompression ? `, then ${attempt.postCompression} (KDUMP_COMPRESSION)` : ''),
    codec: r?.codec ?? plan.collector.codec, dumpLevel: plan.collector.dumpLevel,
    ramPages: r?.ramPages, dumpablePages: r?.dumpablePages, zeroPages: r?.zeroPages, unreadablePages: r?.unreadable?.pages,
    excluded: c ? { cache: c.cache, cachePrivate: c.cachePrivate, user: c.user, free: c.free, hwpoison: c.hwpoison, offline: c.offline } : undefined,
    dmesgFile: attempt.dmesgFile, vmcoreMapped: r?.vmcoreMapped, elapsedMs: s.elapsedMs, reason: s.reason, action: s.next,
  });
}

/**
 * Runs hooks in order and returns the first failure (exit status or time limit) of a hook that
 * counts: a hook from a .d directory only warns. `stopAtFirst` (kdump_pre) returns at that
 * failure; otherwise (kdump_post, kdump_emergency) the later ones still run.
 */
async function runHooks(sys: System, log: RunLog, kind: string, hooks: readonly Hook[], extraArgs: string[] = [], stopAtFirst = false): Promise<string | undefined> {
  let failed: string | undefined;
  for (const h of hooks) {
    log.line(`lastword: running ${kind} ${[h.path, ...h.args, ...extraArgs].join(' ')}`);
    let why: string | undefined;
    try {
      const r = await sys.exec(h.path, [...h.args, ...extraArgs], { timeoutMs: h.timeoutMs, inherit: true });
      if (r.timedOut) why = `${kind} ${h.path} was stopped after ${Math.round(h.timeoutMs / 1000)} s`;
      else if (r.exitCode !== 0) why = `${kind} ${h.path} exited ${r.exitCode}`;
    } catch (err) {
      why = `${kind} ${h.path}: ${describeError(err)}`;
    }
    if (why === undefined) continue;
    if (h.fromDir) { log.line(`lastword: warning: ${why}; going on (a hook from ${h.path.slice(0, h.path.lastIndexOf('/'))})`); continue; }
    failed ??= why;
    if (stopAtFirst) break;
  }
  if (failed) log.line(`lastword: ${failed}`);
  return failed;
}

interface DumpAttempt {
  /** Bytes the target accepted, also when the writer failed part-way. */
  bytes: number;
  flattened?: boolean;
  /** KDUMP_COMPRESSION, when it could run. */
  postCompression?: PostCompression;
  names?: DumpNames;
  result?: DumpResult;
  dumpFile?: string;
  dmesgFile?: string;
  incomplete: boolean;
  error?: unknown;
}

/** The sink as the writer sees it, counting what the target accepted (the summary's bytes). */
function counting(s: DumpSink, into: { bytes: number }): DumpSink {
  return s.kind === 'positional'
    ? { kind: 'positional', pwrite: async (b, o) => { await s.pwrite(b, o); into.bytes += b.length; }, close: () => s.close(), abort: () => s.abort() }
    : { kind: 'stream', write: async (b) => { await s.write(b); into.bytes += b.length; }, close: () => s.close(), abort: () => s.abort() };
}

/** Opens the plan's target; every request to it then has the stall time limit. */
async function openGuarded(o: CaptureOptions, plan: Plan, log: RunLog): Promise<DumpTarget> {
  return stallGuardTarget(await o.stages.openTarget(plan, (l) => log.line(l)), plan.stallTimeoutMs);
}

/** Writes the run log next to the dump and closes the target (time-limited: see stallGuardTarget). */
async function finishTarget(target: DumpTarget, attempt: DumpAttempt, log: RunLog, runLog: () => string): Promise<void> {
  if (target.hasFiles && attempt.names) {
    await target.writeFile(attempt.names.dir, attempt.names.log, runLog())
      .catch((err: unknown) => log.line(`lastword: warning: the run log was not saved: ${describeError(err)}`));
  }
  await target.close().catch(() => undefined);
}

/** Saves dmesg and the dump into an opened target. Never throws: the attempt records what happened. */
async function saveInto(target: DumpTarget, o: CaptureOptions, log: RunLog, hostIp: string | undefined): Promise<DumpAttempt> {
  const { plan } = o;
  // Fedora's kdump.sh strips -F and adds it back only for ssh and raw, so there the target decides;
  // Debian passes MAKEDUMP_ARGS as written, so -F on a local or NFS target is honoured. For ssh the
  // transport decides (sftp: a finished file; dd: a flattened stream).
  // KDUMP_COMPRESSION: kdump-config compresses makedumpfile's flattened output as a whole.
  let post: PostCompressor | undefined;
  if (plan.postCompression) {
    const c = postCompressor(plan.postCompression.method);
    if ('missing' in c) log.line(`lastword: warning: ${sourceAt(plan.postCompression.source)}: ${c.missing}`);
    else post = c;
  }
  const flattened = target.streamOnly || post !== undefined || (plan.collector.flattened && plan.layout === 'debian' && plan.target.kind !== 'ssh');
  const attempt: DumpAttempt = { bytes: 0, incomplete: false, flattened, postCompression: post?.method };
  try {
    const names = dumpNames({
      naming: plan.naming, time: o.time ?? new Date(), network: target.network || isNetwork(plan), hostIp: hostIp ?? target.localAddress, hostname: o.hostname ?? os.hostname(), flattened,
      // Debian mounts an NFS export on KDUMP_COREDIR itself: the dump directory is at the export's top.
      // An FTP dump goes into FTP_COREDIR, not KDUMP_COREDIR.
      path: plan.layout === 'debian' && plan.target.kind === 'nfs' ? '/' : plan.target.kind === 'ftp' ? plan.target.dir : plan.path,
      ftp: plan.target.kind === 'ftp',
      extension: post ? POST_COMPRESSION_EXTENSION[post.method] : undefined,
    });
    attempt.names = names;
    const at = (n: string) => (target.hasFiles ? joinInside(names.dir, n) : target.description);
    if (target.hasFiles) {
      await target.mkdirs(names.dir);
      // `kdumpctl test` (kdump_test_id= on the command line) reads this file back from the target:
      // kdump.sh writes "fail" first and "success" only when the dump is saved.
      if (plan.naming.testId !== undefined) {
        await target.writeFile(names.dir, VMCORE_CREATION_STATUS, `fail kdump_test_id=${plan.naming.testId}\n`)
          .catch((err: unknown) => log.line(`lastword: warning: ${VMCORE_CREATION_STATUS} was not written: ${describeError(err)}`));
      }
      if (!target.network && !isNetwork(plan)) {
        // kdump-config purges local dumps only; the new directory is in the listing and is the newest.
        const parent = names.dir.slice(0, names.dir.lastIndexOf('/')) || '/';
        for (const old of dumpsToRemove(plan.layout, await target.list(parent), plan.numDumps)) {
          log.line(`lastword: KDUMP_NUM_DUMPS=${plan.numDumps}: removing old dump ${joinInside(parent, old)}`);
          await target.removeDump(parent, old);
        }
      }
      if (plan.dmesg) {
        try {
          const text = await o.stages.dmesg(o.vmcore, (line) => log.line(line));
          await target.writeFile(names.dir, names.dmesgIncomplete, text);
          await target.rename(names.dir, names.dmesgIncomplete, names.dmesg);
          attempt.dmesgFile = at(names.dmesg);
          log.line(`lastword: kernel log saved to ${attempt.dmesgFile}`);
        } catch (err) {
          // The dump matters more than its log: go on.
          log.line(`lastword: warning: the kernel log was not saved: ${describeError(err)}`);
        }
      }
    }
    log.line(`lastword: saving ${o.vmcore} to ${target.description}: ${at(names.dumpIncomplete)}`);
    const counted = counting(await target.openDump(names.dir, names.dumpIncomplete, flattened ? 'stream' : 'positional'), attempt);
    const sink = post && counted.kind === 'stream' ? compressingSink(counted, post) : counted;
    attempt.dumpFile = at(names.dumpIncomplete);
    attempt.incomplete = true;
    log.startPages();
    try {
      attempt.result = await o.stages.writeDump({
        vmcore: o.vmcore, collector: plan.collector, sink,
        progress: (done, total, pageSize) => log.pages(done, total, pageSize),
        warn: (line) => log.line(line),
      });
    } catch (err) {
      await sink.abort().catch(() => undefined);
      throw err;
    }
    const lost = attempt.result.unreadable;
    if (lost) log.line(`lastword: warning: ${unreadableMessage(o.vmcore, lost)}`);
    if (target.hasFiles) {
      await target.rename(names.dir, names.dumpIncomplete, names.dump);
      attempt.dumpFile = at(names.dump);
    }
    // Finished, under its final name, but without the pages that could not be read: said in the
    // summary and in the dump's header, which crash reads.
    attempt.incomplete = lost !== undefined;
  } catch (err) {
    attempt.error = err;
  }
  return attempt;
}

export async function capture(o: CaptureOptions): Promise<Outcome> {
  const { sys, plan } = o;
  const log = new RunLog({ emit: o.emit ?? ((l) => sys.log(l)), now: () => sys.now() });
  for (const w of plan.warnings) log.line(`lastword: warning: ${sourceAt(w)}: ${w.message}`);
  // Debian: kdump-config savecore writes a dump to each of FTP, SSH and NFS/local in turn; the
  // last one goes the way of the single target of every other set-up.
  const order = planTargets(plan);
  const main = planFor(plan, order[order.length - 1]!);
  let reason = '';
  let attempt: DumpAttempt = { bytes: 0, incomplete: false };
  let target: DumpTarget | undefined;
  let hostIp: string | undefined;
  let fence: { stop(): Promise<void> } | undefined;
  const fail = (why: string) => { reason ||= why; };
  // Failures of the targets before the last: the capture goes on to the next one.
  const earlier: string[] = [];
  // kdump.sh's kexec-dmesg.log is the capture kernel's dmesg; lastword's own lines follow it.
  const runLog = (): string => {
    const kernel = o.prepareSystem ? o.stages.kernelLog?.() : undefined;
    return kernel ? `=== capture kernel log (/dev/kmsg) ===\n${kernel}=== lastword ===\n${log.text()}` : log.text();
  };

  // kdump.sh's order: the initramfs has loaded the modules and brought the network up (dracut),
  // kdump.sh notifies fence_kdump and finds the host address, then runs kdump_pre, then dumps.
  if (o.prepareSystem) {
    try {
      await o.stages.loadModules(plan);
    } catch (err) {
      // A missing module shows up as a target that cannot be opened; say it here too.
      log.line(`lastword: warning: modules: ${describeError(err)}`);
    }
    if (needsNetwork(plan)) {
      const anyNetwork = order.some(isNetworkTarget);
      try {
        const up = await o.stages.bringUpNetwork(plan);
        if (anyNetwork) hostIp = up.hostIp;   // kdump.sh names local dumps 127.0.0.1-..., fence_kdump or not
      } catch (err) {
        // Without the network a network target cannot be reached; a local dump still can, unfenced.
        if (isNetwork(main)) fail(`network: ${describeError(err)}`);
        else if (anyNetwork) log.line(`lastword: warning: network: ${describeError(err)}; the network targets will fail`);
        else log.line(`lastword: warning: network for fence_kdump: ${describeError(err)}; the cluster is not notified`);
      }
    }
    if (!reason && plan.fence) {
      try {
        fence = await o.stages.startFence(plan, (l) => log.line(l));
      } catch (err) {
        log.line(`lastword: warning: fence_kdump: ${describeError(err)}`);
      }
    }
  }
  // kdump.sh runs once dracut has mounted the dump target (a disk or NFS export in the image's
  // fstab) or found the raw device, so kdump_pre can use it; an SSH target is reached by the dump
  // itself. A target that fails there never gets to kdump.sh's main path: no kdump_pre and no
  // kdump_post, only the emergency hooks and the failure action (kdump.sh --error-handler).
  const openTarget = async () => {
    try {
      target = await openGuarded(o, main, log);
    } catch (err) {
      fail(describeError(err));
    }
  };
  // With Debian's several targets none is opened ahead: kdump-config reaches them in turn.
  if (!reason && order.length === 1 && main.target.kind !== 'ssh' && main.target.kind !== 'stdout' && main.target.kind !== 'ftp') await openTarget();
  // A failing kdump_pre (not a pre.d hook) stops the capture: no dump, no kdump_post, and the
  // final action, not the failure action (kdump.conf(5): "non 0 - run the final action").
  const preRan = !reason;
  const preFailed = preRan ? await runHooks(sys, log, 'kdump_pre', plan.hooks.pre, [], true) : undefined;
  if (!reason && !preFailed) {
    for (const [i, t] of order.slice(0, -1).entries()) {
      const failed = await saveToEarlierTarget(o, log, planFor(plan, t), hostIp, describeTarget(planFor(plan, order[i + 1]!)), runLog);
      if (failed) earlier.push(failed);
    }
  }
  if (!reason && !preFailed && !target) await openTarget();
  if (target && !preFailed) {
    attempt = await saveInto(target, { ...o, plan: main }, log, hostIp);
    if (attempt.error !== undefined) fail(describeError(attempt.error));
  }
  // As kdump-config savecore, whose exit status is its last target's, the last target decides
  // between the final and the failure action; a target before it that failed is named in the
  // summary and the outcome, with its own summary above.
  const ok = !reason && !preFailed;
  const missed = earlier.length > 0 ? `no dump on: ${earlier.join('; ')}` : undefined;
  let rootfsSaved = false;
  if (preRan && !preFailed) {
    const postFailed = await runHooks(sys, log, 'kdump_post', plan.hooks.post, [ok ? '0' : '1']);
    if (postFailed) log.line(`lastword: warning: ${postFailed}`);
  }
  if (!ok && !preFailed) await runHooks(sys, log, 'kdump_emergency', plan.hooks.emergency);
  if (!ok && !preFailed && plan.failureAction === 'dump_to_rootfs' && main.target.kind !== 'root') {
    // kdump.sh's dump_to_rootfs: one more try on the root filesystem, the first target's log kept there.
    log.line(`lastword: failure_action dump_to_rootfs: saving to the root filesystem (${reason})`);
    if (target) await finishTarget(target, attempt, log, runLog);
    target = undefined;
    const rootPlan = planFor(main, { kind: 'root', source: main.target.source });
    try {
      target = await openGuarded(o, rootPlan, log);
      attempt = await saveInto(target, { ...o, plan: rootPlan }, log, hostIp);
      if (attempt.error !== undefined) log.line(`lastword: dump_to_rootfs failed too: ${describeError(attempt.error)}`);
      else rootfsSaved = true;
    } catch (err) {
      log.line(`lastword: dump_to_rootfs failed too: ${describeError(err)}`);
    }
  }

  let action: OutcomeAction;
  if (ok || preFailed) {
    action = plan.finalAction;
    if (preFailed) reason = preFailed;
  } else {
    if (plan.failureCommand) {
      log.line(`lastword: running KDUMP_FAIL_CMD: ${plan.failureCommand}`);
      await sys.exec('/bin/sh', ['-c', plan.failureCommand], { inherit: true, timeoutMs: 300_000 }).catch(() => undefined);
    }
    // After dump_to_rootfs kdump.sh goes on to the final action; if that failed too, reboot.
    action = plan.failureAction !== 'dump_to_rootfs' ? plan.failureAction : rootfsSaved ? plan.finalAction : 'reboot';
  }
  for (const line of summaryOf(main, target, attempt, {
    ok, elapsedMs: log.elapsedMs(), reason: [reason, missed].filter(Boolean).join('; ') || undefined,
    next: ok ? `final action: ${action}` : preFailed ? `kdump_pre failed, no dump; final action: ${action}` : rootfsSaved ? `saved to the root filesystem instead; final action: ${action}` : `failure action: ${action}`,
  })) log.line(line);
  if (target && ok && plan.naming.testId !== undefined && target.hasFiles && attempt.names) {
    await target.writeFile(attempt.names.dir, VMCORE_CREATION_STATUS, `success kdump_test_id=${plan.naming.testId}\n`)
      .catch((err: unknown) => log.line(`lastword: warning: ${VMCORE_CREATION_STATUS} was not updated: ${describeError(err)}`));
  }
  if (target) await finishTarget(target, attempt, log, runLog);
  await fence?.stop().catch(() => undefined);
  return { ok, action, reason: reason || (missed ? `dump saved; ${missed}` : 'dump saved'), dump: attempt.dumpFile, incomplete: attempt.incomplete };
}

/**
 * One of Debian's targets before the last (FTP before SSH before NFS/local): opened, dumped to,
 * its summary and the run log so far written next to the dump, closed. A failure is returned,
 * not thrown: kdump-config goes on to the next target.
 */
async function saveToEarlierTarget(o: CaptureOptions, log: RunLog, sub: Plan, hostIp: string | undefined, next: string, runLog: () => string): Promise<string | undefined> {
  let target: DumpTarget | undefined;
  let attempt: DumpAttempt = { bytes: 0, incomplete: false };
  try {
    target = await openGuarded(o, sub, log);
    attempt = await saveInto(target, { ...o, plan: sub }, log, hostIp);
  } catch (err) {
    attempt.error = err;
  }
  const failed = attempt.error !== undefined ? `${describeTarget(sub)}: ${describeError(attempt.error)}` : undefined;
  for (const line of summaryOf(sub, target, attempt, { ok: !failed, elapsedMs: log.elapsedMs(), reason: failed, next: `the dump to ${next}` })) log.line(line);
  if (target) await finishTarget(target, attempt, log, runLog);
  return failed;
}

function describeTarget(plan: Plan): string {
  const t = plan.target;
  return t.kind === 'ssh' ? `ssh ${t.user}@${t.host}` : t.kind === 'nfs' ? `nfs ${t.server}:${t.export}` : t.kind === 'ftp' ? `ftp ${t.host}:${t.dir}` : t.kind;
}

/** For callers that must not throw (PID 1's child): any error as a failed outcome. */
export function failedOutcome(plan: Plan | undefined, err: unknown): Outcome {
  const action = plan ? (plan.failureAction === 'dump_to_rootfs' ? 'reboot' : plan.failureAction) : 'reboot';
  return { ok: false, action, reason: err instanceof LastwordError ? err.oneLine() : describeError(err), incomplete: false };
}
