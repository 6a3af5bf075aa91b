// POSIX shell syntax, the small part kdump configs use: /etc/default/kdump-tools and
// /etc/sysconfig/kdump are *sourced* by their shell scripts, and core_collector / dracut_args /
// MAKEDUMP_ARGS are split into words by the shell. We parse that syntax and never evaluate it:
// quotes, backslashes, `$VAR` / `${VAR}` from earlier assignments, comments and line continuations
// are understood; command substitution and anything else that would need a shell is an error
// naming the line, so a config never runs code inside the capture kernel.
import { LastwordError } from '../errors.ts';

export interface ShellAssignment {
  name: string;
  value: string;
  line: number;
}

export interface ShellFileResult {
  assignments: ShellAssignment[];
  /** Lines that are shell but not assignments (if, functions, commands): ignored, reported. */
  ignored: { line: number; text: string }[];
}

class Cursor {
  pos = 0;
  line = 1;
  readonly text: string;
  readonly file: string;
  constructor(text: string, file: string) {
    this.text = text;
    this.file = file;
  }
  peek(off = 0): string {
    return this.text[this.pos + off] ?? '';
  }
  next(): string {
    const c = this.text[this.pos++] ?? '';
    if (c === '\n') this.line++;
    return c;
  }
  eof(): boolean {
    return this.pos >= this.text.length;
  }
  fail(what: string, line = this.line): never {
    throw new LastwordError('ECONFIG_SYNTAX', `${this.file}:${line}: ${what}`, { where: { file: this.file, line } });
  }
}

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;

/** Reads `$NAME`, `${NAME}`, `${NAME:-default}`-free forms; `$(` and `$((` are refused. */
function readExpansion(c: Cursor, vars: ReadonlyMap<string, string>): string {
  c.next(); // $
  const ch = c.peek();
  if (ch === '(') c.fail('command substitution $(...) is not supported in a kdump config');
  if (ch === '{') {
    c.next();
    let name = '';
    while (!c.eof() && c.peek() !== '}') name += c.next();
    if (c.eof()) c.fail('unterminated ${');
    c.next();
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) c.fail(`unsupported parameter expansion \${${name}}`);
    return vars.get(name) ?? '';
  }
  if (NAME_START.test(ch)) {
    let name = '';
    while (NAME_CHAR.test(c.peek())) name += c.next();
    return vars.get(name) ?? '';
  }
  return '$';
}

/**
 * Reads one shell word starting at the cursor (which must not be at a blank), stopping at an
 * unquoted blank, newline, `;` or `#`-after-blank. Returns undefined at a word boundary.
 */
function readWord(c: Cursor, vars: ReadonlyMap<string, string>): string {
  let out = '';
  const startLine = c.line;
  while (!c.eof()) {
    const ch = c.peek();
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === ';') break;
    if (ch === '&' || ch === '|' || ch === '<' || ch === '>' || ch === '(' || ch === ')') {
      c.fail(`shell operator '${ch}' is not supported in a kdump config`);
    }
    if (ch === '`') c.fail('command substitution `...` is not supported in a kdump config');
    if (ch === "'") {
      c.next();
      while (!c.eof() && c.peek() !== "'") out += c.next();
      if (c.eof()) c.fail("unterminated single quote", startLine);
      c.next();
      continue;
    }
    if (ch === '"') {
      c.next();
      while (!c.eof() && c.peek() !== '"') {
        const d = c.peek();
        if (d === '\\') {
          c.next();
          const e = c.next();
          if (e === '\n') continue;
          out += '$`"\\'.includes(e) ? e : '\\' + e;
        } else if (d === '$') {
          out += readExpansion(c, vars);
        } else if (d === '`') {
          c.fail('command substitution `...` is not supported in a kdump config');
        } else {
          out += c.next();
        }
      }
      if (c.eof()) c.fail('unterminated double quote', startLine);
      c.next();
      continue;
    }
    if (ch === '\\') {
      c.next();
      const e = c.next();
      if (e !== '\n') out += e;
      continue;
    }
    if (ch === '$') {
      out += readExpansion(c, vars);
      continue;
    }
    out += c.next();
  }
  return out;
}

function skipBlanks(c: Cursor): void {
  for (;;) {
    const ch = c.peek();
    if (ch === ' ' || ch === '\t') c.next();
    else if (ch === '\\' && c.peek(1) === '\n') { c.next(); c.next(); }
    else return;
  }
}

function skipComment(c: Cursor): void {
  while (!c.eof() && c.peek() !== '\n') c.next();
}

/** Splits a command line into words like the shell does (no expansion of variables). */
export function splitShellWords(text: string, file = '<words>', line = 1): string[] {
  const c = new Cursor(text, file);
  c.line = line;
  const words: string[] = [];
  for (;;) {
    skipBlanks(c);
    if (c.eof()) return words;
    const ch = c.peek();
    if (ch === '\n') { c.next(); continue; }
    if (ch === '#') { skipComment(c); continue; }
    if (ch === ';') c.fail("shell operator ';' is not supported here");
    words.push(readWord(c, new Map()));
  }
}

/**
 * Parses a sourced shell config into its variable assignments, in order, expanding `$VAR` from the
 * assignments before it (and `env`, e.g. nothing in the capture kernel). `export A=B` and
 * `A=B C=D` count; other commands are reported in `ignored`.
 */
export function parseShellAssignments(text: string, file: string, env: ReadonlyMap<string, string> = new Map()): ShellFileResult {
  const c = new Cursor(text, file);
  const vars = new Map(env);
  const assignments: ShellAssignment[] = [];
  const ignored: { line: number; text: string }[] = [];
  while (!c.eof()) {
    skipBlanks(c);
    const ch = c.peek();
    if (ch === '\n' || ch === ';') { c.next(); continue; }
    if (ch === '#') { skipComment(c); continue; }
    if (c.eof()) break;
    const line = c.line;
    const statementStart = c.pos;
    let sawCommand = false;
    // One simple command: leading NAME=value words, optionally after `export`/`readonly`.
    while (!c.eof() && c.peek() !== '\n' && c.peek() !== ';') {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)=/.exec(c.text.slice(c.pos, c.pos + 256));
      if (m && !sawCommand) {
        for (let i = 0; i < m[0].length; i++) c.next();
        const value = c.peek() === ' ' || c.peek() === '\t' || c.peek() === '\n' || c.eof() ? '' : readWord(c, vars);
        vars.set(m[1]!, value);
        assignments.push({ name: m[1]!, value, line });
      } else if (!sawCommand && /^(export|readonly)[ \t]/.test(c.text.slice(c.pos, c.pos + 9))) {
        while (/[a-z]/.test(c.peek())) c.next();
      } else {
        // Not an assignment: skip the rest of the line without interpreting it.
        sawCommand = true;
        skipComment(c);
        break;
      }
      skipBlanks(c);
      if (c.peek() === '#') skipComment(c);
    }
    if (sawCommand) ignored.push({ line, text: c.text.slice(statementStart, c.pos).trim() });
  }
  return { assignments, ignored };
}
