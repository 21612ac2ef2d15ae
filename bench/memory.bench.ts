/**
 * `npm run bench:memory` — what active chats cost in memory, in Redis and in the processes.
 *
 * Everything runs against a private redis-server (a free port, no persistence): nothing else writes
 * to it, so its INFO memory deltas are this bench's alone, and the shared Redis is left alone.
 * The built app (dist/main.js) runs as one receiver and one worker process with their defaults
 * (WORKER_CONCURRENCY, LLM_MAX_CONCURRENCY, HISTORY_MAX_MESSAGES, CONVERSATION_TTL_SECONDS), against
 * the fake LLM (instant, with a reply of realistic length) and the fake Graph API.
 *
 * (a) Redis bytes per chat with a full history. BENCH_CHATS chats each write one message per round
 *     until their history has been trimmed to HISTORY_MAX_MESSAGES (a turn adds the patient's
 *     message and the reply: ceil(max / 2) + 1 rounds), checked with LLEN on every chat. A chat
 *     gets at most MAX_TURNS_PER_WINDOW (10) turns a minute, so with the default 30 entries the
 *     11th round waits for the minute to pass: about a minute of the run is that wait, whatever
 *     the number of chats. Every reply
 *     then gets Meta's sent, delivered and read statuses, as in production (BENCH_STATUSES=0: none).
 *     Then every key under the prefix: MEMORY USAGE (every element counted) summed by kind of key,
 *     with the kind's TTL, per chat; and used_memory after minus before, per chat.
 * (b) Process memory with BENCH_ACTIVE_CHATS (10,000) active chats — chats that wrote within the
 *     conversation window and have state in Redis. A fresh receiver and worker; a warm-up of
 *     BENCH_WARMUP_CHATS chats (JIT, connection pools, the first allocations), then VmRSS and the
 *     V8 heap in use (/metrics) of both processes; then every active chat writes one message, and
 *     once every reply is sent and Redis is idle, the same readings and the peak RSS (VmHWM).
 *     Each reading follows a full GC: the processes run with --expose-gc and a one-line preload
 *     that collects on SIGUSR2, so that "heap used" is what they retain, not garbage not yet
 *     collected. Nothing else about them changes.
 *
 * Messages are posted as batched signed webhooks (BENCH_BATCH updates per POST, Meta batches up to
 * 1000; BENCH_IN_FLIGHT POSTs at once). BENCH_HISTORY_MAX sets HISTORY_MAX_MESSAGES for the apps.
 * BENCH_QUICK=1: 10 chats with a 16-entry history, 300 active chats after 30 warm-up chats.
 */
import { type Redis as RedisClient, Redis } from 'ioredis';
import { validateEnv } from '../src/config/validate-env';
import { RedisKeys } from '../src/redis/redis-keys';
import { chatLane } from '../src/queue/lanes';
import { MAX_TURNS_PER_WINDOW } from '../src/conversation/chat-turn.service';
import { FakeGraphServer } from '../test/fakes/fake-graph.server';
import { FakeLlmServer } from '../test/fakes/fake-llm.server';
import { startPrivateRedis } from '../test/utils/private-redis';
import {
  type BenchApp,
  benchEnv,
  exitWhenDone,
  freePort,
  type InboundMessage,
  type OutboundStatus,
  PHONE_NUMBER_ID,
  postBatched,
  processMemory,
  quickMode,
  scrapeMetric,
  startApp,
  stopApp,
  until,
} from './bench-apps';
import { numberEnv } from './load.harness';

export interface MemoryOptions {
  historyChats: number;
  /** HISTORY_MAX_MESSAGES for the apps; undefined: the app's default. */
  historyMax?: number;
  activeChats: number;
  warmupChats: number;
  statuses: boolean;
  batch: number;
  inFlight: number;
}

export interface KeyKind {
  kind: string;
  /** chat: one set per chat; message: one per message or reply (kept by its own TTL); shared: bounded. */
  scope: 'chat' | 'message' | 'shared';
  keys: number;
  bytes: number;
  /** TTL of one key of the kind, in seconds; -1 without one. */
  ttlS: number;
}

export interface ProcessReading {
  rss: number;
  heapUsed: number;
}

export interface ProcessMemory {
  /** Right after /health/ready. */
  start: ProcessReading;
  /** After the warm-up. */
  before: ProcessReading;
  /** After the active chats, once idle. */
  after: ProcessReading;
  /** VmHWM: the most the process was resident at any moment. */
  peakRss: number;
}

