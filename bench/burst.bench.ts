/**
 * `npm run bench:burst` — the worker under a burst (issue "The worker", Measure it).
 *
 * 1. N chats × 1 message with a fake LLM of latency L, one worker process with
 *    WORKER_CONCURRENCY >= N and TURN_DEBOUNCE_MS=0: time from the first webhook to the last reply,
 *    next to the ideal (L) and to the synchronous design's N × L (each webhook waits for its reply).
 * 2. The pipeline's own overhead with an instant LLM: webhook-to-send p50/p99.
 * 3. The same burst under the LLM concurrency cap (BURST_CAP, 32): last reply next to
 *    ceil(N / cap) x L + 1 s, the slowest chat next to the fair share plus one round, each chat's
 *    wait above its own fair share (the i-th to arrive, from 0: ceil((i + 1) / cap) x L) next to one
 *    round, and the Redis commands per turn (INFO commandstats) — slots go first come first served,
 *    without polling.
 * 4. The same burst, uncapped, with one round of clinic actions per turn: the LLM asks for free
 *    slots, a fake clinic API answers in BURST_TOOL_LATENCY_MS (200), the LLM answers. Last reply
 *    next to the ideal 2 × L + C and the synchronous design's N × (2 × L + C).
 *
 * Runs the built app (dist/main.js) as a receiver process and a worker process against the Redis
 * at REDIS_URL (default 127.0.0.1:6379) under a prefix of its own, deleted afterwards.
 * Knobs: BURST_CHATS (200), BURST_LATENCY_MS (3000), OVERHEAD_MESSAGES (400), OVERHEAD_RATE (100/s),
 * BURST_CAP (32); BENCH_QUICK=1 makes them 20, 1000, 50, 50 and 8.
 */
import { Redis } from 'ioredis';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeClinicApi } from '../test/fakes/fake-clinic-api.server';
import { FakeGraphServer } from '../test/fakes/fake-graph.server';
import { FakeLlmServer } from '../test/fakes/fake-llm.server';
import {
  benchEnv,
  commandCalls,
  commandsPerTurn,
  freePort,
  percentile,
  post,
  quickMode,
  startApp,
  stopApp,
} from './bench-apps';
import { deletePrefix, numberEnv } from './load.harness';

export interface BurstOptions {
  chats: number;
  latencyMs: number;
  overheadMessages: number;
  /** Messages per second in the overhead run: paced so that the worker is not saturated. */
  overheadRate: number;
  cap: number;
  /** The clinic API's answer time in the tool-round burst. */
  toolLatencyMs: number;
  redisUrl: string;
}

export interface BurstFigures {
  options: BurstOptions;
  /** From the first webhook to the last 200. */
  ackedMs: number;
  /** Uncapped: from the first webhook to the last reply. */
  lastReplyMs: number;
  /** What the synchronous design takes: N × L. */
  synchronousMs: number;
  maxInFlight: number;
  overhead: { p50: number; p99: number; max: number };
  capped: {
    lastReplyMs: number;
    /** ceil(N / cap) × L + 1 s. */
    boundMs: number;
    medianWaitMs: number;
    /** The fair share plus one round: (ceil(N / cap) + 1) × L. */
    fairShareMs: number;
    /**
     * The largest wait above the chat's own fair share, ceil((i + 1) / cap) × L for the i-th chat
     * to arrive (from 0); the bar is one round, L. Negative: every chat beat its fair share.
     */
    maxOverFairShareMs: number;
    /** The arrival rank (from 0) of that chat. */
    maxOverFairShareRank: number;
    maxInFlight: number;
    commandsPerTurn: number;
    topCommands: string;
  };
  /** Uncapped, one round of clinic actions per turn (two LLM calls and one clinic call). */
  toolRound: {
    lastReplyMs: number;
    /** 2 × L + C. */
    idealMs: number;
    /** N × (2 × L + C). */
    synchronousMs: number;
    clinicCalls: number;
  };
}

export function burstOptions(quick = quickMode()): BurstOptions {
  return {
    chats: numberEnv('BURST_CHATS', quick ? 20 : 200),
    latencyMs: numberEnv('BURST_LATENCY_MS', quick ? 1000 : 3000),
    overheadMessages: numberEnv('OVERHEAD_MESSAGES', quick ? 50 : 400),
    overheadRate: numberEnv('OVERHEAD_RATE', quick ? 50 : 100),
    cap: numberEnv('BURST_CAP', quick ? 8 : 32),
    toolLatencyMs: numberEnv('BURST_TOOL_LATENCY_MS', 200),
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  };
}

