// `lastword info` on makedumpfile's dump and ours of a real 6.1 kdump vmcore: release, crash time,
// codec, level, and page counts that agree with makedumpfile's own report and the vmcore.
import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { openVmcore } from '../../runtime/vmcore/index.ts';
import { labVmcore, repo } from '../support/lab.ts';
import { tempDir } from '../dumpfile/support.ts';

const main = path.join(repo, 'runtime', 'main.ts');

function info(file: string, json = true): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [main, 'info', ...(json ? ['--json'] : []), file], { encoding: 'utf8' });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('lastword info', () => {
  test('describes makedumpfile -c -d 31 output as makedumpfile reports it', (t) => {
    const vmcoreFile = labVmcore();
    const dir = tempDir(t);
    const out = path.join(dir, 'dump');
    // makedumpfile's own report (--message-level 31) is the reference for the page classes.
    const report = execFileSync('makedumpfile', ['-c', '-d', '31', '--message-level', '31', vmcoreFile, out], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const hex = (label: RegExp) => parseInt(label.exec(report)![1]!, 16);
    const zero = hex(/Pages filled with zero\s*:\s*0x([0-9a-f]+)/);
    const total = hex(/Total pages\s*:\s*0x([0-9a-f]+)/);
    const r = info(out);
    assert.equal(r.status, 0, r.stderr);
    const i = JSON.parse(r.stdout);
    const vmcore = openVmcore(vmcoreFile);
    t.after(() => vmcore.close());
    assert.equal(i.format, 'kdump-compressed');
    assert.equal(i.codec, 'zlib');
    assert.equal(i.dumpLevel, 31);
    assert.equal(i.incomplete, false);
    assert.equal(i.osrelease, vmcore.vmcoreinfo.osrelease);
    assert.equal(i.crashTime, vmcore.vmcoreinfo.crashTime);
    assert.equal(i.pageSize, 4096);
    assert.equal(i.nrCpus, vmcore.nrCpus);
    assert.equal(i.maxMapnr, total);
    assert.equal(i.pages.zero, zero);
    assert.ok(zero > 0);
    assert.equal(i.pages.dumpable, i.pages.zero + i.pages.compressed + i.pages.raw);
    assert.equal(i.pages.excluded, i.pages.ram - i.pages.dumpable);
    assert.equal(i.pages.missing, 0);
    let withData = 0;
    for (let pfn = 0; pfn < vmcore.maxMapnr; pfn++) if (vmcore.pfnHasData(pfn)) withData++;
    assert.equal(i.pages.ram, withData);
  });

  test('describes our own dump the same way it describes makedumpfile\'s, in text', (t) => {
    const vmcoreFile = labVmcore();
    const dir = tempDir(t);
    const ours = path.join(dir, 'ours'), ref = path.join(dir, 'ref');
    assert.equal(spawnSync(process.execPath, [main, 'filter', '-l', '-d', '17', '--message-level', '0', vmcoreFile, ours]).status, 0);
    execFileSync('makedumpfile', ['-l', '-d', '17', vmcoreFile, ref], { stdio: 'ignore' });
    const a = JSON.parse(info(ours).stdout), b = JSON.parse(info(ref).stdout);
    assert.deepEqual({ ...a, file: '' }, { ...b, file: '' });
    const text = info(ours, false);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /compression:\s+lzo/);
    assert.match(text.stdout, /status:\s+complete/);
    assert.match(text.stdout, new RegExp(`release:\\s+${a.osrelease}`));
    assert.match(text.stdout, new RegExp(`dumpable\\s+${a.pages.dumpable} `));
  });

  test('names a file that is not a dump, and an unknown option exits 2', (t) => {
    const r = info(path.join(repo, 'package.json'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /EDUMP_HEADER: .*package\.json: not a kdump-compressed file/);
    const u = spawnSync(process.execPath, [main, 'info', '--frobnicate', 'x'], { encoding: 'utf8' });
    assert.equal(u.status, 2);
    assert.match(u.stderr, /unknown option --frobnicate/);
  });
});
