// `lastword save`: not implemented yet (see the open issues).
import { LastwordError } from '../errors.ts';

export async function run(_argv: string[]): Promise<number> {
  throw new LastwordError('ENOTIMPL', 'lastword save is not implemented yet');
}
