// Which lastword executable the image builder ships: this one, when it runs as the single
// executable; under `node runtime/main.ts` (development), the built dist/lastword.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isSea } from 'node:sea';
import { LastwordError } from '../errors.ts';

export function defaultExecutable(): string {
  if (isSea()) return process.execPath;
  // process.argv[1] is runtime/main.ts in development; dist/ is beside runtime/.
  const dev = path.resolve(path.dirname(process.argv[1] ?? '.'), '..', 'dist', 'lastword');
  if (fs.existsSync(dev)) return dev;
  throw new LastwordError('EIMAGE_EXECUTABLE', `not running as the lastword executable and ${dev} is not built: give --executable FILE (npm run build makes dist/lastword)`, { action: 'usage' });
}
