import { FakeGraphServer } from '../fakes/fake-graph.server';
import { FakeLlmServer } from '../fakes/fake-llm.server';
import { SHUTDOWN_CLOSE_LIMIT_MS } from '../../src/health/shutdown-limits';
import { textPayload } from '../utils/meta-payloads';
import { killAllPrivateRedis, startPrivateRedis, type PrivateRedis } from '../utils/private-redis';
import { signBody } from '../utils/sign';
import { type ExitInfo, httpStatus, killSpawnedApps, spawnApp, type SpawnedApp, waitUntil } from '../utils/spawn-app';

/**
 * SIGTERM while Redis is away (stopped, or frozen with SIGSTOP) after start-up: every role exits 0
 * within the drain plus SHUTDOWN_CLOSE_LIMIT_MS, as an orchestrator's grace period needs; a turn in
 * flight finishes when Redis comes back in time, and is cut short (and says so) when it does not.
 */

jest.setTimeout(60_000);

const DRAIN_MS = 500;
/** From SIGTERM to exit, at most: the drain, then the close limit. */
const EXIT_BOUND_MS = DRAIN_MS + SHUTDOWN_CLOSE_LIMIT_MS;
// Sends must not leave this machine (nothing listens on port 9).
const OFFLINE_PEERS = { META_GRAPH_URL: 'http://127.0.0.1:9', D360_BASE_URL: 'http://127.0.0.1:9' };

type Outage = 'stopped' | 'frozen';

interface Case {
  role: 'receiver' | 'worker' | 'all';
  outage: Outage;
  cluster?: boolean;
}

