import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import {
  BENCH_APP_SECRET,
  BENCH_PHONE_NUMBER_ID,
  type BenchSettings,
  type LoadResult,
  type ServerProcess,
  SignedMessages,
  type WorkCount,
  bareProcess,
  benchSettings,
  countWork,
  deletePrefix,
  fmt,
  freePort,
  loadRun,
  machineNote,
  appEntry,
  median,
  numberEnv,
  receiverProcess,
  redisCpuSeconds,
  runPrefix,
  settle,
  table,
} from './load.harness';
import { quickMode } from './bench-apps';

/**
 * `npm run bench:ingest`: POST /webhook throughput and latency of the built receiver
 * (`node dist/main.js --role=receiver`) against a bare node:http + ioredis server doing the same
 * Redis work (bare-ingest.server.ts), each in its own process, loaded in turn by autocannon from
 * this process with signed Meta payloads whose message ids are all fresh (the ingest path, never
 * the duplicate path).
 *
 * Environment: BENCH_DURATION (s, 10), BENCH_WARMUP (s, 4), BENCH_CONNECTIONS (50), BENCH_ROUNDS
 * (3; rounds alternate which server goes first), BENCH_SENDERS (0 = a new chat per message),
 * BENCH_NODE_FLAGS (extra node flags for every server), BENCH_VARIANT (node flags: a third target, our
 * receiver with them, for an A/B in the same run), BENCH_PROFILE_DIR (a V8 CPU profile of each server's
 * measured runs; summarise with cpu-profile.summary.ts), REDIS_URL; BENCH_QUICK=1 (1 round of 3 s after a
 * 1 s warm-up, for a smoke test). See bench/README.md.
 * Targets: ours >= 0.75 of the bare server's requests/s, and our p99 < 25 ms at 50 connections.
 * Exits 1 when a sanity check fails, or when BENCH_ENFORCE=1 and a target is missed.
 */

const TARGET_RATIO = 0.75;
const TARGET_P99_MS = 25;

export interface IngestOptions extends BenchSettings {
  rounds: number;
}

export interface IngestFigures {
  options: IngestOptions;
  /** Medians over the rounds. */
  ratio: number;
  cpuRatio: number;
  ours: { rps: number; p50: number; p99: number; max: number; overOneSecond: number; cpuUsPerRequest: number };
  bare: { rps: number; p50: number; p99: number };
  /** Every round passed the sanity check (items = 2xx, one lane and one wake-up job per item). */
  sane: boolean;
  /** BENCH_ENFORCE=1: the ratio and p99 targets. */
  targetsMet: boolean;
}

export function ingestOptions(quick = quickMode()): IngestOptions {
  const settings = benchSettings();
  return quick
    ? {
        ...settings,
        durationS: numberEnv('BENCH_DURATION', 3),
        warmupS: numberEnv('BENCH_WARMUP', 1),
        rounds: Math.max(1, numberEnv('BENCH_ROUNDS', 1)),
      }
    : { ...settings, rounds: Math.max(1, numberEnv('BENCH_ROUNDS', 3)) };
}

interface Target {
  name: 'ours' | 'bare' | 'variant';
  prefix: string;
  server: ServerProcess;
  messages: SignedMessages;
  warmedUp: boolean;
}

interface Measurement {
  target: Target;
  load: LoadResult;
  work: WorkCount;
  serverCpu: number;
  redisCpu: number;
  sane: boolean;
}

async function spawnTargets(settings: BenchSettings): Promise<Target[]> {
  const target = (name: Target['name'], prefix: string, server: ServerProcess): Target => ({
    name,
    prefix,
    server,
    warmedUp: false,
    messages: messages(settings),
  });
  const oursPrefix = runPrefix('ours');
  const barePrefix = runPrefix('bare');
  const targets = [
    target('ours', oursPrefix, await receiverProcess('ours', oursPrefix, await freePort(), settings.redisUrl)),
    target('bare', barePrefix, bareProcess('bare', barePrefix, await freePort(), settings.redisUrl, 'full')),
  ];
  // A/B in the same run: our receiver again, with extra node flags (a preload, another dependency).
  const variantFlags = (process.env.BENCH_VARIANT ?? '').split(' ').filter(Boolean);
  if (variantFlags.length > 0) {
    const prefix = runPrefix('variant');
    const server = await receiverProcess('variant', prefix, await freePort(), settings.redisUrl, variantFlags);
    targets.push(target('variant', prefix, server));
  }
  return targets;
}

