// Lines for the console (stderr) written straight to fd 2. Node's process.stderr is built on first
// use (a tty.WriteStream or a net.Socket for a pipe), and loading that machinery cost ~2 MiB of peak
// RSS in `lastword filter` (bench, -d 31: 53.2 vs 51.3 MiB), memory a small crashkernel= lacks.
// A log line that cannot be written is dropped: there is nowhere to report it, and the dump goes on.
import * as fs from 'node:fs';

/** Set once fd 2 refused a write for want of room: from then on everything queues in order. */
let viaStream = false;

export function writeStderr(text: string): void {
  const buf = Buffer.from(text);
  if (viaStream) {
    process.stderr.write(buf);
    return;
  }
  let off = 0;
  try {
    while (off < buf.length) off += fs.writeSync(2, buf, off);
  } catch (err) {
    // fd 2 is a non-blocking pipe (libuv made it one when something used process.stderr) and its
    // reader is behind: process.stderr queues the rest, and all later lines behind it.
    if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
      viaStream = true;
      process.stderr.write(buf.subarray(off));
    }
  }
}