export async function run(options: BurstOptions = burstOptions()): Promise<BurstFigures> {
  const { chats, latencyMs: latency, overheadMessages, overheadRate, cap, toolLatencyMs, redisUrl } = options;
  const prefix = `bench_burst_${process.pid}`;
  const llm = await FakeLlmServer.start();
  const clinic = await FakeClinicApi.start();
  const dir = mkdtempSync(join(tmpdir(), 'tawasul-bench-actions-'));
  const graph = await FakeGraphServer.start({ accessToken: 'bench-token' });
  const sentAt = new Map<string, number>();
  graph.onRequest((r) => {
    if (r.type === 'send' && r.body?.to) sentAt.set(r.body.to as string, Date.now());
  });
  const env = benchEnv(
    redisUrl,
    prefix,
    { graphUrl: graph.url, llmUrl: llm.url },
    {
      LLM_MAX_CONCURRENCY: String(Math.max(chats, 32)),
      WORKER_CONCURRENCY: String(Math.min(Math.max(chats, 50), 1000)),
      LOG_LEVEL: 'warn',
    },
  );
  const receiver = startApp('receiver', { ...env, PORT: String(await freePort()) });
  let worker = startApp('worker', { ...env, PORT: String(await freePort()) });
  const stats = new Redis(redisUrl);
  try {
    await Promise.all([receiver.ready, worker.ready]);

    // 1. The burst.
    llm.latencyMs = latency;
    const senders = Array.from({ length: chats }, (_, i) => `97150${String(1000000 + i)}`);
    const t0 = Date.now();
    await Promise.all(senders.map((from) => post(receiver.url, from, 'Hello, I would like an appointment')));
    const acked = Date.now() - t0;
    await graph.waitForSends(chats, 10 * 60_000);
    const burst = Math.max(...senders.map((s) => sentAt.get(s) ?? Infinity)) - t0;
    const maxInFlight = llm.maxInFlight;

    // 2. Overhead with an instant LLM, paced so the worker is not saturated.
    llm.latencyMs = 0;
    graph.reset();
    sentAt.clear();
    const postedAt = new Map<string, number>();
    const gap = 1000 / overheadRate;
    const posts: Promise<number>[] = [];
    for (let i = 0; i < overheadMessages; i++) {
      const from = `97152${String(1000000 + i)}`;
      postedAt.set(from, Date.now());
      posts.push(post(receiver.url, from, 'ping'));
      await new Promise((r) => setTimeout(r, gap));
    }
    await Promise.all(posts);
    await graph.waitForSends(overheadMessages, 120_000);
    const delays = [...postedAt].map(([from, at]) => (sentAt.get(from) ?? Infinity) - at).sort((a, b) => a - b);

    const line = (label: string, value: string): void => console.log(`${label.padEnd(46)} ${value}`);
    console.log(`\nbench:burst — ${chats} chats x 1 message, LLM latency ${latency} ms, one worker process`);
    line('all webhooks acknowledged after', `${acked} ms`);
    line('first webhook -> last reply', `${burst} ms`);
    line('ideal (one LLM latency)', `${latency} ms  (ours: ${(burst / latency).toFixed(2)} x ideal)`);
    line(
      'seed synchronous mode (N x L)',
      `${chats * latency} ms  (ours is ${((chats * latency) / burst).toFixed(0)}x faster)`,
    );
    line('LLM calls in flight at most', String(maxInFlight));
    console.log(`\npipeline overhead, instant LLM: ${overheadMessages} messages at ${overheadRate}/s, webhook -> send`);
    line('p50', `${percentile(delays, 50)} ms`);
    line('p99', `${percentile(delays, 99)} ms`);
    line('max', `${delays[delays.length - 1]} ms`);

    // 3. The burst under the concurrency cap, on a worker started with it.
    await stopApp(worker);
    worker = startApp('worker', { ...env, LLM_MAX_CONCURRENCY: String(cap), PORT: String(await freePort()) });
    await worker.ready;
    llm.latencyMs = latency;
    llm.maxInFlight = 0;
    graph.reset();
    sentAt.clear();
    const capped = Array.from({ length: chats }, (_, i) => `97153${String(1000000 + i)}`);
    const commandsBefore = await commandCalls(stats);
    // Arrival order: when the receiver answered 200, by which time the message was queued.
    const ackedAt = new Map<string, number>();
    const t1 = Date.now();
    await Promise.all(
      capped.map((from) =>
        post(receiver.url, from, 'Hello, I would like an appointment').then(() => ackedAt.set(from, Date.now())),
      ),
    );
    await graph.waitForSends(chats, 10 * 60_000);
    const commands = commandsPerTurn(commandsBefore, await commandCalls(stats), chats);
    const waits = capped.map((s) => (sentAt.get(s) ?? Infinity) - t1).sort((a, b) => a - b);
    const rounds = Math.ceil(chats / cap);
    const arrivals = [...capped].sort((a, b) => (ackedAt.get(a) ?? 0) - (ackedAt.get(b) ?? 0));
    const overFairShare = arrivals.map(
      (from, i) => (sentAt.get(from) ?? Infinity) - t1 - Math.ceil((i + 1) / cap) * latency,
    );
    const maxOverFairShareMs = Math.max(...overFairShare);
    const cappedMaxInFlight = llm.maxInFlight;

    // 4. The burst, uncapped, with one round of clinic actions per turn.
    await stopApp(worker);
    const actionsFile = join(dir, 'actions.json');
    writeFileSync(actionsFile, JSON.stringify({ actions: [findSlotsAction()] }));
    worker = startApp('worker', {
      ...env,
      ACTIONS_FILE: actionsFile,
      CLINIC_API_BASE_URL: clinic.url,
      PORT: String(await freePort()),
    });
    await worker.ready;
    clinic.latencyMs = toolLatencyMs;
    llm.behaviourFor = (body) =>
      body.messages.some((m) => m.role === 'tool')
        ? { content: 'Here are the free times on 6 January.' }
        : { toolCalls: [{ name: 'find_free_slots', arguments: { date: '2030-01-06' } }] };
    graph.reset();
    sentAt.clear();
    const withTools = Array.from({ length: chats }, (_, i) => `97154${String(1000000 + i)}`);
    const t2 = Date.now();
    await Promise.all(withTools.map((from) => post(receiver.url, from, 'Which times are free on 6 January?')));
    await graph.waitForSends(chats, 10 * 60_000);
    const toolRoundMs = Math.max(...withTools.map((s) => sentAt.get(s) ?? Infinity)) - t2;
    const figures: BurstFigures = {
      options,
      ackedMs: acked,
      lastReplyMs: burst,
      synchronousMs: chats * latency,
      maxInFlight,
      overhead: { p50: percentile(delays, 50), p99: percentile(delays, 99), max: delays[delays.length - 1] },
      capped: {
        lastReplyMs: waits[waits.length - 1],
        boundMs: rounds * latency + 1000,
        medianWaitMs: percentile(waits, 50),
        fairShareMs: (rounds + 1) * latency,
        maxOverFairShareMs,
        maxOverFairShareRank: overFairShare.indexOf(maxOverFairShareMs),
        maxInFlight: cappedMaxInFlight,
        commandsPerTurn: commands.total,
        topCommands: commands.top,
      },
      toolRound: {
        lastReplyMs: toolRoundMs,
        idealMs: 2 * latency + toolLatencyMs,
        synchronousMs: chats * (2 * latency + toolLatencyMs),
        clinicCalls: clinic.requestsTo('GET /api/slots').length,
      },
    };
    console.log(`\nbench:burst — the same burst with LLM_MAX_CONCURRENCY=${cap} (${rounds} rounds of ${latency} ms)`);
    line('first webhook -> last reply', `${figures.capped.lastReplyMs} ms`);
    line('bound: ceil(N / cap) x L + 1 s', `${figures.capped.boundMs} ms`);
    line('median chat waited', `${figures.capped.medianWaitMs} ms`);
    line(
      'slowest chat vs fair share + one round',
      `${figures.capped.lastReplyMs} ms vs ${figures.capped.fairShareMs} ms`,
    );
    line(
      'most a chat waited above its own fair share',
      `${figures.capped.maxOverFairShareMs} ms vs one round ${latency} ms` +
        `  (arrived ${figures.capped.maxOverFairShareRank + 1} of ${chats}; fair share: ceil((i + 1) / cap) x L)`,
    );
    line('LLM calls in flight at most', String(figures.capped.maxInFlight));
    line('Redis commands per turn (all processes)', commands.total.toFixed(1));
    line('  the most frequent, per turn', commands.top);
    const tool = figures.toolRound;
    console.log(
      `\nbench:burst — the same burst with one round of clinic actions (clinic answers in ${toolLatencyMs} ms)`,
    );
    line('first webhook -> last reply', `${tool.lastReplyMs} ms`);
    line('ideal (2 x L + C)', `${tool.idealMs} ms  (ours: ${(tool.lastReplyMs / tool.idealMs).toFixed(2)} x ideal)`);
    line('seed synchronous mode (N x (2 x L + C))', `${tool.synchronousMs} ms`);
    line('clinic calls (one per chat)', String(tool.clinicCalls));
    return figures;
  } finally {
    await Promise.all([stopApp(receiver), stopApp(worker)]);
    await deletePrefix(stats, prefix);
    stats.disconnect();
    await Promise.all([llm.close(), graph.close(), clinic.close()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The clinic example's read-only action, as a clinic's ACTIONS_FILE declares it. */
function findSlotsAction(): unknown {
  const example = JSON.parse(
    readFileSync(join(__dirname, '..', 'config', 'examples', 'actions.clinic.json'), 'utf8'),
  ) as {
    actions: { name: string }[];
  };
  return example.actions.find((action) => action.name === 'find_free_slots');
}
if (require.main === module) {
  run().catch((err: Error) => {
    console.error(err);
    process.exit(1);
  });
}
