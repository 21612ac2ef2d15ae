/**
 * `npm run bench:takeover` — how fast a chat recovers when its worker is SIGKILLed mid-turn.
 *
 * A receiver and two worker processes of the built app (dist/main.js), default lease settings, a
 * fake LLM of latency L (4 s) so the kill lands inside the turn. Per run: one message, wait for the
 * LLM call, SIGKILL the worker that made it (each worker sends its own LLM key), start a fresh
 * worker so two keep running, and time kill → the turn restarted (the second LLM call) and kill →
 * the reply at the fake Graph API. Prints p50 and max over the runs.
 * Knobs: TAKEOVER_RUNS (5), TAKEOVER_LATENCY_MS (4000), REDIS_URL.
 */
import { Redis } from 'ioredis';
import { FakeGraphServer } from '../test/fakes/fake-graph.server';
import { FakeLlmServer } from '../test/fakes/fake-llm.server';
import { benchEnv, freePort, percentile, post, startApp } from './bench-apps';

const num = (name: string, fallback: number): number => Number(process.env[name] ?? fallback) || fallback;

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function main(): Promise<void> {
  const runs = num('TAKEOVER_RUNS', 5);
  const latency = num('TAKEOVER_LATENCY_MS', 4000);
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const prefix = `bench_takeover_${process.pid}`;
  const llm = await FakeLlmServer.start();
  const graph = await FakeGraphServer.start({ accessToken: 'bench-token' });
  llm.latencyMs = latency;
  const env = benchEnv(redisUrl, prefix, { graphUrl: graph.url, llmUrl: llm.url });
  let workerSeq = 0;
  const startWorker = async () => {
    const key = `worker-${++workerSeq}`;
    const app = startApp('worker', { ...env, LLM_API_KEY: key, PORT: String(await freePort()) });
    await app.ready;
    return { ...app, key };
  };
  const receiver = startApp('receiver', { ...env, PORT: String(await freePort()) });
  const workers = await Promise.all([startWorker(), startWorker()]);
  const restarted: number[] = [];
  const replied: number[] = [];
  try {
    await receiver.ready;
    for (let run = 0; run < runs; run++) {
      const from = `9715000${String(run).padStart(5, '0')}`;
      const requestsBefore = llm.requests.length;
      const sendsBefore = graph.sends().length;
      if ((await post(receiver.url, from, `takeover run ${run}`)) !== 200) throw new Error('webhook refused');
      await until('the LLM call', () => llm.requests.length > requestsBefore, 30_000);
      const holderKey = llm.requests[requestsBefore].headers.authorization;
      const holder = workers.find((w) => `Bearer ${w.key}` === holderKey);
      if (!holder) throw new Error('no worker made the LLM call');
      const killedAt = Date.now();
      holder.child.kill('SIGKILL');
      workers.splice(workers.indexOf(holder), 1);
      await until('the turn to restart', () => llm.requests.length > requestsBefore + 1, 60_000);
      restarted.push(Date.now() - killedAt);
      await until('the reply', () => graph.sends().length > sendsBefore, 60_000);
      replied.push(Date.now() - killedAt);
      workers.push(await startWorker());
      console.log(`run ${run + 1}/${runs}: restarted after ${restarted.at(-1)} ms, replied after ${replied.at(-1)} ms`);
    }
    const row = (name: string, values: number[]) => {
      const sorted = [...values].sort((a, b) => a - b);
      return `| ${name} | ${percentile(sorted, 50)} | ${sorted[sorted.length - 1]} |`;
    };
    console.log(
      `\nTakeover after SIGKILL (${runs} runs, LLM latency ${latency} ms, default TURN_LEASE_MS, two workers)\n`,
    );
    console.log('| from the kill to | p50 ms | max ms |');
    console.log('|---|---|---|');
    console.log(row('the turn restarted by another worker', restarted));
    console.log(row('the reply sent', replied));
  } finally {
    for (const w of workers) w.child.kill('SIGTERM');
    receiver.child.kill('SIGTERM');
    await Promise.all([llm.close(), graph.close()]);
    const redis = new Redis(redisUrl);
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `{${prefix}}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
    redis.disconnect();
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(err.message);
    process.exit(1);
  },
);
