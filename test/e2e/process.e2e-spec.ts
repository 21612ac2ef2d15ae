import { Redis } from 'ioredis';
import { RedisKeys } from '../../src/redis/redis-keys';
import { freshWamid, textPayload } from '../utils/meta-payloads';
import { signBody } from '../utils/sign';
import {
  type ExitInfo,
  freePort,
  httpStatus,
  killSpawnedApps,
  type RedisServer,
  spawnApp,
  type SpawnedApp,
  startRedisServer,
  waitUntil,
} from '../utils/spawn-app';

/**
 * The process as operators run it: src/main.ts in a child process, exit codes, signals, stderr.
 * SPEC §1 (boot flag), §2 (config errors), §4.16 (health and shutdown), §5 (eviction policy).
 */

// Every case starts a process through ts-node (seconds of CPU each): generous limits for a busy CI.
jest.setTimeout(120_000);

const apps: SpawnedApp[] = [];
// Role all now answers what it ingests: sends must not leave this machine (nothing listens on port 9).
const OFFLINE_PEERS = { META_GRAPH_URL: 'http://127.0.0.1:9', D360_BASE_URL: 'http://127.0.0.1:9' };

/**
 * What NODE_ENV=production needs besides explicit providers (SPEC §2): no sandbox, a long
 * LOG_HASH_KEY and webhook secret, /metrics on its own port, and (for OFFLINE_PEERS) plain http.
 */
async function production(): Promise<Record<string, string>> {
  return {
    NODE_ENV: 'production',
    BSP_PROVIDER: 'meta',
    LLM_PROVIDER: 'offline',
    WHATSAPP_APP_SECRET: 'production-app-secret-0123456789',
    LOG_HASH_KEY: 'production-log-hash-key-0123456789',
    MANAGEMENT_PORT: String(await freePort()),
    ALLOW_PLAIN_HTTP: 'true',
  };
}

async function start(env: Record<string, string | undefined> = {}, args: string[] = []): Promise<SpawnedApp> {
  const app = await spawnApp({ env: { ...OFFLINE_PEERS, ...env }, args });
  apps.push(app);
  return app;
}

