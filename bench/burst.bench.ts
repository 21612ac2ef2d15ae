/**
 * `npm run bench:burst` — the worker under a burst (issue "The worker", Measure it).
 *
 * 1. N chats × 1 message with a fake LLM of latency L, one worker process with
 *    WORKER_CONCURRENCY >= N and TURN_DEBOUNCE_MS=0: time from the first webhook to the last reply,
 *    next to the ideal (L) and to the seed's synchronous failure mode (N × L).
 * 2. The pipeline's own overhead with an instant LLM: webhook-to-send p50/p99.
 * 3. The same burst under the LLM concurrency cap (BURST_CAP, 32): last reply next to
 *    ceil(N / cap) x L + 1 s, the slowest chat next to the fair share plus one round, and the Redis
 *    commands per turn (INFO commandstats) — slots go first come first served, without polling.
 *
 * Runs the built app (dist/main.js) as a receiver process and a worker process against the Redis
 * at REDIS_URL (default 127.0.0.1:6379) under a prefix of its own, deleted afterwards.
 * Knobs: BURST_CHATS (200), BURST_LATENCY_MS (3000), OVERHEAD_MESSAGES (400), OVERHEAD_RATE (100/s),
 * BURST_CAP (32).
 */
import { benchEnv, freePort, percentile, post, startApp } from './bench-apps';
import { Redis } from 'ioredis';
import { FakeGraphServer } from '../test/fakes/fake-graph.server';
import { FakeLlmServer } from '../test/fakes/fake-llm.server';

const num = (name: string, fallback: number): number => Number(process.env[name] ?? fallback) || fallback;

async function main(): Promise<void> {
  const chats = num('BURST_CHATS', 200);
  const latency = num('BURST_LATENCY_MS', 3000);
  const overheadMessages = num('OVERHEAD_MESSAGES', 400);
  const overheadRate = num('OVERHEAD_RATE', 100);
  const cap = num('BURST_CAP', 32);
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const prefix = `bench_burst_${process.pid}`;
  const llm = await FakeLlmServer.start();
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
    line('LLM calls in flight at most', String(llm.maxInFlight));
    console.log(`\npipeline overhead, instant LLM: ${overheadMessages} messages at ${overheadRate}/s, webhook -> send`);
    line('p50', `${percentile(delays, 50)} ms`);
    line('p99', `${percentile(delays, 99)} ms`);
    line('max', `${delays[delays.length - 1]} ms`);

    // 3. The burst under the concurrency cap, on a worker started with it.
    worker.child.kill('SIGTERM');
    await new Promise((resolve) => worker.child.once('exit', resolve));
    worker = startApp('worker', { ...env, LLM_MAX_CONCURRENCY: String(cap), PORT: String(await freePort()) });
    await worker.ready;
    llm.latencyMs = latency;
    llm.maxInFlight = 0;
    graph.reset();
    sentAt.clear();
    const stats = new Redis(redisUrl);
    const commands = async (): Promise<Map<string, number>> => {
      const info = await stats.info('commandstats');
      return new Map([...info.matchAll(/cmdstat_([\w|]+):calls=(\d+)/g)].map((m) => [m[1], Number(m[2])]));
    };
    const capped = Array.from({ length: chats }, (_, i) => `97153${String(1000000 + i)}`);
    const commandsBefore = await commands();
    const t1 = Date.now();
    await Promise.all(capped.map((from) => post(receiver.url, from, 'Hello, I would like an appointment')));
    await graph.waitForSends(chats, 10 * 60_000);
    const commandsAfter = await commands();
    const used = [...commandsAfter].map(([name, calls]) => [name, calls - (commandsBefore.get(name) ?? 0)] as const);
    const commandsUsed = used.reduce((sum, [, calls]) => sum + calls, 0);
    const top = used
      .filter(([, calls]) => calls > 0)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([name, calls]) => `${name} ${(calls / chats).toFixed(1)}`)
      .join(', ');
    stats.disconnect();
    const waits = capped.map((s) => (sentAt.get(s) ?? Infinity) - t1).sort((a, b) => a - b);
    const rounds = Math.ceil(chats / cap);
    console.log(`\nbench:burst — the same burst with LLM_MAX_CONCURRENCY=${cap} (${rounds} rounds of ${latency} ms)`);
    line('first webhook -> last reply', `${waits[waits.length - 1]} ms`);
    line('bound: ceil(N / cap) x L + 1 s', `${rounds * latency + 1000} ms`);
    line('median chat waited', `${percentile(waits, 50)} ms`);
    line('slowest chat vs fair share + one round', `${waits[waits.length - 1]} ms vs ${(rounds + 1) * latency} ms`);
    line('LLM calls in flight at most', String(llm.maxInFlight));
    line('Redis commands per turn (all processes)', (commandsUsed / chats).toFixed(1));
    line('  the most frequent, per turn', top);
  } finally {
    receiver.child.kill('SIGTERM');
    worker.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 1500));
    const redis = new Redis(redisUrl);
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `\\{${prefix}\\}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
    redis.disconnect();
    await Promise.all([llm.close(), graph.close()]);
  }
}

main().catch((err: Error) => {
  console.error(err);
  process.exit(1);
});
