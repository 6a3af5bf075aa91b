// The one error family of lastword. Every error has a stable code, a one-line message that
// names what and where (file / line / offset / pfn), and the action the runtime takes.

/** What the runtime does when this error reaches the capture: see runtime/pid1. */
export type ErrorAction =
  | 'fail'         // run the configured failure action
  | 'fallback'     // degrade (e.g. filter -> save every page) and go on
  | 'warn'         // log and go on
  | 'usage';       // bad command line: exit code 2 (CLI only)

export interface ErrorWhere {
  file?: string;
  line?: number;
  offset?: number | bigint;
  pfn?: number | bigint;
}

export class LastwordError extends Error {
  readonly code: string;
  readonly action: ErrorAction;
  readonly where: ErrorWhere;

  constructor(code: string, message: string, opts: { action?: ErrorAction; where?: ErrorWhere; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'LastwordError';
    this.code = code;
    this.action = opts.action ?? 'fail';
    this.where = opts.where ?? {};
  }

  /** `CODE: message` on one line, with the location appended when it is not already in the text. */
  oneLine(): string {
    const w = this.where;
    const parts: string[] = [];
    if (w.file !== undefined && !this.message.includes(w.file)) parts.push(w.line !== undefined ? `${w.file}:${w.line}` : w.file);
    if (w.offset !== undefined && !/offset/.test(this.message)) parts.push(`offset 0x${w.offset.toString(16)}`);
    if (w.pfn !== undefined && !/pfn/.test(this.message)) parts.push(`pfn 0x${w.pfn.toString(16)}`);
    const at = parts.length ? ` (${parts.join(', ')})` : '';
    return `${this.code}: ${this.message.replace(/\s*\n\s*/g, ' ')}${at}`;
  }
}

/** Usage errors: the CLI prints them and exits with 2. */
export function usageError(message: string): LastwordError {
  return new LastwordError('EUSAGE', message, { action: 'usage' });
}

/** Any thrown value as one line, for logs and the console. */
export function describeError(err: unknown): string {
  if (err instanceof LastwordError) return err.oneLine();
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    const message = err.message.replace(/\s*\n\s*/g, ' ');
    // errno errors of the native addon already start with their code ("ENODEV: No such device")
    return code && !message.startsWith(code) ? `${code}: ${message}` : message;
  }
  return String(err);
}
