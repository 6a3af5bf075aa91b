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
 * reaches past the end of the file, or the errno of a failed mmap (read with pread instead).
 */
export function readMapped(fd: number, buf: Buffer, offset: number): number {
  return loadNative<MappedReadAddon>('system').readMapped(fd, buf, offset);
}

/** Drops the window (the vmcore is being closed); returns the windows mapped since the last call. */
export function unmapVmcore(): number {
  return loadNative<MappedReadAddon>('system').unmapVmcore();
}
