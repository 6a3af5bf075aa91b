// Names of the dump directory and files, in the layout the admin's distribution uses, and the
// rules that keep every name inside the target directory. Pure: the clock, the host address and
// the directory listing are arguments.
//   Fedora kdump.sh:      <path>/<HOST_IP>-<date +%Y-%m-%d-%T>/vmcore, vmcore-dmesg.txt, kexec-dmesg.log
//                         (ssh flattened: vmcore.flat; kdump_test_id=ID: <path>/kdump-test-ID/)
//   Debian kdump-config:  <KDUMP_COREDIR>/<date +%Y%m%d%H%M>/dump.<stamp>, dmesg.<stamp>
//                         (network targets: <KDUMP_COREDIR>/<ip or hostname>-<stamp>/;
//                         FTP: flat in FTP_COREDIR, <ip or hostname>-dump.<stamp>, -dmesg.<stamp>;
//                         KDUMP_COMPRESSION: the dump's names end in .gz, .bz2, .xz, .lz4, .zst)
import { LastwordError } from '../errors.ts';
import type { Layout, Naming } from '../config/plan.ts';

export interface DumpNames {
  /** Directory of this dump, absolute on the target ('/var/crash/127.0.0.1-2024-06-23-21:27:26'). */
  dir: string;
  /** Final name of the dump file, inside `dir`. */
  dump: string;
  /** Name while it is written; renamed to `dump` only when the writer finished. */
  dumpIncomplete: string;
  dmesg: string;
  dmesgIncomplete: string;
  /** lastword's own run log (the progress lines and the summary). */
  log: string;
}

export interface NamingInput {
  naming: Naming;
  /** Plan.path / KDUMP_COREDIR: absolute on the target. */
  path: string;
  /** When the capture started; local time, as `date` prints it in the capture kernel. */
  time: Date;
  /** nfs / ssh: the directory carries the host tag (Fedora always, with 127.0.0.1 for local targets). */
  network: boolean;
  /** The capture host's address on the dump network (Fedora HOST_IP, Debian HOSTTAG=ip). */
  hostIp?: string;
  hostname?: string;
  /** The dump is a flattened stream kept as such (ssh `dd`): Fedora names it vmcore.flat. */
  flattened: boolean;
  /** Debian FTP=: no directory of its own, the host tag prefixes each file name. */
  ftp?: boolean;
  /** Debian KDUMP_COMPRESSION: the compressor's extension ('.gz'), on the dump's names only. */
  extension?: string;
}

const two = (n: number): string => String(n).padStart(2, '0');

/** `date +%Y-%m-%d-%T` */
export function fedoraStamp(t: Date): string {
  return `${t.getFullYear()}-${two(t.getMonth() + 1)}-${two(t.getDate())}-${two(t.getHours())}:${two(t.getMinutes())}:${two(t.getSeconds())}`;
}

/** `date +%Y%m%d%H%M` */
export function debianStamp(t: Date): string {
  return `${t.getFullYear()}${two(t.getMonth() + 1)}${two(t.getDate())}${two(t.getHours())}${two(t.getMinutes())}`;
}

/** One path component that cannot climb out of, or around, the directory it is joined to. */
export function checkComponent(name: string, what: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0') || Buffer.byteLength(name) > 255
    || /[\x00-\x1f\x7f]/.test(name)) {
    throw new LastwordError('ETARGET_NAME', `${what} '${name.replace(/[\x00-\x1f\x7f]/g, '?')}' is not a safe file name`);
  }
  return name;
}

/**
 * An absolute directory on the target, normalised: '/var//crash/' -> '/var/crash'. Relative paths
 * are taken from the target's root, as kdump-utils does for `path`. `..` is refused outright rather
 * than resolved, so no config value can point outside what the admin meant.
 */
export function targetDir(p: string, what = 'path'): string {
  if (p.includes('\0')) throw new LastwordError('ETARGET_NAME', `${what} contains a NUL byte`);
  const parts = p.split('/').filter((c) => c !== '' && c !== '.');
  for (const c of parts) {
    if (c === '..') throw new LastwordError('ETARGET_NAME', `${what} '${p}' contains '..'`);
    checkComponent(c, what);
  }
  return '/' + parts.join('/');
}

/** `dir` + `name` where `name` is one safe component. */
export function joinInside(dir: string, name: string): string {
  checkComponent(name, 'file name');
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** Where a target-absolute path lives on this machine, under the target's mount point. */
export function underRoot(root: string, targetPath: string): string {
  const rel = targetDir(targetPath);
  const base = root.replace(/\/+$/, '');
  return rel === '/' ? (base || '/') : base + rel;
}

export function dumpNames(input: NamingInput): DumpNames {
  const base = targetDir(input.path);
  const { naming } = input;
  const tag = (): string => {
    const t = naming.hostTag === 'hostname' ? input.hostname : input.hostIp;
    // Fedora: local targets keep HOST_IP=127.0.0.1; Debian falls back to the hostname.
    return t && t !== '' ? t : naming.layout === 'fedora' ? '127.0.0.1' : (input.hostname ?? 'localhost');
  };
  if (naming.layout === 'fedora') {
    const leaf = naming.testId !== undefined ? `kdump-test-${naming.testId}` : `${tag()}-${fedoraStamp(input.time)}`;
    const dir = joinInside(base, checkComponent(leaf, 'dump directory'));
    return {
      dir,
      dump: input.flattened ? 'vmcore.flat' : 'vmcore',
      dumpIncomplete: 'vmcore-incomplete',
      dmesg: 'vmcore-dmesg.txt',
      dmesgIncomplete: 'vmcore-dmesg-incomplete.txt',
      log: 'kexec-dmesg.log',
    };
  }
  const stamp = debianStamp(input.time);
  const ext = input.extension ?? '';
  if (input.ftp) {
    // kdump_save_core_to_ftp: define_stampdir "" FTP_COREDIR gives "<dir>/<tag>-", then dump.<stamp>.
    const t = checkComponent(tag(), 'host tag');
    return {
      dir: base,
      dump: `${t}-dump.${stamp}${ext}`,
      dumpIncomplete: `${t}-dump-incomplete.${stamp}${ext}`,
      dmesg: `${t}-dmesg.${stamp}`,
      dmesgIncomplete: `${t}-dmesg-incomplete.${stamp}`,
      log: `${t}-lastword.${stamp}.log`,
    };
  }
  const leaf = input.network ? `${tag()}-${stamp}` : stamp;
  const dir = joinInside(base, checkComponent(leaf, 'dump directory'));
  return {
    dir,
    dump: `dump.${stamp}${ext}`,
    dumpIncomplete: `dump-incomplete${ext}`,
    dmesg: `dmesg.${stamp}`,
    dmesgIncomplete: 'dmesg-incomplete',
    log: `lastword.${stamp}.log`,
  };
}

/**
 * KDUMP_NUM_DUMPS: the dump directories to delete so that `keep` remain, oldest first. Only the
 * directories kdump-config itself makes (a 12-digit stamp) are candidates; anything else the admin
 * keeps in the directory is never touched. 0 keeps all.
 */
export function dumpsToRemove(layout: Layout, entries: readonly string[], keep: number): string[] {
  if (layout !== 'debian' || keep <= 0) return [];
  const dumps = entries.filter((e) => /^\d{12}$/.test(e)).sort();
  return dumps.slice(0, Math.max(0, dumps.length - keep));
}