const messages = (settings: BenchSettings): SignedMessages =>
  new SignedMessages(BENCH_APP_SECRET, BENCH_PHONE_NUMBER_ID, settings.senders);

async function measure(redis: Redis, target: Target, settings: BenchSettings): Promise<Measurement> {
  const { server, prefix } = target;
  if (!target.warmedUp && settings.warmupS > 0) {
    await loadRun(`${target.name} warm-up`, server.url, target.messages, settings.connections, settings.warmupS);
    target.warmedUp = true;
  }
  // Every measured run starts from an empty prefix, so the items counted are this run's only.
  await settle(redis, prefix);
  await deletePrefix(redis, prefix);
  const cpu0 = server.cpuSeconds();
  const redis0 = await redisCpuSeconds(redis);
  server.profileStart();
  const load = await loadRun(target.name, server.url, target.messages, settings.connections, settings.durationS);
  const profile = await server.profileStop();
  if (profile) console.log(`${target.name}: CPU profile of the measured run in ${profile}`);
  const serverCpu = ((server.cpuSeconds() - cpu0) / load.seconds) * 100;
  const redisCpu = (((await redisCpuSeconds(redis)) - redis0) / load.seconds) * 100;
  await settle(redis, prefix);
  const work = await countWork(redis, prefix);
  await deletePrefix(redis, prefix);
  // Requests cut off when the load stopped may have landed without their 200 being counted.
  const unanswered = settings.connections + load.errors + load.timeouts;
  const sane =
    load.ok > 0 &&
    work.items >= load.ok &&
    work.items <= load.ok + unanswered &&
    work.wakeJobs === work.lanes &&
    (settings.senders > 0 || work.lanes === work.items);
  return { target, load, work, serverCpu, redisCpu, sane };
}

function report(round: number, results: Measurement[]): void {
  const rows = [
    [
      `round ${round}`,
      'req/s',
      'p50 ms',
      'p90 ms',
      'p99 ms',
      'max ms',
      '2xx',
      'non-2xx',
      'errors',
      'items',
      'lanes',
      'wake jobs',
      'server CPU %',
      'CPU µs/req',
      'redis CPU %',
      'loadgen CPU %',
      'sane',
    ],
  ];
  for (const { target, load, work, serverCpu, redisCpu, sane } of results) {
    rows.push([
      target.name,
      fmt(load.rps, 0),
      fmt(load.p50, 2),
      fmt(load.p90, 2),
      fmt(load.p99, 2),
      fmt(load.max, 1),
      String(load.ok),
      String(load.non2xx),
      String(load.errors + load.timeouts),
      String(work.items),
      String(work.lanes),
      String(work.wakeJobs),
      fmt(serverCpu, 0),
      fmt(((serverCpu / 100) * 1e6) / load.rps, 0),
      fmt(redisCpu, 0),
      fmt(load.generatorCpu, 0),
      sane ? 'yes' : 'NO',
    ]);
  }
  console.log(`\n${table(rows)}`);
  console.log(
    'items = 2xx + requests cut off when the load stopped (their 200 was never read; at most one per connection)',
  );
}

interface RoundSummary {
  ratio: number;
  p99: number;
  cpuRatio: number;
}

function verdict(name: string, rounds: RoundSummary[]): boolean {
  const pick = (f: (r: RoundSummary) => number): { median: number; all: string } => ({
    median: median(rounds.map(f)),
    all: rounds.length > 1 ? ` (median of ${rounds.length} rounds: ${rounds.map((r) => fmt(f(r), 2)).join(', ')})` : '',
  });
  const ratio = pick((r) => r.ratio);
  const p99 = pick((r) => r.p99);
  const cpu = pick((r) => r.cpuRatio);
  const ratioOk = ratio.median >= TARGET_RATIO;
  const p99Ok = p99.median < TARGET_P99_MS;
  console.log(
    `\nratio ${name}/bare req/s: ${fmt(ratio.median, 2)}${ratio.all}  target >= ${TARGET_RATIO}: ${ratioOk ? 'met' : 'MISSED'}`,
  );
  console.log(
    `${name} p99: ${fmt(p99.median, 2)} ms${p99.all}  target < ${TARGET_P99_MS} ms: ${p99Ok ? 'met' : 'MISSED'}`,
  );
  // Steadier than req/s when other processes compete for the cores: what each request costs the server.
  console.log(`server CPU per request, ${name}/bare: ${fmt(cpu.median, 2)}${cpu.all}`);
  return ratioOk && p99Ok;
}