export interface MemoryFigures {
  options: MemoryOptions;
  historyMax: number;
  conversationTtlS: number;
  rounds: number;
  historyLength: { min: number; max: number };
  /** (a) per chat with a full history: the chat's own keys and its messages' keys. */
  keyBytesPerChat: number;
  /** (a) used_memory after minus before, per chat: includes shared structures and Redis' own overhead. */
  usedMemoryPerChat: number;
  kinds: KeyKind[];
  /** (b) */
  worker: ProcessMemory;
  receiver: ProcessMemory;
  /** Chats whose state key exists once the active chats are done (warm-up included). */
  chatsWithState: number;
  /** (b) used_memory after minus before, per active chat (one turn each). */
  usedMemoryPerActiveChat: number;
  turnsPerSecond: number;
  seconds: number;
}

export function memoryOptions(quick = quickMode()): MemoryOptions {
  return {
    historyChats: numberEnv('BENCH_CHATS', quick ? 10 : 200),
    // A quick run stays under a chat's turns per window, so that no round waits for the window.
    historyMax: process.env.BENCH_HISTORY_MAX
      ? numberEnv('BENCH_HISTORY_MAX', 30)
      : quick
        ? 2 * (MAX_TURNS_PER_WINDOW - 2)
        : undefined,
    activeChats: numberEnv('BENCH_ACTIVE_CHATS', quick ? 300 : 10_000),
    warmupChats: numberEnv('BENCH_WARMUP_CHATS', quick ? 30 : 200),
    statuses: process.env.BENCH_STATUSES !== '0',
    batch: numberEnv('BENCH_BATCH', 50),
    inFlight: numberEnv('BENCH_IN_FLIGHT', 4),
  };
}

/** What a patient writes and what the receptionist answers: lengths of a real exchange. */
const PATIENT_TEXT = 'Hello, can I book a check-up for my son next week? He is 7, any morning works for us.';
const REPLY_TEXT =
  'Of course. We have slots on Sunday at 10:00 and on Tuesday at 09:30 with Dr. Rahman. ' +
  'Which one suits you? Please also send your son’s full name and date of birth so that I can ' +
  'prepare the file before the visit.';

/** The fakes, with counters instead of their full request records (thousands of turns). */
class Peers {
  sends = 0;
  /** Replies to give statuses to, when collecting. */
  readonly replies: { id: string; recipient: string }[] = [];
  collect = false;

  private constructor(
    readonly llm: FakeLlmServer,
    readonly graph: FakeGraphServer,
  ) {
    llm.reply = () => REPLY_TEXT;
    graph.onRequest((r) => {
      if (r.type !== 'send') return;
      this.sends++;
      if (this.collect && r.wamid) this.replies.push({ id: r.wamid, recipient: String(r.body?.to) });
    });
  }

  static async start(): Promise<Peers> {
    return new Peers(await FakeLlmServer.start(), await FakeGraphServer.start({ accessToken: 'bench-token' }));
  }

  /** Drops what the fakes recorded: only the counters above are used. */
  forget(): void {
    this.llm.requests.length = 0;
    this.graph.reset();
  }

  async close(): Promise<void> {
    await Promise.all([this.llm.close(), this.graph.close()]);
  }
}

async function usedMemory(redis: RedisClient): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? NaN);
}

