import { BullModule, getQueueToken, Processor, WorkerHost } from '@nestjs/bullmq';
import { type INestApplicationContext } from '@nestjs/common';
import { ModulesContainer } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { TURNS_QUEUE } from '../../src/queue/queue.constants';
import { textPayload } from '../utils/meta-payloads';
import { waitUntil } from '../utils/spawn-app';
import { deleteKeys, startTestApp, type TestApp } from '../utils/test-app';
import { TEST_VERIFY_TOKEN, uniquePrefix } from '../utils/test-env';

/**
 * Each role loads only its own parts. A receiver enqueues but never consumes; a worker
 * serves only /health/* and /metrics over HTTP.
 */

/**
 * Every BullMQ Worker reachable from the Nest container: providers that are Workers, and Workers
 * held by providers (WorkerHost._worker, BullExplorer.workers, a service keeping its own Worker).
 */
function bullWorkers(app: INestApplicationContext): Worker[] {
  const found = new Set<Worker>();
  const visit = (value: unknown): void => {
    if (value instanceof Worker) found.add(value);
    else if (Array.isArray(value)) for (const item of value) if (item instanceof Worker) found.add(item);
  };
  for (const module of app.get(ModulesContainer).values()) {
    for (const wrapper of module.providers.values()) {
      const instance: unknown = wrapper.instance;
      if (instance === null || typeof instance !== 'object') continue;
      visit(instance);
      for (const value of Object.values(instance)) visit(value);
    }
  }
  return [...found];
}

/**
 * Redis connections that consume under this prefix: BullMQ names a Worker's blocking connection
 * `<prefix>:<base64 queue name>[:w:<name>]`, whatever the queue.
 */
async function consumerConnections(redis: Redis, root: string): Promise<string[]> {
  const list = (await redis.call('CLIENT', 'LIST')) as string;
  const names = list.split('\n').map((line) => /(?:^| )name=(\S*)/.exec(line)?.[1] ?? '');
  return names.filter(
    (name) => name.startsWith(`${root}:`) && /^[A-Za-z0-9+/=]+(?::w:.*)?$/.test(name.slice(root.length + 1)),
  );
}

/**
 * startTestApp, then waits until any Workers the role runs have their connections up: closing a
 * BullMQ Worker whose connections are still initialising rejects "Connection is closed." with no
 * one to catch it (BullMQ 5), which would fail this suite for a reason that is not its subject.
 */
async function startRole(overrides: Record<string, string>): Promise<TestApp> {
  const t = await startTestApp(overrides);
  await Promise.all(bullWorkers(t.app).map((w) => w.waitUntilReady()));
  return t;
}

async function status(url: string, init?: RequestInit): Promise<number> {
  const res = await fetch(url, init);
  await res.arrayBuffer();
  return res.status;
}

const verifyUrl = (t: TestApp): string =>
  `${t.url}/webhook?hub.mode=subscribe&hub.verify_token=${TEST_VERIFY_TOKEN}&hub.challenge=4242`;

async function expectProbesAndMetrics(t: TestApp): Promise<void> {
  expect(await status(`${t.url}/health/live`)).toBe(200);
  expect(await status(`${t.url}/health/ready`)).toBe(200);
  const metrics = await fetch(`${t.url}/metrics`);
  expect(metrics.status).toBe(200);
  expect(await metrics.text()).toContain('tawasul_webhook_requests_total');
}

async function expectWebhookServed(t: TestApp): Promise<void> {
  const verify = await fetch(verifyUrl(t));
  expect(verify.status).toBe(200);
  expect(await verify.text()).toBe('4242');
  expect((await t.postSigned(textPayload())).status).toBe(200);
}

describe('APP_ROLE=receiver', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startRole({ APP_ROLE: 'receiver' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('serves GET and POST /webhook, the probes and /metrics', async () => {
    await expectWebhookServed(t);
    await expectProbesAndMetrics(t);
  });

  it('can enqueue: the turns queue is registered', () => {
    expect(t.app.get<Queue>(getQueueToken(TURNS_QUEUE), { strict: false })).toBeInstanceOf(Queue);
  });

  it('never consumes: no BullMQ Worker in the container and no consumer connection in Redis', async () => {
    expect(bullWorkers(t.app)).toEqual([]);
    // A webhook has gone through ingest and wake-up: the app is fully up.
    expect((await t.postSigned(textPayload())).status).toBe(200);
    expect(await consumerConnections(t.redis, t.config.redisKeyRoot)).toEqual([]);
  });
});

describe('APP_ROLE=worker', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startRole({ APP_ROLE: 'worker' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('serves the probes and /metrics', async () => {
    await expectProbesAndMetrics(t);
  });

  it('has no webhook routes, signed or not', async () => {
    expect(await status(verifyUrl(t))).toBe(404);
    expect((await t.postSigned(textPayload())).status).toBe(404);
  });

  it.each([
    ['GET', '/'],
    ['GET', '/sandbox'],
    ['POST', '/chatwoot/webhook?token=x'],
    ['POST', '/v1/messages'],
    ['GET', '/v1/costs?from=2026-01-01&to=2026-01-31'],
    ['GET', '/admin/queues'],
    ['GET', '/health'],
    ['GET', '/nope'],
  ])('%s %s is 404', async (method, path) => {
    const init: RequestInit = { method, headers: { authorization: 'Bearer x' } };
    if (method === 'POST') Object.assign(init, { body: '{}', headers: { 'content-type': 'application/json' } });
    expect(await status(`${t.url}${path}`, init)).toBe(404);
  });
});

describe('APP_ROLE=all', () => {
  let t: TestApp;
  beforeAll(async () => {
    // Role all answers what it ingests: its sends must not leave this machine (nothing listens on 9).
    t = await startRole({ APP_ROLE: 'all', META_GRAPH_URL: 'http://127.0.0.1:9' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('serves the webhook, the probes and /metrics', async () => {
    await expectWebhookServed(t);
    await expectProbesAndMetrics(t);
  });
});

/**
 * The receiver assertions above must be able to fail: a module that registers a @Processor the
 * way the worker does is seen by both detectors.
 */
describe('worker detection (self-check)', () => {
  @Processor('probe')
  class ProbeProcessor extends WorkerHost {
    process(): Promise<void> {
      return Promise.resolve();
    }
  }

  it('finds a registered @Processor in the container and its consumer connection in Redis', async () => {
    const root = `{${uniquePrefix()}}`;
    const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
    const { hostname, port } = new URL(redisUrl);
    const moduleRef = await Test.createTestingModule({
      imports: [
        BullModule.forRoot({ connection: { host: hostname, port: Number(port || 6379) }, prefix: root }),
        BullModule.registerQueue({ name: 'probe' }),
      ],
      providers: [ProbeProcessor],
    }).compile();
    const app = await moduleRef.init();
    const redis = new Redis(redisUrl);
    try {
      const workers = bullWorkers(app);
      expect(workers).toHaveLength(1);
      // Closing a worker whose connections are still opening makes BullMQ emit an unhandled
      // 'Connection is closed' error (seen on a loaded CI machine): let it finish opening first.
      await workers[0].waitUntilReady();
      await app.get<Queue>(getQueueToken('probe')).waitUntilReady();
      await waitUntil(
        'a consumer connection',
        async () => (await consumerConnections(redis, root)).length === 1,
        10_000,
      );
    } finally {
      await app.close();
      await deleteKeys(redis, root);
      redis.disconnect();
    }
  });
});