export async function run(settings: IngestOptions = ingestOptions()): Promise<IngestFigures> {
  if (!existsSync(appEntry())) throw new Error(`${appEntry()} is missing: run \`npm run build\` first`);
  // Three alternating rounds by default: on a 2-core machine one round is at the mercy of whatever
  // else runs; the medians are what the verdict uses.
  const { rounds } = settings;
  console.log(
    `bench:ingest  ${settings.connections} connections, ${settings.durationS} s measured (+${settings.warmupS} s warm-up), ` +
      `${rounds} round(s), ${settings.senders > 0 ? `${settings.senders} chats in rotation` : 'a new chat per message'}, ` +
      `redis ${settings.redisUrl}`,
  );
  const redis = new Redis(settings.redisUrl, { maxRetriesPerRequest: 1 });
  let targets: Target[] = [];
  let sane = true;
  const ours: Measurement[] = [];
  const bares: Measurement[] = [];
  try {
    targets = await spawnTargets(settings);
    await Promise.all(targets.map((t) => t.server.waitReady()));
    const summaries: RoundSummary[] = [];
    const variantSummaries: RoundSummary[] = [];
    machineNote('before');
    for (let round = 1; round <= rounds; round++) {
      // Alternate who goes first, so that drift (other load, Redis memory) does not favour one.
      const order = round % 2 === 1 ? targets : [...targets].reverse();
      const results: Measurement[] = [];
      for (const target of order) results.push(await measure(redis, target, settings));
      const rowOrder = ['ours', 'variant', 'bare'];
      results.sort((a, b) => rowOrder.indexOf(a.target.name) - rowOrder.indexOf(b.target.name));
      report(round, results);
      const of = (name: Target['name']): Measurement | undefined => results.find((r) => r.target.name === name);
      const bare = of('bare')!;
      const versus = (m: Measurement): RoundSummary => ({
        ratio: m.load.rps / bare.load.rps,
        p99: m.load.p99,
        cpuRatio: m.serverCpu / m.load.rps / (bare.serverCpu / bare.load.rps),
      });
      summaries.push(versus(of('ours')!));
      ours.push(of('ours')!);
      bares.push(bare);
      const variant = of('variant');
      if (variant) variantSummaries.push(versus(variant));
      if (results.some((r) => !r.sane)) {
        console.log('SANITY CHECK FAILED: items must equal the 2xx answers (plus requests cut off at the stop),');
        console.log('and every pending lane must have exactly one waiting wake-up job.');
        sane = false;
      }
    }
    machineNote('after');
    const targetsMet = verdict('ours', summaries);
    if (variantSummaries.length > 0) verdict(`variant (${process.env.BENCH_VARIANT})`, variantSummaries);
    const med = (f: (m: Measurement) => number, of = ours): number => median(of.map(f));
    return {
      options: settings,
      ratio: median(summaries.map((r) => r.ratio)),
      cpuRatio: median(summaries.map((r) => r.cpuRatio)),
      ours: {
        rps: med((m) => m.load.rps),
        p50: med((m) => m.load.p50),
        p99: med((m) => m.load.p99),
        max: Math.max(...ours.map((m) => m.load.max)),
        overOneSecond: med((m) => m.load.overOneSecond),
        cpuUsPerRequest: med((m) => ((m.serverCpu / 100) * 1e6) / m.load.rps),
      },
      bare: {
        rps: med((m) => m.load.rps, bares),
        p50: med((m) => m.load.p50, bares),
        p99: med((m) => m.load.p99, bares),
      },
      sane,
      targetsMet,
    };
  } finally {
    await Promise.all(targets.map((t) => t.server.stop()));
    for (const target of targets) await deletePrefix(redis, target.prefix);
    redis.disconnect();
  }
}

if (require.main === module) {
  run().then(
    (figures) => {
      if (!figures.sane || (!figures.targetsMet && process.env.BENCH_ENFORCE === '1')) process.exitCode = 1;
    },
    (err: Error) => {
      console.error(`bench:ingest failed: ${err.message}`);
      process.exitCode = 1;
    },
  );
}
