// Footprint figures for the README: the smallest crashkernel= at which the full cycle still
// succeeds, and the time from the panic to the dump being saved, for
//   lastword      the capture initramfs of `lastword initramfs` (per --layout when given)
//   makedumpfile  the stand-in for a Debian makedumpfile capture initramfs: ../shared/lab's
//                 busybox + makedumpfile capture.cpio.gz (makedumpfile -F -l -d 31 onto a raw disk)
//   kdump-tools   Debian 12's stock kdump: a Debian root disk with kdump-tools, the capture
//                 initramfs its kernel hook builds with mkinitramfs, loaded with kdump-config's kexec
//                 line; the capture kernel boots that root with systemd, kdump-tools-dump.service runs
//                 kdump-config savecore (makedumpfile -F -c -d 31 to /var/crash/<stamp>/dump.<stamp>)
//                 and reboot -f, which ends QEMU (-no-reboot). See kdump-tools-guest.ts for how the
//                 root and the initramfs are made; it needs debootstrap and the Debian mirror.
//   kdump-tools-shim  the same Debian set-up with lastword installed as kdump-tools' makedumpfile
//                 fallback (hooks/kdump-tools/makedumpfile at /usr/bin/makedumpfile, dist/lastword at
//                 /usr/bin/lastword): --real present (default) keeps Debian's makedumpfile behind the
//                 shim, which runs it and relays its stream (both alive at once: every capture once
//                 lastword is installed); --real missing removes it, so lastword writes the whole dump.
// Method: one cycle per size, bisecting between a size that fails and one that succeeds to a 8 MiB
// step (each cycle is a real TCG boot, so a handful of runs). A cycle succeeds when the dump is
// complete and crash opens it.
//   node test/e2e/footprint.ts makedumpfile|lastword|kdump-tools|kdump-tools-shim [--real present|missing] [--layout plain|squashfs|erofs] [--lo 64] [--hi 256]
//   ... --image-compression xz   (lastword: the read-only image's compression, `lastword initramfs --image-compression`)
//   ... --image-on      (lastword: the read-only image on the dump disk, `lastword initramfs --image-on`)
//   ... --sizes 80,96   (just these sizes, no bisection)
//   ... --keep          (keep the work directories with each cycle's console.log)
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cacheDir, crashBinary, debugVmlinux, labDir, repo } from '../support/lab.ts';
import { extractExt4Tree } from '../support/qemu.ts';
import { debianCycleOptions, extractExt4Dir, kdumpToolsGuest, withLastwordShim, type RealMakedumpfile } from './kdump-tools-guest.ts';
import {
  bootCycle, CAPTURE_APPEND, captureConsole, classifyDumpFiles, crashReport, INIT_DIED, kver61, lastwordExe, prepareCycle, reassemble,
  type CycleOptions,
} from './cycle.ts';

const argv = process.argv.slice(2);
const flavours = ['lastword', 'makedumpfile', 'kdump-tools', 'kdump-tools-shim'] as const;
const flavour = flavours.find((f) => f === argv[0]);
if (!flavour) throw new Error(`usage: footprint.ts ${flavours.join('|')} [--layout L] [--lo MiB] [--hi MiB] [--sizes a,b]`);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const layout = opt('--layout');
const imageCompression = opt('--image-compression');
const imageOn = argv.includes('--image-on');
const keep = argv.includes('--keep');
const real = (opt('--real') ?? 'present') as RealMakedumpfile;
if (real !== 'present' && real !== 'missing') throw new Error(`--real present|missing, not ${real}`);
const debian = flavour === 'kdump-tools' || flavour === 'kdump-tools-shim';
let lo = Number(opt('--lo') ?? 48);   // assumed failing
let hi = Number(opt('--hi') ?? 256);  // assumed working, checked first
const kver = kver61();
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-footprint-'));

interface Outcome { ok: boolean; why: string; panicToDumpS?: number; bootToDumpS?: number; captureBytes: number }

function standinCapture(): string {
  const out = path.join(cacheDir, 'e2e', 'standin');
  const file = path.join(out, 'capture.cpio.gz');
  if (!fs.existsSync(file)) execFileSync(path.join(labDir, 'make-initrd.sh'), [out], { env: { ...process.env, KVER: kver }, stdio: 'ignore' });
  return file;
}

let shimRoot: string | undefined;
function kdumpToolsOptions(mib: number): CycleOptions {
  const g = kdumpToolsGuest(kver);
  if (flavour === 'kdump-tools-shim') {
    shimRoot ??= withLastwordShim(g, lastwordExe, path.join(repo, 'hooks', 'kdump-tools', 'makedumpfile'), real, path.join(base, 'root-shim.img'));
  }
  return debianCycleOptions(g, kver, { name: `${flavour === 'kdump-tools' ? 'kt' : `kts-${real}`}-${mib}`, baseDir: base, crashkernel: `${mib}M`, rootImage: shimRoot });
}

