/**
 * `npm run bench:capacity` — the figures docs/capacity.md is computed from.
 *
 * 1. Worker throughput: one receiver and one worker process (built app, dist/main.js), an instant
 *    fake LLM and fake Graph API; CAPACITY_MESSAGES (2000) messages from as many chats posted 50 at
 *    a time; turns per second from the first post to the last reply, Redis commands per turn (INFO
 *    commandstats) and the CPU seconds of each process per turn.
 * 2. Redis memory per chat: CAPACITY_CHATS (1000) chats given a full history (HISTORY_MAX_MESSAGES
 *    30 entries of realistic length) through the app's own store, used_memory before and after;
 *    and the bytes of one dedup key (kept DEDUP_TTL_SECONDS, 7 days by default).
 * Runs against REDIS_URL (default 127.0.0.1:6379) under a prefix of its own, deleted afterwards.
 * The machine's other load skews these figures: run it on a quiet machine.
 */
import { Redis } from 'ioredis';
import { AppConfig } from '../src/config/app-config';
import { validateEnv } from '../src/config/validate-env';
import { RedisConversationStore } from '../src/conversation/redis-conversation.store';
import { chatLane } from '../src/queue/lanes';
import { RedisKeys } from '../src/redis/redis-keys';
import { FakeGraphServer } from '../test/fakes/fake-graph.server';
import { FakeLlmServer } from '../test/fakes/fake-llm.server';
import {
  benchEnv,
  commandCalls,
  commandsPerTurn,
  exitWhenDone,
  freePort,
  PHONE_NUMBER_ID,
  post,
  quickMode,
  startApp,
  stopApp,
} from './bench-apps';
import { cpuSecondsOf, deletePrefix, numberEnv } from './load.harness';

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0);
}

async function throughput(redisUrl: string, prefix: string, messages: number, redis: Redis) {
  const llm = await FakeLlmServer.start();
  const graph = await FakeGraphServer.start({ accessToken: 'bench-token' });
  const env = benchEnv(redisUrl, prefix, { graphUrl: graph.url, llmUrl: llm.url });
  const receiver = startApp('receiver', { ...env, PORT: String(await freePort()) });
  const worker = startApp('worker', { ...env, PORT: String(await freePort()) });
  try {
    await Promise.all([receiver.ready, worker.ready]);
    const senders = Array.from({ length: messages }, (_, i) => `97154${String(1000000 + i)}`);
    const calls0 = await commandCalls(redis);
    const [receiverCpu0, workerCpu0] = [cpuSecondsOf(receiver.child.pid!), cpuSecondsOf(worker.child.pid!)];
    const t0 = Date.now();
    for (let i = 0; i < senders.length; i += 50) {
      await Promise.all(
        senders.slice(i, i + 50).map((from) => post(receiver.url, from, 'What are your opening hours?')),
      );
    }
    await graph.waitForSends(messages, 10 * 60_000);
    const seconds = (Date.now() - t0) / 1000;
    const [receiverCpu1, workerCpu1] = [cpuSecondsOf(receiver.child.pid!), cpuSecondsOf(worker.child.pid!)];
    const commands = commandsPerTurn(calls0, await commandCalls(redis), messages, 10);
    return {
      turnsPerSecond: messages / seconds,
      commandsPerTurn: commands.total,
      topCommands: commands.top,
      receiverCpuMsPerMessage: ((receiverCpu1 - receiverCpu0) * 1000) / messages,
      workerCpuMsPerTurn: ((workerCpu1 - workerCpu0) * 1000) / messages,
    };
  } finally {
    await Promise.all([stopApp(receiver), stopApp(worker)]);
    await Promise.all([llm.close(), graph.close()]);
  }
}

