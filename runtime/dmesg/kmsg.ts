// The capture kernel's own log, for the run log next to the dump: Fedora's kdump.sh saves
// `dmesg -T` of the capture kernel there as kexec-dmesg.log, which is where an admin looks when a
// capture went wrong (a driver that did not bind, a disk that timed out). Read from /dev/kmsg
// without blocking: one record per read(2), "<prio>,<seq>,<usec>,<flags>[,...];<text>\n" followed
// by " KEY=value" dictionary lines (Documentation/ABI/testing/dev-kmsg).
import * as fs from 'node:fs';

/** One /dev/kmsg record as `dmesg` prints it, `[seconds.micros] text`; undefined for what is not a record. Pure. */
export function formatKmsgRecord(record: string): string | undefined {
  const semi = record.indexOf(';');
  if (semi < 0) return undefined;
  const fields = record.slice(0, semi).split(',');
  const usec = Number(fields[2]);
  if (fields.length < 3 || !Number.isFinite(usec)) return undefined;
  // The text ends at the first newline; the lines after it are the record's dictionary.
  const text = record.slice(semi + 1).split('\n')[0]!
    .replace(/\\x([0-9a-f]{2})/gi, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
  const s = Math.floor(usec / 1e6);
  const us = String(usec % 1e6).padStart(6, '0');
  return `[${String(s).padStart(5, ' ')}.${us}] ${text}`;
}

/**
 * Every record still in the kernel's buffer, oldest first, as text; undefined when /dev/kmsg
 * cannot be read. Never blocks: EAGAIN is the end; EPIPE (records overwritten while reading)
 * only skips ahead.
 */
export function readKernelLog(device = '/dev/kmsg', maxBytes = 4 << 20): string | undefined {
  let fd: number;
  try {
    fd = fs.openSync(device, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  const lines: string[] = [];
  let bytes = 0;
  const buf = Buffer.alloc(16 << 10);
  try {
    while (bytes < maxBytes) {
      let n: number;
      try {
        n = fs.readSync(fd, buf, 0, buf.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') continue;
        break; // EAGAIN: no more records
      }
      if (n <= 0) break;
      const line = formatKmsgRecord(buf.toString('utf8', 0, n));
      if (line !== undefined) {
        lines.push(line);
        bytes += line.length + 1;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return lines.length ? lines.join('\n') + '\n' : undefined;
}
