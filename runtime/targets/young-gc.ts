// ssh2 copies every byte it sends into new buffers: the SFTP request, then one packet per 32 KiB,
// encrypted and handed to the socket. Each is garbage once written, but V8 frees an ArrayBuffer only
// when a GC finds its small JS object dead, and those objects are too small to fill the young
// generation quickly: between two collections ~60-100 MiB of sent packets piled up (bench: a 1 GiB
// vmcore through ssh2 peaked at 114-162 MiB RSS). In a capture kernel with crashkernel=256M that is
// the difference between a dump and the OOM killer. So the SSH sinks run a young-generation GC after
// every few MiB they hand to ssh2 (well under a millisecond each with the executable's 1 MiB semi-space).
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

type GcFunction = (options?: { type?: 'minor' | 'major' }) => void;

let exposed: GcFunction | null | undefined;

/** V8's gc(), exposed at run time (the flag only affects contexts made after it is set). */
export function v8Gc(): GcFunction | null {
  if (exposed === undefined) {
    try {
      v8.setFlagsFromString('--expose-gc');
      const fn: unknown = vm.runInNewContext('gc');
      exposed = typeof fn === 'function' ? (fn as GcFunction) : null;
    } catch {
      exposed = null;
    }
  }
  return exposed;
}

/** Bytes handed to ssh2 between two young-generation collections. */
export const YOUNG_GC_EVERY = 2 << 20;

/** Counts bytes sent and collects the young generation after every `every` of them. */
export class YoungGc {
  private since = 0;
  private readonly gc: GcFunction | null;
  private readonly every: number;

  constructor(every = YOUNG_GC_EVERY, gc: GcFunction | null = v8Gc()) {
    this.every = every;
    this.gc = gc;
  }

  sent(bytes: number): void {
    this.since += bytes;
    if (this.since < this.every) return;
    this.since = 0;
    this.gc?.({ type: 'minor' });
  }
}
