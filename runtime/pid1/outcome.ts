// What the capture child tells PID 1 when it ends: /run/lastword/outcome.json, written by
// `lastword save --capture` (runtime/pid1/capture.ts). A child that dies without one (a crash,
// the OOM killer) gets the failure action of the kernel command line, reboot by default.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { splitCmdline } from '../config/cmdline.ts';
import { loadPlan } from '../config/load.ts';
import { FINAL_ACTIONS, type FailureAction, type FinalAction } from '../config/plan.ts';
import { describeError } from '../errors.ts';

export const OUTCOME_FILE = '/run/lastword/outcome.json';

export interface Outcome {
  ok: boolean;
  action: FinalAction;
  reason: string;
}

/** Parses outcome.json; a malformed one is an error message, never an exception. */
export function parseOutcome(text: string): Outcome | { invalid: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return { invalid: `not JSON: ${describeError(err)}` };
  }
  if (typeof v !== 'object' || v === null) return { invalid: 'not an object' };
  const o = v as Record<string, unknown>;
  if (typeof o.ok !== 'boolean') return { invalid: "'ok' is not a boolean" };
  if (typeof o.action !== 'string' || !(FINAL_ACTIONS as readonly string[]).includes(o.action)) {
    return { invalid: `'action' ${JSON.stringify(o.action)} is not one of ${FINAL_ACTIONS.join(', ')}` };
  }
  return { ok: o.ok, action: o.action as FinalAction, reason: typeof o.reason === 'string' ? o.reason : '' };
}

/** Reads and removes nothing: undefined when absent, `invalid` when unreadable. */
export function readOutcome(root: string): Outcome | { invalid: string } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path.join(root, OUTCOME_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return { invalid: describeError(err) };
  }
  return parseOutcome(text);
}

export function clearOutcome(root: string): void {
  fs.rmSync(path.join(root, OUTCOME_FILE), { force: true });
  fs.mkdirSync(path.dirname(path.join(root, OUTCOME_FILE)), { recursive: true });
}

/**
 * `lastword.failure_action=` of the kernel command line; 'reboot' when absent or not an action PID 1
 * can take itself (dump_to_rootfs is the capture's business: if the capture died, reboot).
 */
export function cmdlineFailureAction(cmdline: string): FinalAction {
  let action: FinalAction = 'reboot';
  for (const p of splitCmdline(cmdline)) {
    if (p.name === 'lastword.failure_action' && (FINAL_ACTIONS as readonly string[]).includes(p.value ?? '')) action = p.value as FinalAction;
  }
  return action;
}

const isOn = (value: string | undefined): boolean => value === undefined || /^(1|yes|true|on)$/i.test(value);

/** A boolean `lastword.<name>` switch: present bare, or =1/=yes/=true. */
export function cmdlineFlag(cmdline: string, name: string): boolean {
  return splitCmdline(cmdline).some((p) => p.name === `lastword.${name}` && isOn(p.value));
}

/** The last `lastword.<name>` word, on or off, with its value; undefined when the command line has none. */
export function cmdlineSwitch(cmdline: string, name: string): { on: boolean; value?: string } | undefined {
  const word = splitCmdline(cmdline).findLast((p) => p.name === `lastword.${name}`);
  return word && { on: isOn(word.value), value: word.value };
}

/**
 * A failure action as something done without lastword's capture (PID 1 after the capture died, the
 * initramfs /init when lastword's image does not mount): dump_to_rootfs needs the capture, so reboot.
 */
export function failureFinalAction(action: FailureAction): FinalAction {
  return (FINAL_ACTIONS as readonly string[]).includes(action) ? action as FinalAction : 'reboot';
}

/**
 * The failure action PID 1 takes itself when the capture left no outcome (it was killed, ran out of
 * memory, or never started): the configs' failure_action (kdump.conf / kdump-tools, with the
 * `lastword.*` overrides of the command line), as the capture would have taken it. A config PID 1
 * cannot read falls back to the command line alone. dump_to_rootfs is the capture's business: if
 * the capture died, PID 1 reboots.
 */
export function configuredFailureAction(root: string, cmdline: string, log: (line: string) => void): FinalAction {
  try {
    return failureFinalAction(loadPlan({ root, cmdline }).failureAction);
  } catch (err) {
    log(`lastword: cannot read the kdump config (${describeError(err)}); failure action from the command line`);
    return cmdlineFailureAction(cmdline);
  }
}
