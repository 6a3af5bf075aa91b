// The test command of the README (`npm test`): every unit and integration test, plus the E2E
// cases chosen for CI (test/e2e/*.ci.test.ts). `--unit` skips anything under test/e2e;
// `--e2e` runs every E2E case. Runs node's test runner on the pinned Node.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const mode = process.argv.includes('--e2e') ? 'e2e' : process.argv.includes('--unit') ? 'unit' : 'all';
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

let files = walk(path.join(root, 'test')).sort();
const isE2e = (f: string) => f.includes(`${path.sep}e2e${path.sep}`);
if (mode === 'unit') files = files.filter((f) => !isE2e(f));
else if (mode === 'e2e') files = files.filter(isE2e);
else files = files.filter((f) => !isE2e(f) || f.endsWith('.ci.test.ts'));
if (only.length) files = files.filter((f) => only.some((o) => f.includes(o)));
if (!files.length) {
  console.error('test/run.ts: no test files selected');
  process.exit(1);
}
const res = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...files.map((f) => path.relative(root, f))], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(res.status ?? 1);
