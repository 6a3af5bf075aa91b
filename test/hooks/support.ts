// Shared set-up of the hook tests: a `lastword` command that runs this checkout's source (the
// hooks call it by name or path, as they would call the installed executable), and a small ELF
// that stands in for the ~100 MiB executable so the real generators stay within the test budget.
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
