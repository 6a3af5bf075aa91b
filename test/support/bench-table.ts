// The bench's arithmetic and its tables: medians of repeated runs, throughput over the vmcore's
// size, and every figure as a ratio to the reference tool's (makedumpfile, OpenSSH). Pure, so
// test/bench/table.test.ts checks it on fixed inputs.

/** One run of one tool. */
export interface Measurement {
  wallS: number;
  /** Peak resident set of the process (and its waited-for children), KiB, as wait4 reports it. */
  maxRssKib: number;
  /** Bytes of the output file. */
  outBytes: number;
  /** User + system CPU seconds of the process and its waited-for children (GNU time %U + %S). */
  cpuS?: number;
}

/** Every run of one tool on one case; `error` when a run failed (the row then shows why). */
export interface ToolRuns {
  tool: string;
  runs: Measurement[];
  error?: string;
  note?: string;
}

export interface RowSummary {
  tool: string;
  runs: number;
  wallS: number;
  /** MB (10^6 bytes) of vmcore per second. */
  mbps: number;
  outBytes: number;
  maxRssKib: number;
  /** Median CPU seconds (user + system): less at the mercy of other load than wall time. */
  cpuS: number;
  /** lastword / reference; undefined without a reference row or for the reference itself. */
  mbpsRatio?: number;
  outRatio?: number;
  rssRatio?: number;
  error?: string;
  note?: string;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Medians of a tool's runs; ratios against `reference` when given and usable. */
export function summarize(t: ToolRuns, inputBytes: number, reference?: RowSummary): RowSummary {
  const ok = t.runs.length > 0 && !t.error;
  const wallS = ok ? median(t.runs.map((r) => r.wallS)) : NaN;
  const row: RowSummary = {
    tool: t.tool,
    runs: t.runs.length,
    wallS,
    mbps: ok && wallS > 0 ? inputBytes / 1e6 / wallS : NaN,
    outBytes: ok ? median(t.runs.map((r) => r.outBytes)) : NaN,
    maxRssKib: ok ? median(t.runs.map((r) => r.maxRssKib)) : NaN,
    cpuS: ok && t.runs.every((r) => r.cpuS !== undefined) ? median(t.runs.map((r) => r.cpuS!)) : NaN,
  };
  if (t.error) row.error = t.error;
  if (t.note) row.note = t.note;
  if (reference && ok && !reference.error && reference !== row) {
    row.mbpsRatio = row.mbps / reference.mbps;
    row.outRatio = row.outBytes / reference.outBytes;
    row.rssRatio = row.maxRssKib / reference.maxRssKib;
  }
  return row;
}

/** A case: the reference tool first (may be absent, e.g. makedumpfile without zstd), then the others. */
export function summarizeCase(inputBytes: number, reference: ToolRuns | undefined, others: readonly ToolRuns[]): RowSummary[] {
  const rows: RowSummary[] = [];
  const ref = reference ? summarize(reference, inputBytes) : undefined;
  if (ref) rows.push(ref);
  for (const t of others) rows.push(summarize(t, inputBytes, ref));
  return rows;
}

const fixed = (x: number, digits: number): string => (Number.isFinite(x) ? x.toFixed(digits) : '–');
const ratio = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '' : `${x.toFixed(2)}x`);
const bytes = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');

/** A markdown table of one case. */
export function formatCase(title: string, rows: readonly RowSummary[]): string {
  const lines = [
    `#### ${title}`,
    '',
    '| tool | runs | wall s | MB/s | x | output bytes | x | peak RSS MiB | x | CPU s |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r0 of rows) {
    const r = { ...r0, tool: r0.tool.replace(/\|/g, '\\|') };
    if (r.error) {
      lines.push(`| ${r.tool} | ${r.runs} | failed: ${r.error.replace(/\|/g, '/')} | | | | | | | |`);
      continue;
    }
    lines.push(`| ${r.tool} | ${r.runs} | ${fixed(r.wallS, 2)} | ${fixed(r.mbps, 0)} | ${ratio(r.mbpsRatio)} | ` +
      `${bytes(r.outBytes)} | ${ratio(r.outRatio)} | ${fixed(r.maxRssKib / 1024, 1)} | ${ratio(r.rssRatio)} | ${fixed(r.cpuS, 2)} |`);
  }
  for (const r of rows) if (r.note) lines.push('', `${r.tool}: ${r.note}`);
  return lines.join('\n');
}

export interface Goal {
  name: string;
  /** The ratio the goal is about; undefined when the bench could not measure it. */
  value: number | undefined;
  limit: number;
  atMost: boolean;
  /** What the rounded ratio hides, e.g. the byte difference behind a 1.00x. */
  detail?: string;
}

/** "met" / "NOT met" / "not measured", with the measured ratio. */
export function formatGoals(goals: readonly Goal[]): string {
  const lines = ['| goal | measured | verdict |', '|---|---:|---|'];
  for (const g of goals) {
    const measured = g.value !== undefined && Number.isFinite(g.value);
    const met = measured && (g.atMost ? g.value! <= g.limit : g.value! >= g.limit);
    lines.push(`| ${g.name} (${g.atMost ? '≤' : '≥'} ${g.limit.toFixed(2)}x) | ${measured ? `${g.value!.toFixed(2)}x` : '–'}${g.detail ? ` (${g.detail})` : ''} | ` +
      `${!measured ? 'not measured' : met ? 'met' : 'NOT met'} |`);
  }
  return lines.join('\n');
}
