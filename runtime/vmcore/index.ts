// The vmcore stage: open an ELF vmcore, parse its VMCOREINFO, translate x86_64 kernel addresses.
export { openVmcore, dedupeLoads, START_KERNEL_MAP } from './reader.ts';
export { parseVmcoreinfo, requireKey } from './vmcoreinfo.ts';
export { X86_64Memory, derivePageOffset } from './x86_64.ts';
export { readUtsname, physBase, crashTime, nrCpus, UTSNAME_SIZE, UTSNAME_FIELD } from './header-info.ts';
export type { Utsname } from './header-info.ts';
export type { LoadSegment, Vmcore, Vmcoreinfo } from './types.ts';
