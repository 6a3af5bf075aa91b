// E2E, Debian's stock kdump with lastword as its makedumpfile fallback: a Debian 12 root
// (debootstrap: systemd, kdump-tools, makedumpfile; see kdump-tools-guest.ts) whose kdump-tools
// capture initramfs and command line are Debian's own, at Debian's default reservation
// (kdump-tools' `crashkernel=384M-:128M`: 128M on this 1 GiB guest). lastword is installed as
// hooks/kdump-tools/makedumpfile says, and the real makedumpfile is not there, as when it cannot
// run: kdump-config savecore's `makedumpfile --dump-dmesg` and `makedumpfile -F -c -d 31 | compress`
// reach lastword, which writes both. And with Debian's makedumpfile behind the shim, as every capture
// runs once lastword is installed: it still fits and makedumpfile's dump stands. What this guards: on such a system /run is noexec (initramfs-
// tools mounts it so) and libsnappy is not installed; either one stopped lastword from writing
// anything before 2026-12-07.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { crashBinary, debugVmlinux, repo } from '../support/lab.ts';
import {
  classifyDumpFiles, crashReport, e2eDir, INIT_DIED, kver61, lastwordExe, missingPrerequisite, reassemble, runCycle,
} from './cycle.ts';
import { debianCycleOptions, extractExt4Dir, kdumpToolsGuest, withLastwordShim, type RealMakedumpfile } from './kdump-tools-guest.ts';

const skip = missingPrerequisite()
  || (spawnSync('sh', ['-c', 'command -v debootstrap']).status === 0 ? false : 'debootstrap is missing (bash .ci/setup)');

const cases: Array<{ real: RealMakedumpfile; title: string }> = [
  { real: 'missing', title: 'no makedumpfile: lastword behind kdump-config saves the dump and the dmesg' },
  { real: 'present', title: 'Debian\'s makedumpfile behind the shim: it saves them as without lastword, relayed' },
];

for (const c of cases) {
  test(`Debian 12 kdump-tools at crashkernel=128M, ${c.title}`, { skip, timeout: 1_800_000 }, async (t) => {
    const base = e2eDir(t, `debian-${c.real}`);
    const kver = kver61();
    const g = kdumpToolsGuest(kver);
    const rootImage = withLastwordShim(g, lastwordExe, path.join(repo, 'hooks', 'kdump-tools', 'makedumpfile'), c.real, path.join(base, 'root.img'));
    const run = await runCycle(debianCycleOptions(g, kver, { name: `debian-${c.real}`, baseDir: base, crashkernel: '128M', rootImage }), 900_000);
    const tail = run.guest.tail(40);
    assert.ok(run.capture, `the capture kernel never booted:\n${tail}`);
    assert.ok(!INIT_DIED.test(run.capture), `the capture kernel panicked:\n${tail}`);
    assert.doesNotMatch(run.capture, /Out of memory|oom-kill/, tail);
    const lines = run.capture.split('\n').filter((l) => /lastword filter:/.test(l));
    if (c.real === 'missing') {
      // both of kdump-config's makedumpfile runs came to lastword, which wrote without a warning
      assert.equal(lines.filter((l) => /makedumpfile\.distrib cannot run \(ENOENT\).*lastword filter takes over/.test(l)).length, 2, lines.join('\n'));
      assert.ok(!lines.some((l) => /warning|ENATIVE|error/i.test(l)), lines.join('\n'));
    } else {
      // makedumpfile did both (its own last line each time) and lastword never took over
      assert.deepEqual(lines, []);
      assert.equal(run.capture.split('\n').filter((l) => /makedumpfile Completed\./.test(l)).length, 2, tail);
    }
    assert.match(run.capture, /kdump-tools: saved dmesg content in \/var\/crash\/\d{12}/);
    assert.match(run.capture, /kdump-tools: saved vmcore in \/var\/crash\/\d{12}/);
    // kdump-config's layout on the root disk: /var/crash/<stamp>/dump.<stamp> (flattened, -F) and dmesg.<stamp>
    const tree = path.join(base, 'tree');
    const files = extractExt4Dir(run.prepared.disks.root!, '/var/crash', tree);
    const found = classifyDumpFiles(files);
    assert.ok(found.vmcore && !found.incomplete, `no finished dump.<stamp>: ${files.map((f) => path.relative(tree, f)).join(', ')}`);
    assert.ok(found.dmesg, `no dmesg.<stamp>: ${files.map((f) => path.relative(tree, f)).join(', ')}`);
    assert.match(fs.readFileSync(found.dmesg, 'utf8'), /Kernel panic - not syncing: sysrq triggered crash/);
    const dump = reassemble(found.vmcore, path.join(base, 'vmcore.kdump'));
    const report = crashReport(crashBinary(), debugVmlinux(kver), dump);
    assert.ok(report.ok, report.output.slice(-3000));
  });
}