/** Every reply sent and no lane waiting, parked or in a turn: the bot is idle. */
async function waitIdle(redis: RedisClient, keys: RedisKeys, peers: Peers, sends: number, what: string): Promise<void> {
  const timeoutMs = 120_000 + sends * 100;
  const started = Date.now();
  let last = '';
  await until(
    what,
    async () => {
      peers.forget();
      const lanes = await Promise.all([keys.pending, keys.inflight, keys.parked].map((key) => redis.zcard(key)));
      last = `${peers.sends}/${sends} sends, pending ${lanes[0]}, in flight ${lanes[1]}, parked ${lanes[2]}`;
      return peers.sends >= sends && lanes.every((n) => n === 0);
    },
    timeoutMs,
  ).catch((err: Error) => {
    throw new Error(`${err.message} (${last})`);
  });
  console.log(`memory: ${what} done, idle after ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

const sender = (block: number, i: number): string => `9715${block}${String(1_000_000 + i)}`;

function kindOf(rest: string): { kind: string; scope: KeyKind['scope'] } {
  const [head, ...tail] = rest.split(':');
  const laneKind = (lane: string): string =>
    lane.startsWith('s.') ? 'status lane' : lane.startsWith('d.') ? 'desk lane' : 'chat lane';
  if (head === 'chat') return { kind: `chat:<chat>:${tail[tail.length - 1]}`, scope: 'chat' };
  if (['lane', 'lease', 'inbox', 'turn'].includes(head))
    return { kind: `${head}:<${laneKind(tail[0])}>`, scope: 'chat' };
  if (head === 'seen') return { kind: `seen:${tail[0]}:<id>`, scope: 'message' };
  if (['out', 'ack', 'costonce', 'cwown', 'idem'].includes(head)) return { kind: `${head}:<id>`, scope: 'message' };
  // BullMQ's keys and the app's few global ones; a job's own key is named by its lane.
  const second = tail[0] === undefined ? '' : /^[csd]\./.test(tail[0]) ? ':<job>' : `:${tail[0]}`;
  return { kind: `${head}${second}`, scope: 'shared' };
}

/** Every key under the root, by kind: MEMORY USAGE with every element counted, and one TTL per kind. */
async function keyKinds(redis: RedisClient, root: string): Promise<Map<string, KeyKind>> {
  const kinds = new Map<string, KeyKind & { sample: string }>();
  const pattern = `${root.replace(/[{}[\]*?\\]/g, (c) => `\\${c}`)}:*`;
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (batch.length === 0) continue;
    const pipeline = redis.pipeline();
    for (const key of batch) pipeline.call('MEMORY', 'USAGE', key, 'SAMPLES', '0');
    const sizes = (await pipeline.exec()) ?? [];
    batch.forEach((key, i) => {
      const { kind, scope } = kindOf(key.slice(root.length + 1));
      const entry = kinds.get(kind) ?? { kind, scope, keys: 0, bytes: 0, ttlS: -1, sample: key };
      entry.keys++;
      entry.bytes += Number(sizes[i]?.[1] ?? 0);
      kinds.set(kind, entry);
    });
  } while (cursor !== '0');
  const result = new Map<string, KeyKind>();
  for (const { sample, ...kind } of kinds.values()) result.set(kind.kind, { ...kind, ttlS: await redis.ttl(sample) });
  return result;
}

/** What was added between two readings of keyKinds(), by kind. */
function added(before: Map<string, KeyKind>, after: Map<string, KeyKind>): KeyKind[] {
  const order = { chat: 0, message: 1, shared: 2 };
  return (
    [...after.values()]
      .map((k) => ({
        ...k,
        keys: k.keys - (before.get(k.kind)?.keys ?? 0),
        bytes: k.bytes - (before.get(k.kind)?.bytes ?? 0),
      }))
      // A chat's or a message's kind that only changed in size (a lease taken at both readings) is noise.
      .filter((k) => (k.scope === 'shared' ? k.keys !== 0 || k.bytes !== 0 : k.keys > 0))
      .sort((a, b) => order[a.scope] - order[b.scope] || b.bytes - a.bytes)
  );
}

/** A full GC on SIGUSR2, without a preload file to compile or load from the checkout. */
const GC_ON_SIGNAL = ['--expose-gc', '--import', "data:text/javascript,process.on('SIGUSR2',()=>globalThis.gc())"];

async function startBot(env: Record<string, string>): Promise<{ receiver: BenchApp; worker: BenchApp }> {
  const receiver = startApp('receiver', { ...env, PORT: String(await freePort()) }, GC_ON_SIGNAL);
  const worker = startApp('worker', { ...env, PORT: String(await freePort()) }, GC_ON_SIGNAL);
  try {
    const t0 = Date.now();
    await Promise.all([receiver.ready, worker.ready]);
    console.log(`memory: receiver and worker ready after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  } catch (err) {
    await Promise.all([stopApp(receiver), stopApp(worker)]);
    throw err;
  }
  return { receiver, worker };
}

/** Both processes' memory after a full GC in each. */
async function readings(bot: {
  receiver: BenchApp;
  worker: BenchApp;
}): Promise<Record<'worker' | 'receiver', ProcessReading>> {
  bot.worker.child.kill('SIGUSR2');
  bot.receiver.child.kill('SIGUSR2');
  // A full GC of a heap of this size takes tens of milliseconds; the signal gives no answer.
  await new Promise((r) => setTimeout(r, 500));
  const one = async (app: BenchApp): Promise<ProcessReading> => ({
    heapUsed: await scrapeMetric(app.url, 'nodejs_heap_size_used_bytes'),
    rss: processMemory(app.child.pid!).rss,
  });
  return { worker: await one(bot.worker), receiver: await one(bot.receiver) };
}

/** What a phase runs against: its own fakes and a receiver and worker under its own prefix. */
interface Rig {
  peers: Peers;
  env: Record<string, string>;
  keys: RedisKeys;
  redis: RedisClient;
  bot: { receiver: BenchApp; worker: BenchApp };
}