afterAll(async () => {
  await killSpawnedApps();
  // Only children that used the shared Redis left keys there; private servers are thrown away.
  const shared = apps.filter((a) => a.env.REDIS_URL === (process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'));
  await Promise.all(shared.map((a) => a.deleteRedisKeys()));
});

function postSigned(app: SpawnedApp, payload: Record<string, unknown>): Promise<number> {
  const raw = JSON.stringify(payload);
  return httpStatus(`${app.url}/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': signBody(raw) },
    body: raw,
  });
}

/** pino lines of the child's stdout, parsed (anything else is ignored). */
function logEvents(app: SpawnedApp): Record<string, any>[] {
  return app
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, any>);
}

describe('configuration errors (SPEC §2)', () => {
  interface Case {
    name: string;
    env: Record<string, string | undefined>;
    /** Variable -> what its line must say it expects. */
    expected: Record<string, RegExp>;
  }
  const cases: Case[] = [
    { name: 'PORT=abc', env: { PORT: 'abc' }, expected: { PORT: /port number/ } },
    {
      name: 'meta receiver without app secret and verify token',
      env: { APP_ROLE: 'receiver', WHATSAPP_APP_SECRET: undefined, WHATSAPP_VERIFY_TOKEN: undefined },
      expected: { WHATSAPP_APP_SECRET: /required/, WHATSAPP_VERIFY_TOKEN: /required/ },
    },
    {
      // A worker never verifies webhooks: the app secret is not its business, the send token is.
      name: 'meta worker without access token (and without the receiver secrets)',
      env: {
        APP_ROLE: 'worker',
        META_ACCESS_TOKEN: undefined,
        WHATSAPP_APP_SECRET: undefined,
        WHATSAPP_VERIFY_TOKEN: undefined,
      },
      expected: { META_ACCESS_TOKEN: /required/ },
    },
    {
      name: 'production without explicit providers',
      env: {
        NODE_ENV: 'production',
        BSP_PROVIDER: undefined,
        LLM_PROVIDER: undefined,
        WHATSAPP_APP_SECRET: undefined,
        LOG_HASH_KEY: 'production-log-hash-key-0123456789',
        MANAGEMENT_PORT: '9464',
        ALLOW_PLAIN_HTTP: 'true',
      },
      expected: { BSP_PROVIDER: /explicitly/, LLM_PROVIDER: /explicitly/ },
    },
    {
      name: 'production with the sandbox, a short LOG_HASH_KEY and no MANAGEMENT_PORT',
      env: {
        NODE_ENV: 'production',
        BSP_PROVIDER: 'sandbox',
        LLM_PROVIDER: 'offline',
        WHATSAPP_APP_SECRET: undefined,
        LOG_HASH_KEY: 'short',
        ALLOW_PLAIN_HTTP: 'true',
      },
      expected: { BSP_PROVIDER: /sandbox is refused/, LOG_HASH_KEY: /at least 32/, MANAGEMENT_PORT: /required/ },
    },
    { name: 'APP_ROLE=bogus', env: { APP_ROLE: 'bogus' }, expected: { APP_ROLE: /receiver, worker, all/ } },
    {
      name: 'openai worker without LLM_BASE_URL',
      env: { APP_ROLE: 'worker', LLM_PROVIDER: 'openai', LLM_BASE_URL: undefined },
      expected: { LLM_BASE_URL: /required/ },
    },
  ];

  // Each case is a process start: two at a time (CI has 2 cores), asserted one by one.
  const runs = new Map<string, Promise<{ app: SpawnedApp; exit: ExitInfo }>>();
  beforeAll(() => {
    const lanes: Promise<unknown>[] = [Promise.resolve(), Promise.resolve()];
    cases.forEach((c, i) => {
      const run = lanes[i % 2]
        .then(() => start(c.env))
        .then(async (app) => ({ app, exit: await app.waitExit(60_000) }));
      lanes[i % 2] = run.catch(() => undefined);
      runs.set(c.name, run);
    });
  });

  it.each(cases)('$name: exit 1, one line per bad variable, no stack trace', async (c) => {
    const { app, exit } = await runs.get(c.name)!;
    expect(exit.code).toBe(1);
    const lines = app
      .stderr()
      .split('\n')
      .filter((l) => l.trim() !== '');
    expect(lines.filter((l) => /^\s+at /.test(l))).toEqual([]);
    // Every stderr line is a config line, and there is exactly one per bad variable.
    const named = lines.map((l) => /^config error: ([A-Z0-9_]+): (.+)$/.exec(l));
    expect(named.every((m) => m !== null)).toBe(true);
    const variables = named.map((m) => m![1]);
    expect([...variables].sort()).toEqual(Object.keys(c.expected).sort());
    for (const m of named) expect(m![2]).toMatch(c.expected[m![1]]);
    expect(app.stdout()).not.toMatch(/tawasul started/);
  });
});

describe('the --role flag (SPEC §1)', () => {
  it('--role=worker overrides APP_ROLE=receiver', async () => {
    const app = await start({ APP_ROLE: 'receiver' }, ['--role=worker']);
    await app.waitForLive();
    expect(await postSigned(app, textPayload())).toBe(404);
    expect(await httpStatus(`${app.url}/webhook?hub.mode=subscribe`)).toBe(404);
    expect(await httpStatus(`${app.url}/health/live`)).toBe(200);
  });

  it('--role receiver (space form) overrides APP_ROLE=worker', async () => {
    const app = await start({ APP_ROLE: 'worker' }, ['--role', 'receiver']);
    await app.waitForLive();
    expect(await postSigned(app, textPayload())).toBe(200);
    expect(await httpStatus(`${app.url}/health/live`)).toBe(200);
  });
});

describe('SIGTERM (SPEC §4.16)', () => {
  it('role all: ready turns 503 at once, live and POST /webhook keep serving through the drain, then exit 0', async () => {
    const drainMs = 1500;
    const app = await start({ APP_ROLE: 'all', SHUTDOWN_DRAIN_MS: String(drainMs) });
    await app.waitForLive();
    expect(await httpStatus(`${app.url}/health/ready`)).toBe(200);

    app.kill('SIGTERM');
    const signalledAt = Date.now();
    await waitUntil('ready 503', async () => (await httpStatus(`${app.url}/health/ready`)) === 503, drainMs);
    // "At once": well inside the drain, not at its end.
    expect(Date.now() - signalledAt).toBeLessThan(drainMs / 2);
    expect(await httpStatus(`${app.url}/health/live`)).toBe(200);
    const wamid = freshWamid();
    expect(await postSigned(app, textPayload({ id: wamid }))).toBe(200);
    // The message accepted during the drain went through ingest (a worker may already have taken
    // it from the inbox, so the dedup record is what proves it).
    const redis = new Redis(app.env.REDIS_URL);
    try {
      expect(await redis.exists(new RedisKeys(`{${app.env.REDIS_PREFIX}}`).dedup(`m:${wamid}`))).toBe(1);
    } finally {
      redis.disconnect();
    }
    expect(app.running()).toBe(true);

    const exit = await app.waitExit(drainMs + 8000);
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.elapsedMs).toBeGreaterThanOrEqual(drainMs - 100);
  });

  it('role worker: exits 0 promptly (no HTTP drain for a worker)', async () => {
    // A long drain setting proves the worker does not wait for it.
    const app = await start({ APP_ROLE: 'worker', SHUTDOWN_DRAIN_MS: '10000' });
    await app.waitForLive();
    app.kill('SIGTERM');
    const exit = await app.waitExit(8000);
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.elapsedMs).toBeLessThan(5000);
  });
});

describe('MANAGEMENT_PORT (SPEC §2, §3)', () => {
  it('moves /metrics off the main port; health stays on the main port', async () => {
    const managementPort = await freePort();
    const app = await start({ MANAGEMENT_PORT: String(managementPort) });
    await app.waitForLive();
    expect(await postSigned(app, textPayload())).toBe(200);
    expect(await httpStatus(`${app.url}/metrics`)).toBe(404);
    expect(await httpStatus(`${app.url}/health/live`)).toBe(200);

    // The same registry the app records into, not an empty one (the count is recorded as the
    // response finishes, hence the short wait).
    const accepted = /^tawasul_webhook_requests_total\{outcome="accepted"\} 1$/m;
    let text = '';
    await waitUntil(
      'the accepted webhook on the management port',
      async () => {
        const res = await fetch(`http://127.0.0.1:${managementPort}/metrics`);
        expect(res.status).toBe(200);
        text = await res.text();
        return accepted.test(text);
      },
      5000,
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n${text}`);
    });
  });
});

describe('Redis eviction policy at start-up (SPEC §5)', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedisServer(['--maxmemory-policy', 'allkeys-lru']);
  });
  afterAll(async () => {
    await redis?.stop();
  });
  it('production refuses to start on allkeys-lru', async () => {
    const app = await start({ ...(await production()), REDIS_URL: redis.url, LOG_LEVEL: 'info' });
    const exit = await app.waitExit(20_000);
    expect(exit.code).toBe(1);
    expect(`${app.stdout()}${app.stderr()}`).toMatch(/maxmemory-policy/);
  });

  it('development starts on allkeys-lru and warns loudly', async () => {
    const app = await start({ NODE_ENV: 'development', REDIS_URL: redis.url, LOG_LEVEL: 'info' });
    await app.waitForLive();
    await app.waitForOutput(/maxmemory-policy/);
    const warnings = logEvents(app).filter((e) => e.level >= 40 && /maxmemory-policy/.test(String(e.msg)));
    expect(warnings.length).toBeGreaterThan(0);
    expect(app.running()).toBe(true);
  });

  it('production starts on noeviction, without the warning', async () => {
    await redis.client().config('SET', 'maxmemory-policy', 'noeviction');
    const app = await start({ ...(await production()), REDIS_URL: redis.url, LOG_LEVEL: 'info' });
    await app.waitForLive();
    await waitUntil('ready 200', async () => (await httpStatus(`${app.url}/health/ready`)) === 200, 10_000);
    await app.waitForOutput(/tawasul started/);
    expect(`${app.stdout()}${app.stderr()}`).not.toMatch(/maxmemory-policy/);
  });
});

describe('Redis unreachable at start-up (SPEC §4.16)', () => {
  let redis: RedisServer | undefined;
  afterAll(async () => {
    await redis?.stop();
  });

  it('starts anyway: live 200, ready 503; ready turns 200 once Redis appears, without a restart', async () => {
    const port = await freePort();
    const app = await start({ NODE_ENV: 'development', REDIS_URL: `redis://127.0.0.1:${port}` });
    await app.waitForLive();
    expect(await httpStatus(`${app.url}/health/ready`)).toBe(503);
    expect(await httpStatus(`${app.url}/health/live`)).toBe(200);
    expect(app.running()).toBe(true);

    redis = await startRedisServer([], port);
    await waitUntil('ready 200', async () => (await httpStatus(`${app.url}/health/ready`)) === 200, 15_000);
    expect(app.running()).toBe(true);
  });

  it('production: the deferred policy check still refuses an evicting Redis once it appears', async () => {
    const port = await freePort();
    const app = await start({ ...(await production()), REDIS_URL: `redis://127.0.0.1:${port}`, LOG_LEVEL: 'info' });
    await app.waitForLive();
    const late = await startRedisServer(['--maxmemory-policy', 'allkeys-lru'], port);
    try {
      const exit = await app.waitExit(20_000);
      expect(exit.code).toBe(1);
      expect(app.stdout()).toMatch(/maxmemory-policy/);
    } finally {
      await late.stop();
    }
  });
});
