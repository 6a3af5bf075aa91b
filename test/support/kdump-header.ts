// Is a dump file a kdump-compressed file flagged DUMP_DH_COMPRESSED_INCOMPLETE? Read with the
// header layout runtime/dumpfile/kdump-layout.ts writes down once (and that the reader tests check
// against makedumpfile's own files). Anything that is not a kdump-compressed header is "not flagged".
import * as fs from 'node:fs';
import { decodeDiskDumpHeader, DISK_DUMP_HEADER_SIZE, DUMP_DH_COMPRESSED_INCOMPLETE } from '../../runtime/dumpfile/kdump-layout.ts';

export function flaggedIncomplete(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(DISK_DUMP_HEADER_SIZE);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    return (decodeDiskDumpHeader(buf.subarray(0, n), file).status & DUMP_DH_COMPRESSED_INCOMPLETE) !== 0;
  } catch {
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

/** The first 8 bytes of a dump as text: "KDUMP   " for kdump-compressed, "makedumpfile" starts a flattened one. */
export function signature(file: string): string {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(8);
    const n = fs.readSync(fd, head, 0, 8, 0);
    return head.subarray(0, n).toString('latin1');
  } finally {
    fs.closeSync(fd);
  }
}