async function cycle(mib: number): Promise<Outcome> {
  const o: CycleOptions = debian ? kdumpToolsOptions(mib) : flavour === 'lastword'
    ? {
      name: `lw-${mib}`, baseDir: base, crashkernel: `${mib}M`,
      kdumpConf: 'ext4 LABEL=LWFOOT\npath /var/crash\ncore_collector makedumpfile -l --message-level 7 -d 31\nfinal_action poweroff\nfailure_action poweroff\n',
      sysconfig: `KDUMP_COMMANDLINE_APPEND="${CAPTURE_APPEND}"\n`,
      initramfsArgs: [...(layout ? ['--layout', layout] : []), ...(imageCompression ? ['--image-compression', imageCompression] : [])],
      disks: [{ name: 'dump', sizeMiB: 1024, ext4Label: 'LWFOOT' }],
      imageOnDisk: imageOn ? 'dump' : undefined,
    }
    : {
      name: `mdf-${mib}`, baseDir: base, crashkernel: `${mib}M`, kdumpConf: '', loader: 'kexec', captureInitrd: standinCapture(),
      kexecAppend: `console=ttyS0 ${CAPTURE_APPEND} lab.capture=makedumpfile lab.mdfargs=-l:-d:31 lab.dumpdev=/dev/vda`,
      disks: [{ name: 'dump', sizeMiB: 1024 }],
    };
  const p = prepareCycle(o);
  const captureBytes = fs.statSync(p.captureInitrd).size;
  const g = bootCycle(o, p);
  const t0 = Date.now();
  let tCrash = 0;
  try {
    const m = await g.waitFor(/E2E: CRASHING|E2E: LOAD FAILED.*/, 240_000).catch(() => undefined);
    if (!m) return { ok: false, why: `primary kernel failed before the panic: ${g.console.split('\n').filter((l) => /Kernel panic|Out of memory|LOAD/.test(l)).slice(0, 2).join(' | ')}`, captureBytes };
    if (/LOAD FAILED/.test(m[0])) return { ok: false, why: `load failed: ${g.console.split('\n').filter((l) => /kexec|Could not|LOAD/.test(l)).slice(-3).join(' | ')}`, captureBytes };
    tCrash = Date.now();
    // a systemd boot under TCG can be silent for a while (fsck, udev settle)
    if (!(await g.waitExitOrIdle(debian ? 240_000 : 120_000, 900_000))) return { ok: false, why: `the guest did not stop (silent console): ${g.tail(2).replace(/\n/g, " | ")}`, captureBytes };
  } finally {
    g.kill();
  }
  const tEnd = Date.now();
  const cap = captureConsole(g.console);
  const panicLine = cap.split('\n').find((l) => INIT_DIED.test(l));
  if (panicLine) return { ok: false, why: `capture kernel: ${panicLine.replace(/^\[[^\]]*\]\s*/, '').trim()}`, captureBytes };
  if (/Out of memory|oom-kill|Kernel panic/.test(cap)) return { ok: false, why: (cap.match(/.*(Out of memory|oom-kill|Kernel panic).*/)?.[0] ?? '').trim(), captureBytes };
  let dump: string | undefined;
  if (flavour === 'makedumpfile') {
    if (!/VMCORE_COPIED/.test(cap)) return { ok: false, why: 'no VMCORE_COPIED: ' + g.tail(3).replace(/\n/g, ' | '), captureBytes };
    dump = reassemble(p.disks.dump!, path.join(p.dir, 'vmcore.kdump'));
  } else if (debian) {
    const files = extractExt4Dir(p.disks.root!, '/var/crash', path.join(p.dir, 'tree'));
    const found = classifyDumpFiles(files);
    if (!found.vmcore || found.incomplete) return { ok: false, why: `no finished dump.<stamp> in /var/crash (${files.map((f) => path.basename(f)).join(', ') || 'empty'}): ${g.tail(3).replace(/\n/g, ' | ')}`, captureBytes };
    dump = reassemble(found.vmcore, path.join(p.dir, 'vmcore.kdump'));
  } else {
    const files = extractExt4Tree(p.disks.dump!, path.join(p.dir, 'tree'));
    dump = classifyDumpFiles(files).vmcore;
    if (!dump) return { ok: false, why: 'no finished vmcore: ' + g.tail(3).replace(/\n/g, ' | '), captureBytes };
  }
  const report = crashReport(crashBinary(), debugVmlinux(kver), dump);
  if (!keep) fs.rmSync(p.dir, { recursive: true, force: true });
  if (!report.ok) return { ok: false, why: 'crash cannot open the dump', captureBytes };
  return { ok: true, why: 'ok', panicToDumpS: (tEnd - tCrash) / 1000, bootToDumpS: (tEnd - t0) / 1000, captureBytes };
}

const results: Array<[number, Outcome]> = [];
async function tryOne(mib: number): Promise<boolean> {
  // a dump that cannot be read back (reassemble) fails this size, not the whole bisection
  const r = await cycle(mib).catch((e: Error): Outcome => ({ ok: false, why: e.message, captureBytes: 0 }));
  results.push([mib, r]);
  process.stdout.write(`${flavour}${layout ? '/' + layout : ''}${imageCompression ? '/' + imageCompression : ''}${imageOn ? '/image-on' : ''} crashkernel=${mib}M: ${r.ok ? 'OK' : 'FAIL'} ${r.ok ? `panic->dump ${r.panicToDumpS!.toFixed(1)} s, qemu start->dump ${r.bootToDumpS!.toFixed(1)} s` : r.why} (capture initramfs ${r.captureBytes} B)\n`);
  return r.ok;
}

const sizes = opt('--sizes');
try {
  if (sizes) {
    for (const s of sizes.split(',')) await tryOne(Number(s));
  } else if (!(await tryOne(hi))) {
    process.stdout.write(`the cycle fails even at ${hi}M\n`);
    process.exitCode = 1;
  } else {
    while (hi - lo > 8) {
      const mid = Math.round((lo + hi) / 2 / 8) * 8;
      if (mid <= lo || mid >= hi) break;
      if (await tryOne(mid)) hi = mid;
      else lo = mid;
    }
    const failed = results.some(([m, r]) => m === lo && !r.ok);
    process.stdout.write(`smallest crashkernel= that works: ${hi}M (${failed ? `fails at ${lo}M` : `${lo}M assumed failing, not tried`})\n`);
  }
} finally {
  if (keep) process.stdout.write(`work directories kept in ${base}\n`);
  else fs.rmSync(base, { recursive: true, force: true });
}
