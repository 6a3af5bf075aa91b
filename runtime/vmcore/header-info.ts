// What a dump header says about the crashed kernel (kdump-compressed disk_dump_header and
// kdump_sub_header): utsname, phys_base, crash time, CPU count. Read the way makedumpfile does.
import { LastwordError } from '../errors.ts';
import type { Vmcore } from './types.ts';
import { requireKey } from './vmcoreinfo.ts';
import { X86_64Memory } from './x86_64.ts';

/** struct new_utsname: 6 x char[65] (include/uapi/linux/utsname.h). */
export const UTSNAME_FIELD = 65;
export const UTSNAME_SIZE = 6 * UTSNAME_FIELD;

export interface Utsname {
  sysname: string;
  nodename: string;
  release: string;
  version: string;
  machine: string;
  domainname: string;
  /** The 390 bytes as they are in memory, for writers that copy them verbatim. */
  raw: Buffer;
}

/** init_uts_ns.name from memory (SYMBOL(init_uts_ns) + OFFSET(uts_namespace.name)). */
export function readUtsname(vmcore: Vmcore, memory: X86_64Memory = new X86_64Memory(vmcore)): Utsname {
  const info = vmcore.vmcoreinfo;
  const ns = requireKey(info.symbol, 'SYMBOL', 'init_uts_ns', vmcore.file);
  // Kernels before 2.6.x's uts_namespace export the name at offset 0; makedumpfile does the same.
  const off = info.offset.get('uts_namespace.name') ?? 0;
  const raw = memory.readVirt(ns + BigInt(off), UTSNAME_SIZE);
  const field = (i: number) => {
    const b = raw.subarray(i * UTSNAME_FIELD, (i + 1) * UTSNAME_FIELD);
    const nul = b.indexOf(0);
    return b.toString('latin1', 0, nul < 0 ? b.length : nul);
  };
  const u = { sysname: field(0), nodename: field(1), release: field(2), version: field(3), machine: field(4), domainname: field(5), raw: Buffer.from(raw) };
  if (info.osrelease !== undefined && u.release !== info.osrelease) {
    throw new LastwordError('EVMCORE_UTSNAME', `${vmcore.file}: init_uts_ns release ${JSON.stringify(u.release)} does not match VMCOREINFO OSRELEASE ${info.osrelease}`, { where: { file: vmcore.file } });
  }
  return u;
}

/** NUMBER(phys_base) as the u64 the sub-header stores (0 when the kernel does not export it). */
export function physBase(vmcore: Vmcore): bigint {
  return BigInt.asUintN(64, vmcore.vmcoreinfo.number.get('phys_base') ?? 0n);
}

/** CRASHTIME (seconds since the epoch); undefined for dumps without it (e.g. QEMU snapshots). */
export function crashTime(vmcore: Vmcore): number | undefined {
  return vmcore.vmcoreinfo.crashTime;
}

/** CPUs online at the crash = number of NT_PRSTATUS notes (header nr_cpus). */
export function nrCpus(vmcore: Vmcore): number {
  return vmcore.nrCpus;
}
