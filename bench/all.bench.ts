/**
 * `npm run bench`: every benchmark in turn — ingest, burst (with and without the LLM cap, and the
 * pipeline overhead), takeover, memory; capacity with BENCH_CAPACITY=1 — each printing its own
 * report, then ONE table: measure | figure | bar. The bars: our own "200 in under 100 ms" for the
 * webhook p99; Meta's for webhook answers (median ≤ 250 ms, < 1 % over 1 s); for a burst, the
 * synchronous design's N × L (each webhook held until its reply); for a takeover, the lease plus
 * one sweep.
 *
 * Knobs: BENCH_QUICK=1 (every piece short, for a smoke test: its figures mean little),
 * BENCH_ONLY=ingest,burst,… (a subset), BENCH_CAPACITY=1, BENCH_JSON=<file> (figures and rows as
 * JSON), and each piece's own (see bench/README.md). A piece that fails prints "failed: …" in its
 * rows, the others still run, and the exit code is 1.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { PIECES, type Piece, ROWS, type Row, markdownTable } from './all.table';
import { exitWhenDone, quickMode } from './bench-apps';
import { run as runBurst, burstOptions, type BurstFigures } from './burst.bench';
import { run as runCapacity, capacityOptions, type CapacityFigures } from './capacity.bench';
import { run as runIngest, ingestOptions, type IngestFigures } from './ingest.bench';
import { fmt } from './load.harness';
import { run as runMemory, memoryOptions, type MemoryFigures } from './memory.bench';
import { run as runTakeover, takeoverOptions, type TakeoverFigures } from './takeover.bench';

const OUR_P99_BAR_MS = 100;
const META_MEDIAN_BAR_MS = 250;
const META_SLOW_SHARE = 0.01;

const ms = (v: number): string => `${fmt(v, 0)} ms`;
const mib = (bytes: number): string => `${fmt(bytes / 1048576, 0)} MiB`;
const kib = (bytes: number): string => `${fmt(bytes / 1024, 1)} KiB`;
const count = (n: number): string => n.toLocaleString('en-US');

function ingestRows(f: IngestFigures): Row[] {
  const [rps, p99, meta, cpu] = ROWS.ingest;
  const rounds = `${f.options.connections} connections, ${f.options.rounds} × ${f.options.durationS} s`;
  return [
    {
      measure: `${rps} (${rounds})`,
      figure: `${fmt(f.ours.rps, 0)} (bare node:http ${fmt(f.bare.rps, 0)}, ratio ${fmt(f.ratio, 2)})`,
      bar: 'ours ≥ 0.75 × bare (our target)',
    },
    {
      measure: `${p99} (${rounds})`,
      figure: `${fmt(f.ours.p99, 1)} ms (bare ${fmt(f.bare.p99, 1)} ms)`,
      bar: `200 in under ${OUR_P99_BAR_MS} ms (ours): ${f.ours.p99 < OUR_P99_BAR_MS ? 'met' : 'MISSED'}`,
    },
    {
      measure: `${meta} (${rounds})`,
      figure: `${fmt(f.ours.p50, 1)} ms, ${fmt(f.ours.overOneSecond * 100, 2)} % over 1 s`,
      bar:
        `Meta: median ≤ ${META_MEDIAN_BAR_MS} ms, < 1 % over 1 s: ` +
        (f.ours.p50 <= META_MEDIAN_BAR_MS && f.ours.overOneSecond < META_SLOW_SHARE ? 'met' : 'MISSED'),
    },
    { measure: cpu, figure: `${fmt(f.ours.cpuUsPerRequest, 0)} µs (${fmt(f.cpuRatio, 2)} × bare)`, bar: '—' },
  ];
}

function burstRows(f: BurstFigures): Row[] {
  const [uncapped, capped, median, overhead, toolRound] = ROWS.burst;
  const { chats: n, latencyMs: l, cap } = f.options;
  const nl = `${count(n)} chats, L = ${count(l)} ms`;
  const synchronous = `synchronous design N × L = ${count(f.synchronousMs)} ms`;
  return [
    {
      measure: `${uncapped} (${nl})`,
      figure: `${ms(f.lastReplyMs)} (${fmt(f.lastReplyMs / l, 2)} × L)`,
      bar: `${synchronous}; ideal L = ${count(l)} ms`,
    },
    {
      measure: `${capped} (${nl}, cap ${cap})`,
      figure: ms(f.capped.lastReplyMs),
      bar: `ceil(N / cap) × L + 1 s = ${count(f.capped.boundMs)} ms; ${synchronous}`,
    },
    {
      measure: `${median} (${nl}, cap ${cap})`,
      figure: ms(f.capped.medianWaitMs),
      bar: `slowest chat ${ms(f.capped.lastReplyMs)} vs fair share + one round ${ms(f.capped.fairShareMs)}`,
    },
    {
      measure: `${overhead} (${count(f.options.overheadMessages)} messages at ${f.options.overheadRate}/s)`,
      figure: `${ms(f.overhead.p50)} / ${ms(f.overhead.p99)}`,
      bar: '—',
    },
    {
      measure: `${toolRound} (${nl}, clinic C = ${count(f.options.toolLatencyMs)} ms)`,
      figure: `${ms(f.toolRound.lastReplyMs)} (${fmt(f.toolRound.lastReplyMs / f.toolRound.idealMs, 2)} × ideal)`,
      bar: `ideal 2 × L + C = ${count(f.toolRound.idealMs)} ms; synchronous N × (2 × L + C) = ${count(f.toolRound.synchronousMs)} ms`,
    },
  ];
}

function takeoverRows(f: TakeoverFigures): Row[] {
  const [restarted, replied] = ROWS.takeover;
  const runs = `${f.options.runs} run${f.options.runs === 1 ? '' : 's'}, L = ${count(f.options.latencyMs)} ms`;
  const bound = f.leaseMs + f.sweepEveryMs;
  return [
    {
      measure: `${restarted} (${runs})`,
      figure: `${ms(f.restarted.p50)} / ${ms(f.restarted.max)}`,
      bar: `≤ lease + one sweep = ${count(bound)} ms`,
    },
    {
      measure: `${replied} (${runs})`,
      figure: `${ms(f.replied.p50)} / ${ms(f.replied.max)}`,
      bar: `≤ lease + one sweep + L = ${count(bound + f.options.latencyMs)} ms`,
    },
  ];
}

function memoryRows(f: MemoryFigures): Row[] {
  const [perChat, usedMemory, workerRss, receiverRss, heap] = ROWS.memory;
  const own = (scope: 'chat' | 'message'): number =>
    f.kinds.filter((k) => k.scope === scope).reduce((sum, k) => sum + k.bytes, 0) / f.options.historyChats;
  const history = `${count(f.options.historyChats)} chats, ${f.historyMax} history entries`;
  const active = `${count(f.options.activeChats)} chats`;
  const rss = (p: MemoryFigures['worker']): string => `${mib(p.before.rss)} / ${mib(p.after.rss)} / ${mib(p.peakRss)}`;
  return [
    {
      measure: `${perChat} (${history}${f.options.statuses ? ', statuses' : ''})`,
      figure: `${kib(f.keyBytesPerChat)} (chat keys ${kib(own('chat'))}, message keys ${kib(own('message'))})`,
      bar: '—',
    },
    { measure: `${usedMemory} (${history})`, figure: kib(f.usedMemoryPerChat), bar: '—' },
    { measure: `${workerRss} (${active})`, figure: rss(f.worker), bar: '—' },
    { measure: `${receiverRss} (${active})`, figure: rss(f.receiver), bar: '—' },
    {
      measure: `${heap} (${active})`,
      figure: `${mib(f.worker.before.heapUsed)} / ${mib(f.worker.after.heapUsed)}`,
      bar: '—',
    },
  ];
}

function capacityRows(f: CapacityFigures): Row[] {
  const [turns, cpu] = ROWS.capacity;
  return [
    { measure: `${turns} (${count(f.options.messages)} chats)`, figure: fmt(f.turnsPerSecond, 0), bar: '—' },
    { measure: cpu, figure: `${fmt(f.workerCpuMsPerTurn, 2)} ms`, bar: '—' },
  ];
}

function failedRows(piece: Piece, err: Error): Row[] {
  const reason = `failed: ${err.message.split('\n')[0].slice(0, 80)}`;
  return ROWS[piece].map((measure) => ({ measure, figure: reason, bar: '—' }));
}

function version(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8' }).trim().split('\n')[0];
  } catch {
    return 'not found';
  }
}

function selectedPieces(): Piece[] {
  const only = (process.env.BENCH_ONLY ?? '').split(',').filter(Boolean);
  for (const name of only) {
    if (!PIECES.includes(name as Piece)) throw new Error(`BENCH_ONLY: unknown piece "${name}" (${PIECES.join(', ')})`);
  }
  if (only.length > 0) return PIECES.filter((p) => only.includes(p));
  return PIECES.filter((p) => p !== 'capacity' || process.env.BENCH_CAPACITY === '1');
}

async function main(): Promise<void> {
  const quick = quickMode();
  const pieces = selectedPieces();
  const machine =
    `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), node ${process.version}, ` +
    `${version('redis-server', ['--version'])}`;
  const loadBefore = loadavg()[0];
  console.log(`bench: ${pieces.join(', ')}${quick ? ' (BENCH_QUICK=1: short runs, figures mean little)' : ''}`);
  console.log(`machine: ${machine}; load average ${fmt(loadBefore, 2)}`);

  const runners: Record<Piece, () => Promise<{ rows: Row[]; figures: unknown }>> = {
    ingest: async () => {
      const f = await runIngest(ingestOptions(quick));
      if (!f.sane) throw new Error('the ingest sanity check failed (see above)');
      return { rows: ingestRows(f), figures: f };
    },
    burst: async () => {
      const f = await runBurst(burstOptions(quick));
      return { rows: burstRows(f), figures: f };
    },
    takeover: async () => {
      const f = await runTakeover(takeoverOptions(quick));
      return { rows: takeoverRows(f), figures: f };
    },
    memory: async () => {
      const f = await runMemory(memoryOptions(quick));
      return { rows: memoryRows(f), figures: f };
    },
    capacity: async () => {
      const f = await runCapacity(capacityOptions(quick));
      return { rows: capacityRows(f), figures: f };
    },
  };

  const rows: Row[] = [];
  const figures: Record<string, unknown> = {};
  const times: string[] = [];
  let failed = false;
  for (const piece of pieces) {
    console.log(`\n=== ${piece} ===`);
    const t0 = Date.now();
    try {
      const result = await runners[piece]();
      rows.push(...result.rows);
      figures[piece] = result.figures;
    } catch (err) {
      failed = true;
      console.error(`${piece} failed:`, err);
      rows.push(...failedRows(piece, err as Error));
    }
    times.push(`${piece} ${fmt((Date.now() - t0) / 1000, 0)} s`);
  }

  const loadAfter = loadavg()[0];
  const busy = Math.max(loadBefore, loadAfter) > cpus().length * 0.75;
  console.log(`\n=== bench: one table ===\n`);
  console.log(markdownTable(rows));
  console.log(
    `\n${machine}; load average ${fmt(loadBefore, 2)} before, ${fmt(loadAfter, 2)} after` +
      `${busy ? ' (busy machine: other processes competed with the bench, the figures are noisy)' : ''}`,
  );
  console.log(`time: ${times.join(', ')}${quick ? '; BENCH_QUICK=1' : ''}`);
  if (process.env.BENCH_JSON) {
    writeFileSync(
      process.env.BENCH_JSON,
      JSON.stringify({ machine, quick, loadBefore, loadAfter, rows, figures }, null, 2),
    );
  }
  process.exitCode = failed ? 1 : 0;
}

exitWhenDone(main());
