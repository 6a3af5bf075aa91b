// /proc/self/mountinfo (proc(5)): which filesystem shows a directory, and where a device is
// mounted already. Parsing is pure; the caller reads the file.
export interface MountInfoEntry {
  majorMinor: string;
  /** the directory of the filesystem this mount shows (not '/' for a bind mount or a btrfs subvolume) */
  root: string;
  mountPoint: string;
  /** per-mount options: `ro` or `rw` first */
  options: string[];
  fstype: string;
  source: string;
}

/** The lines of mountinfo, octal escapes (\040) in paths decoded. */
export function parseMountInfo(text: string): MountInfoEntry[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const out: MountInfoEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-', 6);
    if (dash < 0 || f.length < dash + 3) continue;
    out.push({
      majorMinor: f[2]!, root: unescape(f[3]!), mountPoint: unescape(f[4]!), options: f[5]!.split(','),
      fstype: f[dash + 1]!, source: unescape(f[dash + 2]!),
    });
  }
  return out;
}

/** The mount that shows `dir` (absolute, resolved): the longest mount point above it, the last one mounted there. */
export function mountOf(entries: readonly MountInfoEntry[], dir: string): MountInfoEntry | undefined {
  let best: MountInfoEntry | undefined;
  for (const e of entries) {
    const under = e.mountPoint === '/' || dir === e.mountPoint || dir.startsWith(e.mountPoint + '/');
    if (under && (!best || e.mountPoint.length >= best.mountPoint.length)) best = e;
  }
  return best;
}

/** `major:minor` of a device number, as mountinfo writes it (Linux's new_encode_dev split). */
export function majorMinor(rdev: number): string {
  const major = ((rdev >>> 8) & 0xfff) | Math.floor(rdev / 2 ** 32) & ~0xfff;
  const minor = (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);
  return `${major}:${minor}`;
}
