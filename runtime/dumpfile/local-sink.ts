// The dump file of `lastword filter` on this machine, opened as makedumpfile does (-f to replace);
// the sinks that write it are the targets' own (runtime/targets/target.ts).
import * as fs from 'node:fs';
import { LastwordError } from '../errors.ts';
import { targetError } from '../targets/target.ts';

/** Opens `file` for a new dump: refuses to replace an existing file unless `overwrite` (makedumpfile -f). */
export function openDumpFile(file: string, overwrite: boolean): number {
  try {
    const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | (overwrite ? fs.constants.O_TRUNC : fs.constants.O_EXCL);
    return fs.openSync(file, flags, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new LastwordError('EDUMP_EXISTS', `${file} already exists (use -f to overwrite)`, { where: { file }, action: 'usage' });
    }
    throw targetError(err, file);
  }
}
