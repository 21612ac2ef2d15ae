/**
 * `npm run bench:takeover` — how fast a chat recovers when its worker is SIGKILLed mid-turn.
 *
 * A receiver and two worker processes of the built app (dist/main.js), default lease settings, a
 * fake LLM of latency L (4 s) so the kill lands inside the turn. Per run: one message, wait for the
 * LLM call, SIGKILL the worker that made it (each worker sends its own LLM key), start a fresh
 * worker so two keep running, and time kill → the turn restarted (the second LLM call) and kill →
 * the reply at the fake Graph API. Prints p50 and max over the runs.
 * Knobs: TAKEOVER_RUNS (5), TAKEOVER_LATENCY_MS (4000), REDIS_URL; BENCH_QUICK=1 makes them 1 and 1000.
 */
import { Redis } from 'ioredis';
import { validateEnv } from '../src/config/validate-env';
import { SWEEP_EVERY_MS } from '../src/conversation/sweeper';
import { FakeGraphServer } from '../test/fakes/fake-graph.server';
import { FakeLlmServer } from '../test/fakes/fake-llm.server';
import { type BenchApp, benchEnv, exitWhenDone, post, quickMode, startApp, stopApp, until } from './bench-apps';
import { deletePrefix, freePort, numberEnv, percentile } from './load.harness';

export interface TakeoverOptions {
  runs: number;
  latencyMs: number;
  redisUrl: string;
}

export interface TakeoverFigures {
  options: TakeoverOptions;
  /** The lease the app runs with (its default) and the sweeper's period. */
  leaseMs: number;
  sweepEveryMs: number;
  restarted: { p50: number; max: number };
  replied: { p50: number; max: number };
}

export function takeoverOptions(quick = quickMode()): TakeoverOptions {
  return {
    runs: numberEnv('TAKEOVER_RUNS', quick ? 1 : 5),
    latencyMs: numberEnv('TAKEOVER_LATENCY_MS', quick ? 1000 : 4000),
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  };
}

export async function run(options: TakeoverOptions = takeoverOptions()): Promise<TakeoverFigures> {
  const { runs, latencyMs: latency, redisUrl } = options;
  const prefix = `bench_takeover_${process.pid}`;
  const llm = await FakeLlmServer.start();
  const graph = await FakeGraphServer.start({ accessToken: 'bench-token' });
  llm.latencyMs = latency;
  const env = benchEnv(redisUrl, prefix, { graphUrl: graph.url, llmUrl: llm.url });
  const leaseMs = validateEnv(env).TURN_LEASE_MS;
  let workerSeq = 0;
  const workers: (BenchApp & { key: string })[] = [];
  const startWorker = async (): Promise<void> => {
    const key = `worker-${++workerSeq}`;
    const app = { ...startApp('worker', { ...env, LLM_API_KEY: key, PORT: String(await freePort()) }), key };
    workers.push(app);
    await app.ready;
  };
  const receiver = startApp('receiver', { ...env, PORT: String(await freePort()) });
  const restarted: number[] = [];
  const replied: number[] = [];
  try {
    await Promise.all([receiver.ready, startWorker(), startWorker()]);
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
      await startWorker();
      console.log(`run ${run + 1}/${runs}: restarted after ${restarted.at(-1)} ms, replied after ${replied.at(-1)} ms`);
    }
    const summary = (values: number[]): { p50: number; max: number } => {
      const sorted = [...values].sort((a, b) => a - b);
      return { p50: percentile(sorted, 50), max: sorted[sorted.length - 1] };
    };
    const figures: TakeoverFigures = {
      options,
      leaseMs,
      sweepEveryMs: SWEEP_EVERY_MS,
      restarted: summary(restarted),
      replied: summary(replied),
    };
    const row = (name: string, s: { p50: number; max: number }): string => `| ${name} | ${s.p50} | ${s.max} |`;
    console.log(
      `\nTakeover after SIGKILL (${runs} runs, LLM latency ${latency} ms, default TURN_LEASE_MS, two workers)\n`,
    );
    console.log('| from the kill to | p50 ms | max ms |');
    console.log('|---|---|---|');
    console.log(row('the turn restarted by another worker', figures.restarted));
    console.log(row('the reply sent', figures.replied));
    return figures;
  } finally {
    await Promise.all([...workers, receiver].map((app) => stopApp(app)));
    await Promise.all([llm.close(), graph.close()]);
    const redis = new Redis(redisUrl);
    await deletePrefix(redis, prefix);
    redis.disconnect();
  }
}

if (require.main === module) exitWhenDone(run(), (err) => err.message);
