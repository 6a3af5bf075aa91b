// Shared set-up of the hook tests: a `lastword` command that runs this checkout's source (the
// hooks call it by name or path, as they would call the installed executable), and a small ELF
// that stands in for the ~100 MiB executable so the real generators stay within the test budget.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repo } from '../support/lab.ts';

export function lastwordCommand(dir: string): string {
  const file = path.join(dir, 'lastword');
  fs.writeFileSync(file, `#!/bin/sh\nexec '${process.execPath}' '${path.join(repo, 'runtime', 'main.ts')}' "$@"\n`, { mode: 0o755 });
  return file;
}

/** A copy of kmod with a marker appended (still a valid ELF), so its bytes are unique in the image. */
export function standInExecutable(dir: string): string {
  const file = path.join(dir, 'lastword-executable');
  fs.copyFileSync('/usr/bin/kmod', file);
  fs.appendFileSync(file, `lastword stand-in ${path.basename(dir)}\n`);
  fs.chmodSync(file, 0o755);
  return file;
}

/** Every path under `root`, relative, sorted. */
export function listTree(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      out.push(path.relative(root, p));
      if (e.isDirectory() && !e.isSymbolicLink()) walk(p);
    }
  };
  walk(root);
  return out.sort();
}

/**
 * The lastword executable a generator's image carries, from its unpacked tree `root`: /init itself
 * (plain layout) or the file in usr/lib/lastword/lastword.squashfs (squashfs, the default),
 * extracted with the real unsquashfs into `scratch`.
 */
export function shippedExecutable(root: string, scratch: string): string {
  const sq = path.join(root, 'usr', 'lib', 'lastword', 'lastword.squashfs');
  if (!fs.existsSync(sq)) return path.join(root, 'init');
  const out = fs.mkdtempSync(path.join(scratch, 'unsquashed-'));
  fs.rmSync(out, { recursive: true });
  const r = spawnSync('unsquashfs', ['-d', out, sq], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`unsquashfs ${sq}: ${r.stderr}`);
  return path.join(out, 'lastword');
}

/** dracut's own tree (/usr/lib/dracut) copied to `dir` with hooks/dracut/99lastword added: a dracutbasedir, so nothing is installed on the machine. */
export function dracutBasedir(dir: string): string {
  fs.cpSync('/usr/lib/dracut', dir, { recursive: true, verbatimSymlinks: true });
  fs.cpSync(path.join(repo, 'hooks', 'dracut', '99lastword'), path.join(dir, 'modules.d', '99lastword'), { recursive: true });
  return dir;
}

/**
 * lastword's initramfs-tools confdir at `dir` as an admin installs it: hooks/initramfs-tools/conf plus
 * the hook in hooks/, with `lastwordConf` as lastword.conf (undefined: none, so the confdir is not ours).
 */
export function lastwordConfdir(dir: string, lastwordConf?: string): string {
  const hooks = path.join(repo, 'hooks', 'initramfs-tools');
  fs.cpSync(path.join(hooks, 'conf'), dir, { recursive: true });
  fs.mkdirSync(path.join(dir, 'hooks'));
  fs.mkdirSync(path.join(dir, 'scripts'));
  fs.copyFileSync(path.join(hooks, 'hooks', 'lastword'), path.join(dir, 'hooks', 'lastword'));
  fs.chmodSync(path.join(dir, 'hooks', 'lastword'), 0o755);
  if (lastwordConf === undefined) fs.rmSync(path.join(dir, 'lastword.conf'));
  else fs.writeFileSync(path.join(dir, 'lastword.conf'), lastwordConf);
  return dir;
}
