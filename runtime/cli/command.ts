// The shape of one subcommand. main.ts only dispatches; each subcommand in runtime/cli/ wires the
// stages it needs and parses its own options.
export interface Command {
  /** Exit code: 0 ok, 1 failure, 2 usage. */
  run(argv: string[]): Promise<number>;
}

export interface CommandEntry {
  summary: string;
  load: () => Promise<Command>;
}
