// Reads of /proc/vmcore through mappings of it on the main thread (the system addon's window,
// runtime/system/native/vmcore-window.h): a read() of /proc/vmcore is copied out of the crashed
// kernel's memory page by page, a mapping maps a 4 MiB window at once, as makedumpfile reads it.
// The compression threads map their own windows (codecs addon, mapReads).
import * as fs from 'node:fs';
import { loadNative } from './native-loader.ts';

interface MappedReadAddon {
  readMapped(fd: number, buf: Buffer, offset: number): number;
  unmapVmcore(): number;
}

/** statfs(2) f_type of procfs (linux/magic.h). */
export const PROC_SUPER_MAGIC = 0x9fa0;

/** Whether `file` is on procfs (/proc/vmcore): its reads are page-by-page copies, mapping it is faster. */
export function onProcfs(file: string): boolean {
  try {
    return fs.statfsSync(file).type === PROC_SUPER_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Fills `buf` from `offset` of `fd` through the main thread's window. Returns 0, -1 when the range
 * reaches past the end of the file, the errno of a failed mmap (read with pread instead), or minus
 * the errno of a load from the mapping that faulted (SIGBUS caught: -5 EIO, -133 EHWPOISON, a
 * memory error of the crashed kernel's page), which must not be read again with pread: the
 * kernel's own copy of a poisoned page is a machine check in the kernel.
 */
export function readMapped(fd: number, buf: Buffer, offset: number): number {
  return loadNative<MappedReadAddon>('system').readMapped(fd, buf, offset);
}

/** Drops the window (the vmcore is being closed); returns the windows mapped since the last call. */
export function unmapVmcore(): number {
  return loadNative<MappedReadAddon>('system').unmapVmcore();
}

/** errno 133 (Linux): a memory page with a hardware error; libuv and so os.constants.errno do not name it. */
export const EHWPOISON = 133;

/** The error a faulted mapped read (readMapped < -1) stands for, as a failed read(2) would throw it. */
export function mappedReadFault(file: string, offset: number, length: number, errno: number): NodeJS.ErrnoException {
  const code = errno === EHWPOISON ? 'EHWPOISON' : 'EIO';
  const what = errno === EHWPOISON ? 'memory page with a hardware error' : 'i/o error';
  return Object.assign(new Error(`${code}: ${what}, reading ${length} bytes at offset 0x${offset.toString(16)} of ${file} through its mapping`), { code, errno: -errno, syscall: 'read' });
}