interface Run {
  app: SpawnedApp;
  /** Undefined when the app had not exited within the bound (it is SIGKILLed then). */
  exit?: ExitInfo;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function redisEnv(redis: PrivateRedis, cluster = false): Record<string, string> {
  return cluster ? { REDIS_URL: redis.url, REDIS_CLUSTER_NODES: `127.0.0.1:${redis.port}` } : { REDIS_URL: redis.url };
}

async function ready(app: SpawnedApp, status: number, timeoutMs: number): Promise<void> {
  await waitUntil(`ready ${status}`, async () => (await httpStatus(`${app.url}/health/ready`)) === status, timeoutMs);
}

function outage(redis: PrivateRedis, kind: Outage): Promise<void> {
  if (kind === 'stopped') return redis.stop();
  redis.freeze();
  return Promise.resolve();
}

/** SIGTERM, then the exit within the bound (plus a little for the child's pipes), or none. */
async function terminate(app: SpawnedApp): Promise<ExitInfo | undefined> {
  app.kill('SIGTERM');
  try {
    return await app.waitExit(EXIT_BOUND_MS + 1000);
  } catch {
    app.kill('SIGKILL');
    return undefined;
  }
}

function describeRun(run: Run): string {
  return `exit ${JSON.stringify(run.exit)}\n--- stdout ---\n${run.app.stdout()}\n--- stderr ---\n${run.app.stderr()}`;
}

/** Output lines that are not JSON log lines (a stack trace, a library's console output). */
function notJson(app: SpawnedApp): string[] {
  return `${app.stdout()}\n${app.stderr()}`.split('\n').filter((l) => l.trim() !== '' && !isJson(l));
}

function isJson(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}

/** pino events of the app's stdout. */
function events(app: SpawnedApp): Record<string, unknown>[] {
  return app
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

let llm: FakeLlmServer;
let graph: FakeGraphServer;

afterAll(async () => {
  await killSpawnedApps();
  killAllPrivateRedis();
  await Promise.all([llm?.close(), graph?.close()]);
});

const idleCases: Case[] = [
  { role: 'receiver', outage: 'stopped' },
  { role: 'worker', outage: 'stopped' },
  { role: 'all', outage: 'stopped' },
  { role: 'receiver', outage: 'frozen' },
  { role: 'worker', outage: 'frozen' },
  { role: 'all', outage: 'frozen' },
  { role: 'worker', outage: 'stopped', cluster: true },
  { role: 'all', outage: 'frozen', cluster: true },
];
const name = (c: Case): string => `${c.role}, Redis ${c.outage}${c.cluster ? ' (Cluster)' : ''}`;

/** Up and consuming first, then the outage, noticed, then SIGTERM. */
async function idleOutage(c: Case): Promise<Run> {
  const redis = await startPrivateRedis({ cluster: c.cluster });
  try {
    const app = await spawnApp({
      env: {
        ...OFFLINE_PEERS,
        ...redisEnv(redis, c.cluster),
        APP_ROLE: c.role,
        SHUTDOWN_DRAIN_MS: String(DRAIN_MS),
        LOG_LEVEL: 'info',
      },
    });
    await app.waitForLive();
    await ready(app, 200, 30_000);
    await outage(redis, c.outage);
    await ready(app, 503, 5000);
    // Long enough for the worker's blocking connection to be reconnecting (stopped) or stuck in
    // a block that never returns (frozen).
    await sleep(1000);
    return { app, exit: await terminate(app) };
  } finally {
    redis.thaw();
    await redis.dispose();
  }
}

/** Role all with a slow LLM, one message posted, its turn waiting on the LLM. */
async function startTurn(redis: PrivateRedis, from: string): Promise<SpawnedApp> {
  const app = await spawnApp({
    env: {
      ...redisEnv(redis),
      APP_ROLE: 'all',
      SHUTDOWN_DRAIN_MS: String(DRAIN_MS),
      LOG_LEVEL: 'info',
      META_GRAPH_URL: graph.url,
      LLM_PROVIDER: 'openai',
      LLM_BASE_URL: llm.url,
      TURN_DEBOUNCE_MS: '0',
      MARK_READ: 'false',
      // The lease must outlive the freeze, or the turn is (rightly) lost when Redis returns.
      TURN_LEASE_MS: '15000',
    },
  });
  await app.waitForLive();
  await ready(app, 200, 30_000);
  const text = `in flight for ${from}`;
  const raw = JSON.stringify(textPayload({ from, text }));
  const posted = await httpStatus(`${app.url}/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': signBody(raw) },
    body: raw,
  });
  if (posted !== 200) throw new Error(`POST /webhook answered ${posted}`);
  await waitUntil('the turn to call the LLM', () => llm.requests.some((r) => JSON.stringify(r).includes(text)), 15_000);
  return app;
}

const sentTo = (to: string): number => graph.sends().filter((s) => s.body?.to === to).length;
const FROZEN_TURN = '971500008101';
const LOST_TURN = '971500008102';

/** Frozen mid-turn, SIGTERM, Redis back after 3 s: within the limit. */
async function turnOutlivesFreeze(): Promise<Run> {
  const redis = await startPrivateRedis();
  try {
    const app = await startTurn(redis, FROZEN_TURN);
    redis.freeze();
    app.kill('SIGTERM');
    await sleep(3000);
    redis.thaw();
    return { app, exit: await app.waitExit(EXIT_BOUND_MS + 1000).catch(() => undefined) };
  } finally {
    redis.thaw();
    await redis.dispose();
  }
}

/** Stopped mid-turn for good, SIGTERM. */
async function turnLosesRedis(): Promise<Run> {
  const redis = await startPrivateRedis();
  try {
    const app = await startTurn(redis, LOST_TURN);
    await redis.stop();
    return { app, exit: await terminate(app) };
  } finally {
    await redis.dispose();
  }
}

// Every run starts processes through ts-node (seconds of CPU each): a few at a time, asserted
// one by one. The turns in flight spend most of their time waiting, so they get a lane of their own.
const runs = new Map<string, Promise<Run>>();
beforeAll(async () => {
  [llm, graph] = await Promise.all([FakeLlmServer.start(), FakeGraphServer.start()]);
  llm.latencyMs = 1500;
  const lanes: Promise<unknown>[] = [Promise.resolve(), Promise.resolve(), Promise.resolve()];
  const queue = (lane: number, key: string, run: () => Promise<Run>): void => {
    const result = lanes[lane].then(run);
    lanes[lane] = result.catch(() => undefined);
    runs.set(key, result);
  };
  idleCases.forEach((c, i) => queue(i % 3, name(c), () => idleOutage(c)));
  lanes.push(Promise.resolve());
  queue(3, 'frozen turn', turnOutlivesFreeze);
  queue(3, 'lost turn', turnLosesRedis);
});

/** The run's exit, which must have come within the bound, with code 0. */
function exitOf(run: Run): ExitInfo {
  if (!run.exit) throw new Error(`no exit within ${EXIT_BOUND_MS + 1000} ms of SIGTERM\n${describeRun(run)}`);
  expect({ code: run.exit.code, signal: run.exit.signal }).toEqual({ code: 0, signal: null });
  expect(run.exit.elapsedMs).toBeLessThan(EXIT_BOUND_MS);
  expect(notJson(run.app)).toEqual([]);
  return run.exit;
}

describe('SIGTERM during a Redis outage: exit 0 within the drain plus SHUTDOWN_CLOSE_LIMIT_MS', () => {
  it.each(idleCases.map((c) => name(c)))('%s', async (key) => {
    const exit = exitOf(await runs.get(key)!);
    // Measured exit times, for the record.
    console.info(`${key}: exit 0 ${exit.elapsedMs} ms after SIGTERM (drain ${DRAIN_MS} ms)`);
  });
});

describe('SIGTERM with a turn in flight', () => {
  it('Redis frozen, back within the limit: the turn finishes and its reply goes out, then exit 0', async () => {
    const run = await runs.get('frozen turn')!;
    exitOf(run);
    expect(sentTo(FROZEN_TURN)).toBe(1);
    expect(events(run.app).filter((e) => /cut short/.test(String(e.msg)))).toEqual([]);
  });

  it('Redis stopped for good: the turn is cut short, logged, and the process still exits 0 within the bound', async () => {
    const run = await runs.get('lost turn')!;
    const exit = exitOf(run);
    expect(sentTo(LOST_TURN)).toBe(0);
    expect(events(run.app).filter((e) => /cut short/.test(String(e.msg)))).toHaveLength(1);
    console.info(`turn in flight, Redis stopped: exit 0 ${exit.elapsedMs} ms after SIGTERM`);
  });
});
