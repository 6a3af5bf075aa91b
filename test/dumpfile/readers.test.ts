// Every output `lastword filter` writes is opened by the reference readers on real kdump vmcores
// of three kernel generations. 6.1: crash (sys, bt, log, ps) for zlib, snappy, zstd, uncompressed,
// ELF and a reassembled flattened lzo dump; drgn for zlib and ELF. 6.12 (other struct layouts):
// crash for zlib, zstd, ELF and flattened lzo; drgn for zlib. Debian unstable's 7.x (tail pages
// marked by compound_info): unstable's crash 9.x (8.0.6 cannot read 7.x) for zlib, ELF and flattened
// lzo; drgn for zlib. crash runs are few: each loads a vmlinux of 400-600 MB.
import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { debugVmlinux, kernelVersion, labVmcore, repo, UNSTABLE_SERIES, unstableCrash } from '../support/lab.ts';
import { crashWithAllCodecs, tempDir } from './support.ts';

const run = promisify(execFile);
const main = path.join(repo, 'runtime', 'main.ts');

interface Output { name: string; args: string[]; flat?: boolean }

const OUTPUTS: Output[] = [
  { name: 'zlib', args: ['-c', '-d', '31'] },
  { name: 'snappy', args: ['-p', '-d', '31'] },
  { name: 'zstd', args: ['-z', '-d', '31'] },
  { name: 'uncompressed', args: ['-d', '31'] },
  { name: 'elf', args: ['-E', '-d', '31'] },
  // lzo is checked through the reassembled flattened dump: -R output equals the direct file byte
  // for byte (kdump-writer.test.ts), so one crash run covers both.
  { name: 'lzo-flattened-reassembled', args: ['-F', '-l', '-d', '31'], flat: true },
];

function writeOutput(vmcore: string, dir: string, o: Output): string {
  const out = path.join(dir, o.name);
  const args = [main, 'filter', ...o.args, '--message-level', '0', vmcore];
  if (!o.flat) {
    const r = spawnSync(process.execPath, [...args, out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return out;
  }
  const flat = `${out}.flat`;
  const fd = fs.openSync(flat, 'w');
  const r = spawnSync(process.execPath, args, { stdio: ['ignore', fd, 'pipe'], encoding: 'utf8' });
  fs.closeSync(fd);
  assert.equal(r.status, 0, r.stderr);
  const inFd = fs.openSync(flat, 'r');
  const r2 = spawnSync(process.execPath, [main, 'filter', '-R', out], { stdio: [inFd, 'ignore', 'pipe'], encoding: 'utf8' });
  fs.closeSync(inFd);
  assert.equal(r2.status, 0, r2.stderr);
  return out;
}

/** Runs crash on a dump with sys/bt/log/ps; two at a time (each loads a 633 MB vmlinux). */
async function crashAll(crash: string, args: string[], vmlinux: string, dumps: string[]): Promise<Map<string, string>> {
  const results = new Map<string, string>();
  const queue = [...dumps];
  const worker = async () => {
    for (let d = queue.shift(); d !== undefined; d = queue.shift()) {
      const cmds = `${d}.crash-cmds`;
      fs.writeFileSync(cmds, 'sys\nbt\nlog\nps\nquit\n');
      const { stdout, stderr } = await run(crash, [...args, '-s', '-i', cmds, vmlinux, d], { maxBuffer: 64 << 20, timeout: 300_000 })
        .catch((err: { stdout?: string; stderr?: string; message: string }) => ({ stdout: err.stdout ?? '', stderr: `${err.stderr ?? ''} ${err.message}` }));
      results.set(d, `${stdout}\n--stderr--\n${stderr}`);
    }
  };
  await Promise.all([worker(), worker()]);
  return results;
}

interface Generation { series: string; outputs: string[]; drgn: string[]; crash: () => string; crashArgs: string[] }

const GENERATIONS: Generation[] = [
  { series: '6.1', outputs: OUTPUTS.map((o) => o.name), drgn: ['zlib', 'elf'], crash: crashWithAllCodecs, crashArgs: [] },
  { series: '6.12', outputs: ['zlib', 'zstd', 'elf', 'lzo-flattened-reassembled'], drgn: ['zlib'], crash: crashWithAllCodecs, crashArgs: [] },
  // --no_modules: crash 9.x does not know 7.x's struct module yet (module_num_gpl_syms).
  { series: UNSTABLE_SERIES, outputs: ['zlib', 'elf', 'lzo-flattened-reassembled'], drgn: ['zlib'], crash: unstableCrash, crashArgs: ['--no_modules'] },
];

for (const gen of GENERATIONS) {
  describe(`crash and drgn open every output of lastword filter (${gen.series} vmcore)`, () => {
    test(`crash: sys, bt, log and ps work on ${gen.outputs.join(', ')} dumps; drgn reads ${gen.drgn.join(' and ')}`, async (t) => {
      const kver = kernelVersion(gen.series)!;
      const vmlinux = debugVmlinux(kver);
      const vmcore = labVmcore({ series: gen.series });
      const crash = gen.crash();
      const dir = tempDir(t);
      const outputs = OUTPUTS.filter((o) => gen.outputs.includes(o.name));
      const dumps = outputs.map((o) => writeOutput(vmcore, dir, o));
      const results = await crashAll(crash, gen.crashArgs, vmlinux, dumps);
      for (const [i, o] of outputs.entries()) {
        const out = results.get(dumps[i]!)!;
        const where = `crash on ${o.name}:\n${out.slice(0, 3000)}`;
        assert.match(out, new RegExp(`RELEASE: ${kver.replace(/[.+]/g, '\\$&')}`), where);
        assert.match(out, /PANIC: "Kernel panic/, where);
        assert.match(out, /#0 \[[0-9a-f]+\] \w+ at [0-9a-f]+/, where);
        assert.match(out, /#1 \[[0-9a-f]+\] __crash_kexec at/, where);
        assert.match(out, /LAB-MARKER/, where);
        const tasks = out.split('\n').filter((l) => /^[> ]\s+\d+\s+\d+\s+\d+\s+[0-9a-f]{16}\s+[A-Z]{2}\s/.test(l));
        const named = tasks.filter((l) => !/swapper/.test(l));
        assert.ok(tasks.length > 20 && named.length > 10, `${o.name}: ps lists ${tasks.length} tasks, ${named.length} not idle\n${where}`);
        assert.doesNotMatch(out, /crash: (?!.*please wait)(.*(uncompress failed|invalid|cannot read))/i, where);
      }
      const script = [
        'import sys, drgn',
        'from drgn.helpers.linux.pid import for_each_task',
        'p = drgn.Program(); p.set_core_dump(sys.argv[1]); p.load_debug_info([sys.argv[2]])',
        'print("release", p["init_uts_ns"].name.release.string_().decode())',
        'print("tasks", sum(1 for _ in for_each_task(p)))',
      ].join('\n');
      for (const name of gen.drgn) {
        const { stdout } = await run('/usr/bin/python3', ['-c', script, path.join(dir, name), vmlinux], { timeout: 120_000 });
        assert.match(stdout, new RegExp(`release ${kver.replace(/[.+]/g, '\\$&')}`), `drgn on ${name}: ${stdout}`);
        const tasks = Number(/tasks (\d+)/.exec(stdout)?.[1]);
        assert.ok(tasks > 20, `drgn on ${name} found ${tasks} tasks`);
      }
    });
  });
}