/** Starts a rig under `prefix` for `phase`, and stops all of it afterwards, even if it throws. */
async function withRig<T>(
  redisUrl: string,
  prefix: string,
  extraEnv: Record<string, string>,
  phase: (rig: Rig) => Promise<T>,
): Promise<T> {
  const peers = await Peers.start();
  const env = benchEnv(redisUrl, prefix, { graphUrl: peers.graph.url, llmUrl: peers.llm.url }, extraEnv);
  const keys = new RedisKeys(`{${prefix}}`);
  const redis = new Redis(redisUrl);
  const bot = await startBot(env).catch(async (err: Error) => {
    redis.disconnect();
    await peers.close();
    throw err;
  });
  try {
    return await phase({ peers, env, keys, redis, bot });
  } finally {
    await Promise.all([stopApp(bot.receiver), stopApp(bot.worker)]);
    redis.disconnect();
    await peers.close();
  }
}

/** (a): full histories, then every key measured. */
async function fullHistories(redisUrl: string, options: MemoryOptions) {
  const history: Record<string, string> =
    options.historyMax === undefined ? {} : { HISTORY_MAX_MESSAGES: String(options.historyMax) };
  return withRig(redisUrl, `bench_memory_h_${process.pid}`, history, async ({ peers, env, keys, redis, bot }) => {
    const config = validateEnv(env);
    const chats = options.historyChats;
    const rounds = Math.ceil(config.HISTORY_MAX_MESSAGES / 2) + 1;
    const senders = Array.from({ length: chats }, (_, i) => sender(1, i));
    const statusesOf = (replies: { id: string; recipient: string }[]): OutboundStatus[] =>
      options.statuses
        ? replies.flatMap(({ id, recipient }) =>
            (['sent', 'delivered', 'read'] as const).map((status) => ({ id, status, recipient })),
          )
        : [];
    // A few chats first, statuses included: Redis caches the app's and BullMQ's Lua scripts on
    // first use, which must not count as the measured chats' memory.
    const warmup = Array.from({ length: 5 }, (_, i) => ({ from: sender(0, i), text: PATIENT_TEXT }));
    peers.collect = true;
    await postBatched(bot.receiver.url, { messages: warmup }, options.batch, options.inFlight);
    await waitIdle(redis, keys, peers, warmup.length, 'the warm-up');
    await postBatched(bot.receiver.url, { statuses: statusesOf(peers.replies.splice(0)) });
    await waitIdle(redis, keys, peers, warmup.length, 'the warm-up statuses');
    const sendsBefore = peers.sends;
    const kindsBefore = await keyKinds(redis, keys.root);
    const before = await usedMemory(redis);
    for (let round = 1; round <= rounds; round++) {
      const messages: InboundMessage[] = senders.map((from) => ({ from, text: `${PATIENT_TEXT} (${round})` }));
      await postBatched(bot.receiver.url, { messages }, options.batch, options.inFlight);
      await waitIdle(redis, keys, peers, sendsBefore + round * chats, `round ${round} of ${rounds}`);
    }
    peers.collect = false;
    const statuses = statusesOf(peers.replies.splice(0));
    await postBatched(bot.receiver.url, { statuses }, options.batch, options.inFlight);
    await waitIdle(redis, keys, peers, sendsBefore + rounds * chats, 'the statuses');
    const after = await usedMemory(redis);
    const lengths = await Promise.all(senders.map((from) => redis.llen(keys.history(chatLane(PHONE_NUMBER_ID, from)))));
    const kinds = added(kindsBefore, await keyKinds(redis, keys.root));
    const ownBytes = kinds.filter((k) => k.scope !== 'shared').reduce((sum, k) => sum + k.bytes, 0);
    return {
      historyMax: config.HISTORY_MAX_MESSAGES,
      conversationTtlS: config.CONVERSATION_TTL_SECONDS,
      rounds,
      historyLength: { min: Math.min(...lengths), max: Math.max(...lengths) },
      keyBytesPerChat: ownBytes / chats,
      usedMemoryPerChat: (after - before) / chats,
      kinds,
    };
  });
}

