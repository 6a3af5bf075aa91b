// One printk record as `makedumpfile --dump-dmesg` prints it (printk.c dump_record and
// makedumpfile.c dump_log_entry share this format), byte for byte.

export interface RecordFormat {
  /**
   * Print the "[    T123] " caller column when the kernel records it. makedumpfile >= 1.7.5 does
   * (Debian 13, Fedora); 1.7.2..1.7.4 (Debian 12) does not.
   */
  callerId: boolean;
}

// PID_CHARS_DEFAULT in makedumpfile.h
const PID_CHARS_DEFAULT = 8;
const CALLER_CPU = 0x80000000;

/** Appends the formatted record to `out` (an array of chunks). */
export function formatRecord(out: Buffer[], tsNsec: bigint, callerId: number | undefined, text: Buffer): void {
  const sec = tsNsec / 1_000_000_000n;
  const usec = (tsNsec % 1_000_000_000n) / 1000n;
  let prefix = `[${sec.toString().padStart(5)}.${usec.toString().padStart(6, '0')}] `;
  if (callerId !== undefined) {
    const cid = `${callerId & CALLER_CPU ? 'C' : 'T'}${(callerId & ~CALLER_CPU) >>> 0}`;
    prefix += `[${cid.padStart(PID_CHARS_DEFAULT)}] `;
  }
  const indent = '\n' + ' '.repeat(prefix.length);
  let s = prefix;
  for (const c of text) {
    if (c === 0x0a) s += indent;
    // C-locale isprint() || isspace(); the byte is a signed char, so >= 0x80 prints as \xffffffNN.
    else if ((c >= 0x20 && c <= 0x7e) || (c >= 0x09 && c <= 0x0d)) s += String.fromCharCode(c);
    else s += c >= 0x80 ? `\\x${((0xffffff00 | c) >>> 0).toString(16)}` : `\\x${c.toString(16).padStart(2, '0')}`;
  }
  s += '\n';
  out.push(Buffer.from(s, 'latin1'));
}
