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