/** (b): RSS and heap of fresh processes before and after the active chats. */
async function activeChats(redisUrl: string, options: MemoryOptions) {
  const prefix = `bench_memory_a_${process.pid}`;
  return withRig(redisUrl, prefix, {}, async ({ peers, keys, redis, bot }) => {
    const start = await readings(bot);
    const warmup = Array.from({ length: options.warmupChats }, (_, i) => ({ from: sender(2, i), text: PATIENT_TEXT }));
    await postBatched(bot.receiver.url, { messages: warmup }, options.batch, options.inFlight);
    await waitIdle(redis, keys, peers, warmup.length, 'the warm-up');
    const before = await readings(bot);
    const memoryBefore = await usedMemory(redis);

    const active = Array.from({ length: options.activeChats }, (_, i) => ({ from: sender(3, i), text: PATIENT_TEXT }));
    const t0 = Date.now();
    await postBatched(bot.receiver.url, { messages: active }, options.batch, options.inFlight);
    await waitIdle(redis, keys, peers, warmup.length + active.length, `${active.length} active chats`);
    const seconds = (Date.now() - t0) / 1000;
    const after = await readings(bot);
    const memoryAfter = await usedMemory(redis);

    let chatsWithState = 0;
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `\\{${prefix}\\}:chat:*:state`, 'COUNT', 1000);
      cursor = next;
      chatsWithState += batch.length;
    } while (cursor !== '0');

    const of = (role: 'worker' | 'receiver'): ProcessMemory => ({
      start: start[role],
      before: before[role],
      after: after[role],
      peakRss: processMemory(bot[role].child.pid!).peak,
    });
    return {
      worker: of('worker'),
      receiver: of('receiver'),
      chatsWithState,
      usedMemoryPerActiveChat: (memoryAfter - memoryBefore) / active.length,
      turnsPerSecond: active.length / seconds,
    };
  });
}

const mib = (bytes: number): string => `${(bytes / 1048576).toFixed(1)} MiB`;
const kib = (bytes: number): string => `${(bytes / 1024).toFixed(2)} KiB`;
const ttl = (s: number): string =>
  s < 0 ? 'none' : s >= 2 * 86400 ? `${(s / 86400).toFixed(0)} d` : s >= 3600 ? `${(s / 3600).toFixed(0)} h` : `${s} s`;

function report(f: MemoryFigures): void {
  const o = f.options;
  console.log(
    `\nbench:memory (a) — ${o.historyChats} chats x ${f.rounds} turns (HISTORY_MAX_MESSAGES ${f.historyMax}, ` +
      `CONVERSATION_TTL_SECONDS ${f.conversationTtlS})${o.statuses ? ', sent/delivered/read for every reply' : ''}`,
  );
  console.log(`history length on every chat: ${f.historyLength.min}..${f.historyLength.max} entries`);
  console.log('| key kind | keys per chat | bytes per chat | TTL |\n|---|---|---|---|');
  for (const k of f.kinds) {
    const perChat = k.scope === 'shared' ? `${k.keys} (shared)` : (k.keys / o.historyChats).toFixed(1);
    const bytes = k.scope === 'shared' ? `${k.bytes} B in all` : `${(k.bytes / o.historyChats).toFixed(0)} B`;
    console.log(`| ${k.kind} | ${perChat} | ${bytes} | ${ttl(k.ttlS)} |`);
  }
  console.log(`Redis bytes per chat with a full history (its keys, MEMORY USAGE): ${kib(f.keyBytesPerChat)}`);
  console.log(`Redis used_memory delta per chat (shared structures included):    ${kib(f.usedMemoryPerChat)}`);

  console.log(
    `\nbench:memory (b) — ${o.activeChats} active chats (one turn each) after a warm-up of ${o.warmupChats}; ` +
      `${f.turnsPerSecond.toFixed(0)} turns/s; ${f.chatsWithState} chats with state in Redis`,
  );
  console.log('| process | RSS at ready | RSS after warm-up | RSS after | peak RSS | heap used before → after |');
  console.log('|---|---|---|---|---|---|');
  for (const [name, p] of [
    ['worker', f.worker],
    ['receiver', f.receiver],
  ] as const) {
    console.log(
      `| ${name} | ${mib(p.start.rss)} | ${mib(p.before.rss)} | ${mib(p.after.rss)} | ${mib(p.peakRss)} | ` +
        `${mib(p.before.heapUsed)} → ${mib(p.after.heapUsed)} |`,
    );
  }
  console.log(`Redis used_memory delta per active chat (one turn): ${kib(f.usedMemoryPerActiveChat)}`);
  console.log(`bench:memory took ${f.seconds.toFixed(0)} s`);
}

export async function run(options: MemoryOptions = memoryOptions()): Promise<MemoryFigures> {
  const t0 = Date.now();
  const redis = await startPrivateRedis();
  try {
    const a = await fullHistories(redis.url, options);
    const b = await activeChats(redis.url, options);
    const figures: MemoryFigures = { options, ...a, ...b, seconds: (Date.now() - t0) / 1000 };
    report(figures);
    return figures;
  } finally {
    await redis.dispose();
  }
}

if (require.main === module) exitWhenDone(run());