async function memoryPerChat(redisUrl: string, prefix: string, chats: number, redis: Redis) {
  const config = new AppConfig(
    validateEnv({ APP_ROLE: 'worker', REDIS_URL: redisUrl, REDIS_PREFIX: prefix, BSP_PROVIDER: 'sandbox' }),
  );
  const keys = new RedisKeys(config.redisKeyRoot);
  const client = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const store = new RedisConversationStore(client, keys, config);
  const before = await usedMemory(redis);
  const max = config.env.HISTORY_MAX_MESSAGES;
  for (let c = 0; c < chats; c++) {
    const lane = chatLane(PHONE_NUMBER_ID, `97155${String(1000000 + c)}`);
    const lease = (await store.acquire(lane))!;
    const now = Date.now();
    const history = Array.from({ length: max }, (_, i) =>
      i % 2 === 0
        ? {
            role: 'user' as const,
            text: 'Can I book a check-up for my son next week? '.repeat(3),
            at: now,
            ids: [`wamid.${c}.${i}`],
          }
        : {
            role: 'assistant' as const,
            text: 'Of course. We have slots on Sunday at 10:00 and Tuesday at 16:30. '.repeat(4),
            at: now,
            ids: [`t.${c}.${i}`],
          },
    );
    await store.finish(lease, lane, {
      history,
      state: { lastInboundTs: Math.floor(now / 1000), language: 'en', name: 'Patient Name' },
    });
  }
  const after = await usedMemory(redis);
  const seenKey = keys.dedup('m:wamid.HBgLOTcxNTAwMDAwMDAxFQIAEhggQjc3QkE5RjBEQjQ3RjY3RjQ3');
  await redis.set(seenKey, '1', 'EX', 604800);
  const dedupBytes = Number(await redis.call('MEMORY', 'USAGE', seenKey));
  client.disconnect();
  return { bytesPerChat: (after - before) / chats, dedupBytes };
}

export interface CapacityOptions {
  messages: number;
  chats: number;
  redisUrl: string;
}

export type CapacityFigures = Awaited<ReturnType<typeof throughput>> &
  Awaited<ReturnType<typeof memoryPerChat>> & { options: CapacityOptions };

export function capacityOptions(quick = quickMode()): CapacityOptions {
  return {
    messages: numberEnv('CAPACITY_MESSAGES', quick ? 200 : 2000),
    chats: numberEnv('CAPACITY_CHATS', quick ? 100 : 1000),
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  };
}

export async function run(options: CapacityOptions = capacityOptions()): Promise<CapacityFigures> {
  const { redisUrl, messages, chats } = options;
  const prefix = `bench_capacity_${process.pid}`;
  const redis = new Redis(redisUrl);
  try {
    const t = await throughput(redisUrl, `${prefix}_t`, messages, redis);
    const m = await memoryPerChat(redisUrl, `${prefix}_m`, chats, redis);
    const line = (label: string, value: string): void => console.log(`| ${label} | ${value} |`);
    console.log(`\nbench:capacity — ${messages} messages from as many chats, instant LLM; ${chats} full histories\n`);
    console.log('| measure | figure |\n|---|---|');
    line('turns per second, one worker process (instant LLM)', t.turnsPerSecond.toFixed(0));
    line('worker CPU per turn', `${t.workerCpuMsPerTurn.toFixed(2)} ms`);
    line('receiver CPU per message', `${t.receiverCpuMsPerMessage.toFixed(2)} ms`);
    line('Redis commands per turn (ingest to commit, all processes)', t.commandsPerTurn.toFixed(0));
    line('  the most frequent, per turn', t.topCommands);
    line(`Redis memory per chat with a full history (${30} entries)`, `${(m.bytesPerChat / 1024).toFixed(1)} KiB`);
    line('Redis memory per dedup key (kept 7 days)', `${m.dedupBytes} B`);
    return { ...t, ...m, options };
  } finally {
    await deletePrefix(redis, `${prefix}_t`);
    await deletePrefix(redis, `${prefix}_m`);
    redis.disconnect();
  }
}

if (require.main === module) exitWhenDone(run());
