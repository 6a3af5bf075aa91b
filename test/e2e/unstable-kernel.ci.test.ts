// E2E on Debian unstable's newest kernel (7.x): the guest and its capture kernel boot that kernel
// (modules packaged as .ko.xz, VMCOREINFO naming the tail-page marker compound_info since 7.1), lastword
// as PID 1 saves a -d 31 dump to an ext4 disk, and unstable's crash lists the dead kernel's tasks
// from it. makedumpfile 1.7.8/1.7.9 drop page 1 of every large folio on these kernels, and crash
// then stops at "gathering task table data"; this is the check that lastword does not.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { test } from 'node:test';
import { debugVmlinux, kernelVersion, UNSTABLE_SERIES, unstableCrash } from '../support/lab.ts';
import { crashReport, diskCapture, e2eDir, missingPrerequisite } from './cycle.ts';

const kver = kernelVersion(UNSTABLE_SERIES);
const skip = missingPrerequisite() ?? (kver ? undefined : `no Debian unstable ${UNSTABLE_SERIES}.x kernel in /boot (bash .ci/setup)`);

test(`a ${UNSTABLE_SERIES}.x guest: lastword as PID 1 saves a -d 31 dump whose tasks crash lists`, { skip, timeout: 900_000 }, async (t) => {
  const base = e2eDir(t, 'unstable');
  const { run, dump, tail } = await diskCapture(base, 'unstable-kernel', kver);
  assert.match(run.capture, /dump saved/, tail);
  assert.match(run.capture, /time: .*\(vmcore read through mmap\)/, tail);
  assert.match(run.capture, new RegExp(`Linux version ${kver!.replace(/[.+]/g, '\\$&')} `), 'the capture kernel is not the unstable one');
  assert.match(fs.readFileSync(dump.dmesg!, 'utf8'), /LASTWORD-E2E-MARKER primary workload/);

  // 9.x still lacks 7.x's struct module layout (module_num_gpl_syms), hence --no_modules.
  const report = crashReport(unstableCrash(), debugVmlinux(kver!), dump.vmcore, { args: ['--no_modules'], commands: ['sys', 'bt', 'ps', 'log'] });
  const where = `crash on the ${kver} dump:\n${report.output.slice(-3000)}`;
  assert.ok(report.ok, where);
  assert.match(report.output, new RegExp(`RELEASE: ${kver!.replace(/[.+]/g, '\\$&')}`), where);
  assert.match(report.output, /sysrq_handle_crash|sysrq/, where);
  const tasks = report.output.split('\n').filter((l) => /^[> ]\s+\d+\s+\d+\s+\d+\s+[0-9a-f]{16}\s+[A-Z]{2}\s/.test(l));
  assert.ok(tasks.length > 20, `crash ps lists ${tasks.length} tasks\n${where}`);
  assert.match(report.output, /LASTWORD-E2E-MARKER primary workload/, where);
});
