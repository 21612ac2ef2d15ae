/**
 * The rows of `npm run bench`'s table and how to read them back: all.bench.ts prints them, the
 * smoke test (test/e2e/bench-smoke.e2e-spec.ts) checks that every one came out with a figure.
 * Kept free of heavy imports so that the test loads it without the benches.
 */

export const PIECES = ['ingest', 'burst', 'takeover', 'memory', 'capacity'] as const;
export type Piece = (typeof PIECES)[number];

/** Each row's measure starts with its label; details (N, L, the cap) follow in parentheses. */
export const ROWS: Record<Piece, readonly string[]> = {
  ingest: [
    'webhook answers per second, ours',
    'webhook answer p99, ours',
    'webhook answer median and share over 1 s, ours',
    'receiver CPU per webhook',
  ],
  burst: [
    'burst: first webhook to last reply, no cap',
    'burst: first webhook to last reply, LLM cap',
    'burst: median chat waited, LLM cap',
    'pipeline overhead, instant LLM: webhook to send p50 / p99',
    'burst with one round of clinic actions: first webhook to last reply, no cap',
  ],
  takeover: [
    'takeover after SIGKILL: kill to turn restarted, p50 / max',
    'takeover after SIGKILL: kill to reply, p50 / max',
  ],
  memory: [
    'Redis per chat with a full history',
    'Redis used_memory growth per chat with a full history',
    'worker RSS, active chats: after warm-up / after / peak',
    'receiver RSS, active chats: after warm-up / after / peak',
    'worker V8 heap used after GC, active chats: before / after',
  ],
  capacity: ['turns per second, one worker, instant LLM', 'worker CPU per turn'],
};

export interface Row {
  measure: string;
  figure: string;
  bar: string;
}

/** A Markdown table, padded so that it also reads as plain text. */
export function markdownTable(rows: readonly Row[]): string {
  const cells = [['measure', 'figure', 'bar'], ...rows.map((r) => [r.measure, r.figure, r.bar])];
  const widths = [0, 1, 2].map((i) => Math.max(...cells.map((c) => c[i].length)));
  const line = (c: string[]): string => `| ${c.map((cell, i) => cell.padEnd(widths[i])).join(' | ')} |`;
  return [line(cells[0]), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.slice(1).map(line)].join(
    '\n',
  );
}

/** The table's rows, read back from the output of all.bench.ts (the last table it printed). */
export function parseTable(output: string): Row[] {
  const lines = output.split('\n');
  const header = lines.map((l) => /^\| measure +\| figure +\| bar +\|$/.test(l.trim())).lastIndexOf(true);
  if (header < 0) return [];
  const rows: Row[] = [];
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith('|')) break;
    const [measure, figure, bar] = line
      .slice(1, -1)
      .split(' | ')
      .map((c) => c.trim());
    rows.push({ measure, figure, bar });
  }
  return rows;
}

/**
 * What is wrong with a printed table: a row of a piece that ran is missing, or its figure has no
 * number (a failed piece prints "failed: …"; a figure that could not be measured prints "-").
 */
export function tableProblems(rows: readonly Row[], pieces: readonly Piece[]): string[] {
  const problems: string[] = [];
  for (const piece of pieces) {
    for (const label of ROWS[piece]) {
      const row = rows.find((r) => r.measure === label || r.measure.startsWith(`${label} (`));
      if (!row) problems.push(`no row "${label}"`);
      else if (!/\d/.test(row.figure) || /NaN|Infinity|failed/.test(row.figure))
        problems.push(`"${label}": no figure (${row.figure})`);
    }
  }
  return problems;
}
