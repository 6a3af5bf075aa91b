// The executable runs with --max-opt=1 (initramfs/executable/build.ts): JavaScript is compiled by
// V8's baseline compiler at most. The dump's hot loops are native (mem_map walk, compression), and
// Maglev's compile thread and code cost ~4 MiB of peak RSS (bench, -d 31: 57.7 -> 53.8 MiB) for no
// speed there. ssh2 is the exception: it frames, pads and MACs every 32 KiB packet in JavaScript,
// and SFTP ran ~10% slower without Maglev. So the SSH targets turn Maglev on before they connect;
// V8 reads these flags when it decides to optimize a function, so they work at run time.
import * as v8 from 'node:v8';

let done = false;

/** Lets V8 optimize hot JavaScript with Maglev from now on (idempotent). */
export function enableMaglev(): void {
  if (done) return;
  done = true;
  v8.setFlagsFromString('--maglev');
  v8.setFlagsFromString('--max-opt=2');
}
