import { type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { AppConfig } from '../../src/config/app-config';
import { validateEnv } from '../../src/config/validate-env';
import { createApp } from '../../src/http/create-app';
import { RedisKeys } from '../../src/redis/redis-keys';
import { masterOfSlot } from './redis-cluster';
import { freePort } from './spawn-app';
import { signBody } from './sign';
import { testEnv } from './test-env';

export interface TestApp {
  app: NestFastifyApplication;
  config: AppConfig;
  url: string;
  keys: RedisKeys;
  /**
   * A plain client for assertions, on the same Redis, outside the app. On a Cluster it is connected
   * to the master of the prefix's slot, which holds every key of the app.
   */
  redis: Redis;
  /** POST /webhook with a correct signature over exactly these bytes. */
  postSigned(body: string | Record<string, unknown>, headers?: Record<string, string>): Promise<Response>;
  close(): Promise<void>;
}

/**
 * Starts the real app (the production createApp wiring) in this process on a free loopback port,
 * with its own REDIS_PREFIX. close() stops it and deletes its keys, and only its keys.
 * The port is the one its config names: the app reaches itself there (the sandbox's demo clinic,
 * AppConfig.clinicApiBaseUrl), so a port the config does not know would send those calls elsewhere.
 */
export async function startTestApp(overrides: Record<string, string | undefined> = {}): Promise<TestApp> {
  for (let attempt = 1; ; attempt++) {
    const port = overrides.PORT ?? String(await freePort());
    const config = new AppConfig(validateEnv(testEnv({ ...overrides, PORT: port })));
    const app = await createApp(config);
    try {
      await app.listen({ port: config.env.PORT, host: '127.0.0.1' });
    } catch (err) {
      await app.close();
      // Taken between freePort and listen: another one.
      if (!overrides.PORT && attempt < 3 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE') continue;
      throw err;
    }
    return withHelpers(app, config);
  }
}

async function withHelpers(app: NestFastifyApplication, config: AppConfig): Promise<TestApp> {
  const url = `http://127.0.0.1:${config.env.PORT}`;
  const redis = await assertionClient(config).catch(async (err: unknown) => {
    await app.close();
    throw err;
  });
  const keys = new RedisKeys(config.redisKeyRoot);
  return {
    app,
    config,
    url,
    keys,
    redis,
    postSigned: (body, headers = {}) => {
      const raw = typeof body === 'string' ? body : JSON.stringify(body);
      return fetch(`${url}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-hub-signature-256': signBody(raw), ...headers },
        body: raw,
      });
    },
    close: async () => {
      await app.close();
      await deleteKeys(redis, config.redisKeyRoot);
      redis.disconnect();
    },
  };
}

async function assertionClient(config: AppConfig): Promise<Redis> {
  const options = { lazyConnect: false, maxRetriesPerRequest: 1 };
  const [seed] = config.clusterNodes;
  if (!seed) return new Redis(config.env.REDIS_URL, options);
  // A Cluster client would send SCAN to one arbitrary master; the slot's master has all the keys.
  const url = new URL(config.env.REDIS_URL);
  const credentials = {
    username: decodeURIComponent(url.username) || undefined,
    password: decodeURIComponent(url.password) || undefined,
    tls: url.protocol === 'rediss:' ? {} : undefined,
  };
  const probe = new Redis({ ...seed, ...credentials, ...options });
  try {
    const slot = Number(await probe.call('CLUSTER', 'KEYSLOT', config.redisKeyRoot));
    return new Redis({ ...(await masterOfSlot(probe, slot)), ...credentials, ...options });
  } finally {
    probe.disconnect();
  }
}

/** Deletes every key under one hash-tagged prefix (SCAN, never FLUSHDB: Redis may be shared). */
export async function deleteKeys(redis: Redis, root: string): Promise<void> {
  const pattern = `${root.replace(/[{}[\]*?]/g, (c) => `\\${c}`)}*`;
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    cursor = next;
    if (batch.length > 0) await redis.del(...batch);
  } while (cursor !== '0');
}

/** The items waiting in one lane's inbox, parsed. */
export async function inboxItems(t: TestApp, lane: string): Promise<Record<string, any>[]> {
  const raw = await t.redis.lrange(t.keys.inbox(lane), 0, -1);
  return raw.map((r) => JSON.parse(r) as Record<string, any>);
}
