import { Test, type TestingModule } from '@nestjs/testing';
import { Redis } from 'ioredis';
import { BspClient } from '../../src/bsp/bsp.client';
import { BspMetrics } from '../../src/bsp/bsp.metrics';
import { BspModule } from '../../src/bsp/bsp.module';
import { BspSendError } from '../../src/bsp/bsp-send.error';
import { type CloudApiBspClient, type CloudApiClientOptions } from '../../src/bsp/cloud-api-bsp.client';
import { Dialog360BspClient } from '../../src/bsp/dialog360-bsp.client';
import { MetaBspClient } from '../../src/bsp/meta-bsp.client';
import { SandboxBspClient, sandboxOutboxKey, type SandboxOutboxEntry } from '../../src/bsp/sandbox-bsp.client';
import { AppConfig } from '../../src/config/app-config';
import { AppConfigModule } from '../../src/config/config.module';
import { validateEnv } from '../../src/config/validate-env';
import { AppLogger } from '../../src/logging/app-logger';
import { LoggingModule } from '../../src/logging/logging.module';
import { MetricsModule } from '../../src/metrics/metrics.module';
import { MetricsService } from '../../src/metrics/metrics.service';
import { RedisConnections } from '../../src/redis/redis-connections.service';
import { RedisKeys } from '../../src/redis/redis-keys';
import { RedisModule } from '../../src/redis/redis.module';
import { FakeGraphServer } from '../fakes/fake-graph.server';
import { deleteKeys } from '../utils/test-app';
import { TEST_D360_SECRET, TEST_PHONE_NUMBER_ID, testEnv } from '../utils/test-env';

const TO = '971500000001';
const META_TOKEN = 'test-meta-token';
const D360_KEY = 'test-d360-key';
// Arabic with diacritics, an RTL mark, Arabic-Indic digits, an emoji ZWJ sequence and a line break.
const ARABIC = 'مرحباً بكم في عيادتنا! \u200fموعدكم يوم الأحد الساعة ١٠:٣٠ 👨‍👩‍👧\nهل تحتاجون إلى مساعدة أخرى؟';

const logger = new AppLogger('silent');
let fake: FakeGraphServer;
const clients: CloudApiBspClient[] = [];

const bspMetrics = (metrics = new MetricsService()): BspMetrics => new BspMetrics(metrics);

function metaClient(bsp = bspMetrics(), env: Record<string, string> = {}, options?: CloudApiClientOptions) {
  const config = new AppConfig(validateEnv(testEnv({ META_GRAPH_URL: fake.url, ...env })));
  const client = new MetaBspClient(config, bsp, logger, options);
  clients.push(client);
  return client;
}

function d360Client(bsp = bspMetrics(), env: Record<string, string> = {}) {
  const config = new AppConfig(
    validateEnv(
      testEnv({
        BSP_PROVIDER: '360dialog',
        D360_BASE_URL: fake.url,
        D360_API_KEY: D360_KEY,
        D360_WEBHOOK_SECRET: TEST_D360_SECRET,
        ...env,
      }),
    ),
  );
  const client = new Dialog360BspClient(config, bsp, logger);
  clients.push(client);
  return client;
}

async function failure(promise: Promise<unknown>): Promise<BspSendError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(BspSendError);
    return err as BspSendError;
  }
  throw new Error('expected the call to fail');
}

async function metricValue(metrics: MetricsService, name: string, labels: Record<string, string>) {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) return undefined;
  const data = await metric.get();
  return data.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value;
}

beforeAll(async () => {
  fake = await FakeGraphServer.start({ accessToken: META_TOKEN, d360ApiKey: D360_KEY });
});

afterEach(() => {
  for (const client of clients.splice(0)) client.onApplicationShutdown();
  fake.reset();
});

afterAll(async () => {
  await fake.close();
});

describe('MetaBspClient against the fake Graph API', () => {
  it('POSTs a text to /{version}/{phone_number_id}/messages with the Bearer token and returns the wamid', async () => {
    const receipt = await metaClient().sendText({
      to: TO,
      body: 'Your booking is confirmed.',
      callbackData: 'turn-7:0',
      replyTo: 'wamid.IN_1',
    });
    const [send] = await fake.waitForSends(1);
    expect(send.method).toBe('POST');
    expect(send.path).toBe(`/v23.0/${TEST_PHONE_NUMBER_ID}/messages`);
    expect(send.headers.authorization).toBe(`Bearer ${META_TOKEN}`);
    expect(send.headers['content-type']).toBe('application/json');
    expect(send.body).toEqual({
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: TO,
      type: 'text',
      text: { preview_url: false, body: 'Your booking is confirmed.' },
      biz_opaque_callback_data: 'turn-7:0',
      context: { message_id: 'wamid.IN_1' },
    });
    expect(receipt.wamid).toBe(send.wamid);
    expect(receipt.wamid).toMatch(/^wamid\.FAKE_/);
  });

  it('sends no empty optional fields, honours META_API_VERSION and returns distinct wamids', async () => {
    const client = metaClient(undefined, { META_API_VERSION: 'v25.0' });
    const a = await client.sendText({ to: TO, body: 'one' });
    const b = await client.sendText({ to: TO, body: 'two' });
    const sends = fake.sends();
    expect(sends.map((s) => s.path)).toEqual([
      `/v25.0/${TEST_PHONE_NUMBER_ID}/messages`,
      `/v25.0/${TEST_PHONE_NUMBER_ID}/messages`,
    ]);
    expect(sends[0].body).toEqual({
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: TO,
      type: 'text',
      text: { preview_url: false, body: 'one' },
    });
    expect(a.wamid).not.toBe(b.wamid);
  });

  it('sends a template with deterministic language and text body parameters', async () => {
    const receipt = await metaClient().sendTemplate({
      to: TO,
      name: 'appointment_reminder',
      language: 'ar',
      bodyParameters: ['أحمد', 'Sun 10:00'],
      callbackData: 'reengage:turn-8',
    });
    const [send] = await fake.waitForSends(1);
    expect(send.body).toEqual({
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: TO,
      type: 'template',
      biz_opaque_callback_data: 'reengage:turn-8',
      template: {
        name: 'appointment_reminder',
        language: { policy: 'deterministic', code: 'ar' },
        components: [
          {
            type: 'body',
            parameters: [
              { type: 'text', text: 'أحمد' },
              { type: 'text', text: 'Sun 10:00' },
            ],
          },
        ],
      },
    });
    expect(receipt.wamid).toBe(send.wamid);
  });

  it('marks read with the typing indicator only when asked, and these are not counted as sends', async () => {
    const client = metaClient();
    await client.markRead({ messageId: 'wamid.IN_2', typing: true });
    await client.markRead({ messageId: 'wamid.IN_3', typing: false });
    expect(fake.sends()).toHaveLength(0);
    const reads = fake.markReads();
    expect(reads.map((r) => r.path)).toEqual([
      `/v23.0/${TEST_PHONE_NUMBER_ID}/messages`,
      `/v23.0/${TEST_PHONE_NUMBER_ID}/messages`,
    ]);
    expect(reads[0].headers.authorization).toBe(`Bearer ${META_TOKEN}`);
    expect(reads[0].body).toEqual({
      messaging_product: 'whatsapp',
      status: 'read',
      message_id: 'wamid.IN_2',
      typing_indicator: { type: 'text' },
    });
    expect(reads[1].body).toEqual({ messaging_product: 'whatsapp', status: 'read', message_id: 'wamid.IN_3' });
  });

  it('addresses a business-scoped user id as recipient instead of to', async () => {
    await metaClient().sendText({ to: 'AE.1234567890123', body: 'hi' });
    const [send] = await fake.waitForSends(1);
    expect(send.body.recipient).toBe('AE.1234567890123');
    expect(send.body).not.toHaveProperty('to');
  });

  it('sends Arabic text unchanged, byte for byte, as UTF-8', async () => {
    await metaClient().sendText({ to: TO, body: ARABIC });
    const [send] = await fake.waitForSends(1);
    expect(send.body.text.body).toBe(ARABIC);
    expect(Buffer.from(send.body.text.body, 'utf8').equals(Buffer.from(ARABIC, 'utf8'))).toBe(true);
    // Not \u-escaped on the wire: the raw request carries the UTF-8 bytes themselves.
    expect(send.rawBody.includes(Buffer.from(ARABIC.split('\n')[0], 'utf8'))).toBe(true);
  });

  describe('errors by kind (branching on error.code)', () => {
    const cases = [
      { code: 131056, kind: 'pair_rate' },
      { code: 131047, kind: 'window_closed' },
      { code: 131026, kind: 'permanent' },
      { code: 130429, kind: 'retry' },
      { code: 132001, kind: 'config', httpStatus: 404 },
      { code: 424242, kind: 'permanent' },
    ] as const;

    it.each(cases)('classifies Graph error $code as $kind, not sent, and counts it', async (c) => {
      const metrics = new MetricsService();
      fake.enqueue({ kind: 'graph-error', code: c.code, httpStatus: 'httpStatus' in c ? c.httpStatus : undefined });
      const err = await failure(metaClient(bspMetrics(metrics)).sendText({ to: TO, body: 'hello', callbackData: 'k' }));
      expect(err).toMatchObject({ code: c.code, kind: c.kind, outcome: 'not_sent' });
      expect(err.httpStatus).toBe('httpStatus' in c ? c.httpStatus : 400);
      expect(err.fbtraceId).toMatch(/^AFakeTrace/);
      expect(err.message).not.toContain('hello');
      expect(await metricValue(metrics, 'tawasul_bsp_errors_total', { code: String(c.code), class: c.kind })).toBe(1);
      expect(fake.sends()).toHaveLength(1);
    });

    it('raises tawasul_config_alert for an expired token (190) and clears it after a later success', async () => {
      const metrics = new MetricsService();
      // Two adapters on one BspMetrics, as BspModule wires them: the second one's success clears
      // what the first one raised.
      const bsp = bspMetrics(metrics);
      const wrong = metaClient(bsp, { META_ACCESS_TOKEN: 'expired-token' });
      const err = await failure(wrong.sendText({ to: TO, body: 'hello' }));
      expect(err).toMatchObject({ code: 190, kind: 'config', outcome: 'not_sent', httpStatus: 401 });
      expect(fake.requests[0].behaviour).toBe('unauthorized');
      expect(await metricValue(metrics, 'tawasul_bsp_errors_total', { code: '190', class: 'config' })).toBe(1);
      expect(await metricValue(metrics, 'tawasul_config_alert', { code: '190' })).toBe(1);

      await metaClient(bsp).sendText({ to: TO, body: 'hello again' });
      expect(await metricValue(metrics, 'tawasul_config_alert', { code: '190' })).toBe(0);
    });

    it('retries a plain 429 (not sent) and a 500 (outcome unknown: the server had the request)', async () => {
      const metrics = new MetricsService();
      const client = metaClient(bspMetrics(metrics));
      fake.enqueue({ kind: 'status', httpStatus: 429 }, { kind: 'status', httpStatus: 500 });
      const throttled = await failure(client.sendText({ to: TO, body: 'a' }));
      expect(throttled).toMatchObject({ code: 429, kind: 'retry', outcome: 'not_sent', httpStatus: 429 });
      const broken = await failure(client.sendText({ to: TO, body: 'b' }));
      expect(broken).toMatchObject({ code: 500, kind: 'retry', outcome: 'unknown', httpStatus: 500 });
      expect(await metricValue(metrics, 'tawasul_bsp_errors_total', { code: '429', class: 'retry' })).toBe(1);
      expect(await metricValue(metrics, 'tawasul_bsp_errors_total', { code: '500', class: 'retry' })).toBe(1);
    });

    it('reports Meta code 131000 on HTTP 500 by its code, as a retry that was not sent', async () => {
      fake.enqueue({ kind: 'graph-error', code: 131000, httpStatus: 500 });
      const err = await failure(metaClient().sendTemplate({ to: TO, name: 'hello', language: 'en' }));
      expect(err).toMatchObject({ code: 131000, kind: 'retry', outcome: 'not_sent', httpStatus: 500 });
    });
  });

  describe('not sent versus unknown outcome', () => {
    it('is not_sent when the connection is refused, and works again once the server is back', async () => {
      await fake.stopListening();
      try {
        const metrics = new MetricsService();
        const client = metaClient(bspMetrics(metrics));
        const err = await failure(client.sendText({ to: TO, body: 'hello', callbackData: 'k' }));
        expect(err).toMatchObject({ code: 'ECONNREFUSED', kind: 'retry', outcome: 'not_sent' });
        expect(err.httpStatus).toBeUndefined();
        expect(fake.requests).toHaveLength(0);
        expect(await metricValue(metrics, 'tawasul_bsp_errors_total', { code: 'ECONNREFUSED', class: 'retry' })).toBe(
          1,
        );
      } finally {
        await fake.startListening();
      }
      const receipt = await metaClient().sendText({ to: TO, body: 'back' });
      expect(receipt.wamid).toBe(fake.sends()[0].wamid);
    });

    it('is unknown when the server read the whole request and never answered (timeout)', async () => {
      fake.enqueue({ kind: 'hang' });
      const started = Date.now();
      const err = await failure(
        metaClient(undefined, {}, { timeoutMs: 300 }).sendText({ to: TO, body: 'hello', callbackData: 'turn-9:1' }),
      );
      expect(err).toMatchObject({ code: 'ETIMEDOUT', kind: 'retry', outcome: 'unknown' });
      expect(Date.now() - started).toBeLessThan(5000);
      // The fake did receive the complete request: exactly why the outcome cannot be "not sent".
      expect(fake.sends()[0].body.biz_opaque_callback_data).toBe('turn-9:1');
    });

    it('is unknown when the connection drops after the whole request was written', async () => {
      fake.enqueue({ kind: 'destroy-after-body' });
      const err = await failure(metaClient().sendText({ to: TO, body: 'hello', callbackData: 'turn-9:2' }));
      expect(err).toMatchObject({ code: 'ECONNRESET', kind: 'retry', outcome: 'unknown' });
      expect(fake.sends()[0].body.biz_opaque_callback_data).toBe('turn-9:2');
    });

    it('waits for a slow answer within the timeout', async () => {
      fake.enqueue({ kind: 'ok', delayMs: 200 });
      const receipt = await metaClient(undefined, {}, { timeoutMs: 2000 }).sendText({ to: TO, body: 'slow' });
      expect(receipt.wamid).toBe(fake.sends()[0].wamid);
    });
  });

  describe('markRead is best effort', () => {
    it('never throws, whatever happens, and still counts the failure', async () => {
      const metrics = new MetricsService();
      const client = metaClient(bspMetrics(metrics), {}, { timeoutMs: 300 });
      fake.enqueue(
        { kind: 'graph-error', code: 131000, httpStatus: 500 },
        { kind: 'hang' },
        { kind: 'destroy-after-body' },
      );
      await expect(client.markRead({ messageId: 'wamid.IN_4', typing: true })).resolves.toBeUndefined();
      await expect(client.markRead({ messageId: 'wamid.IN_5', typing: true })).resolves.toBeUndefined();
      await expect(client.markRead({ messageId: 'wamid.IN_6', typing: true })).resolves.toBeUndefined();
      expect(fake.markReads()).toHaveLength(3);
      expect(await metricValue(metrics, 'tawasul_bsp_errors_total', { code: '131000', class: 'retry' })).toBe(1);
      expect(await metricValue(metrics, 'tawasul_bsp_errors_total', { code: 'ETIMEDOUT', class: 'retry' })).toBe(1);

      await fake.stopListening();
      try {
        await expect(metaClient().markRead({ messageId: 'wamid.IN_7', typing: false })).resolves.toBeUndefined();
      } finally {
        await fake.startListening();
      }
    });
  });
});

describe('Dialog360BspClient against the fake', () => {
  it('POSTs the same Cloud API body to /messages with the D360-API-KEY header', async () => {
    const input = { to: TO, body: ARABIC, callbackData: 'turn-1:0', replyTo: 'wamid.IN_1' };
    const receipt = await d360Client().sendText(input);
    await metaClient().sendText(input);
    const [d360, meta] = await fake.waitForSends(2);
    expect(d360.path).toBe('/messages');
    expect(d360.headers['d360-api-key']).toBe(D360_KEY);
    expect(d360.headers.authorization).toBeUndefined();
    expect(d360.body).toEqual(meta.body);
    expect(d360.rawBody.equals(meta.rawBody)).toBe(true);
    expect(d360.body.text.body).toBe(ARABIC);
    expect(receipt.wamid).toBe(d360.wamid);
  });

  it('sends templates and mark-read with typing to /messages', async () => {
    const client = d360Client();
    await client.sendTemplate({ to: TO, name: 'reengage', language: 'en', bodyParameters: ['x'] });
    await client.markRead({ messageId: 'wamid.IN_9', typing: true });
    expect(fake.sends()[0].path).toBe('/messages');
    expect(fake.sends()[0].body.template).toEqual({
      name: 'reengage',
      language: { policy: 'deterministic', code: 'en' },
      components: [{ type: 'body', parameters: [{ type: 'text', text: 'x' }] }],
    });
    expect(fake.markReads()[0].path).toBe('/messages');
    expect(fake.markReads()[0].headers['d360-api-key']).toBe(D360_KEY);
    expect(fake.markReads()[0].body.typing_indicator).toEqual({ type: 'text' });
  });

  it('classifies a wrong key as config (alert) and passes Meta errors through by code', async () => {
    const metrics = new MetricsService();
    const bsp = bspMetrics(metrics);
    const wrong = await failure(d360Client(bsp, { D360_API_KEY: 'wrong-key' }).sendText({ to: TO, body: 'x' }));
    expect(wrong).toMatchObject({ code: 190, kind: 'config', httpStatus: 401 });
    expect(await metricValue(metrics, 'tawasul_config_alert', { code: '190' })).toBe(1);

    fake.enqueue({ kind: 'graph-error', code: 131047 }, { kind: 'destroy-after-body' });
    const client = d360Client(bsp);
    expect(await failure(client.sendText({ to: TO, body: 'x' }))).toMatchObject({
      kind: 'window_closed',
      outcome: 'not_sent',
    });
    expect(await failure(client.sendText({ to: TO, body: 'x' }))).toMatchObject({
      code: 'ECONNRESET',
      outcome: 'unknown',
    });
  });
});

describe('SandboxBspClient', () => {
  let config: AppConfig;
  let connections: RedisConnections;
  let keys: RedisKeys;
  let redis: Redis;

  beforeAll(() => {
    // META_GRAPH_URL points at the fake only to prove the sandbox never touches the network.
    config = new AppConfig(validateEnv(testEnv({ BSP_PROVIDER: 'sandbox', META_GRAPH_URL: fake.url })));
    connections = new RedisConnections(config, logger);
    keys = new RedisKeys(config.redisKeyRoot);
    redis = new Redis(config.env.REDIS_URL, { maxRetriesPerRequest: 1 });
  });

  afterEach(async () => {
    await deleteKeys(redis, config.redisKeyRoot);
  });

  afterAll(async () => {
    await connections.onApplicationShutdown();
    redis.disconnect();
  });

  const outbox = async (): Promise<SandboxOutboxEntry[]> =>
    (await redis.lrange(sandboxOutboxKey(keys), 0, -1)).map((raw) => JSON.parse(raw) as SandboxOutboxEntry);

  it('records every send and mark-read in the capped outbox under the prefix, newest first, without network', async () => {
    const sandbox = new SandboxBspClient(connections.producer, keys, logger);
    const text = await sandbox.sendText({ to: TO, body: ARABIC, callbackData: 'turn-1:0', replyTo: 'wamid.IN_1' });
    const template = await sandbox.sendTemplate({ to: TO, name: 'reengage', language: 'ar', bodyParameters: ['أحمد'] });
    await sandbox.markRead({ messageId: 'wamid.IN_1', typing: true });

    expect(sandboxOutboxKey(keys)).toBe(`{${config.env.REDIS_PREFIX}}:sandbox:outbox`);
    const entries = await outbox();
    expect(entries.map((e) => e.operation)).toEqual(['read', 'template', 'text']);
    expect(entries[2].id).toBe(text.wamid);
    expect(entries[1].id).toBe(template.wamid);
    expect(entries[0].id).toBeNull();
    expect(text.wamid).toMatch(/^wamid\.SANDBOX_/);
    expect(text.wamid).not.toBe(template.wamid);
    expect(entries[2].payload).toEqual({
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: TO,
      type: 'text',
      text: { preview_url: false, body: ARABIC },
      biz_opaque_callback_data: 'turn-1:0',
      context: { message_id: 'wamid.IN_1' },
    });
    expect((entries[1].payload.template as any).components[0].parameters[0].text).toBe('أحمد');
    expect(entries[0].payload).toEqual({
      messaging_product: 'whatsapp',
      status: 'read',
      message_id: 'wamid.IN_1',
      typing_indicator: { type: 'text' },
    });
    expect(Math.abs(entries[2].at - Date.now())).toBeLessThan(60_000);
    expect(fake.requests).toHaveLength(0);
  });

  it('keeps only the newest entries up to the cap', async () => {
    const sandbox = new SandboxBspClient(connections.producer, keys, logger, 3);
    for (let i = 0; i < 5; i++) await sandbox.sendText({ to: TO, body: `m${i}` });
    const entries = await outbox();
    expect(entries.map((e) => (e.payload.text as { body: string }).body)).toEqual(['m4', 'm3', 'm2']);
  });

  it('fails a send as not_sent when Redis is unreachable, and markRead still never throws', async () => {
    // Like the producer connection (no offline queue), aimed at a port where nothing listens.
    // A short disconnectTimeout: ioredis otherwise keeps a 2 s timer alive after disconnect().
    const dead = new Redis({ host: '127.0.0.1', port: 1, enableOfflineQueue: false, disconnectTimeout: 10 });
    dead.on('error', () => undefined);
    try {
      const sandbox = new SandboxBspClient(dead, keys, logger);
      const err = await failure(sandbox.sendText({ to: TO, body: 'x' }));
      expect(err).toMatchObject({ code: 'EREDIS', kind: 'retry', outcome: 'not_sent' });
      await expect(sandbox.markRead({ messageId: 'wamid.X', typing: false })).resolves.toBeUndefined();
    } finally {
      dead.disconnect();
    }
  });
});

describe('BspModule', () => {
  /** BspModule and the modules it depends on, compiled on their own. */
  const compileBspModule = (config: AppConfig): Promise<TestingModule> =>
    Test.createTestingModule({
      imports: [
        AppConfigModule.forRoot(config),
        LoggingModule,
        MetricsModule.forRoot({ servePublicly: false }),
        RedisModule,
        BspModule,
      ],
    }).compile();

  const cases = [
    { provider: 'meta', type: MetaBspClient, env: {} },
    {
      provider: '360dialog',
      type: Dialog360BspClient,
      env: { D360_API_KEY: D360_KEY, D360_WEBHOOK_SECRET: TEST_D360_SECRET },
    },
    { provider: 'sandbox', type: SandboxBspClient, env: {} },
  ] as const;

  it.each(cases)('binds BspClient to the $provider adapter from BSP_PROVIDER', async ({ provider, type, env }) => {
    const config = new AppConfig(validateEnv(testEnv({ BSP_PROVIDER: provider, ...env })));
    const moduleRef = await compileBspModule(config);
    try {
      const client = moduleRef.get(BspClient);
      expect(client).toBeInstanceOf(type);
      expect(client.provider).toBe(provider);
    } finally {
      await moduleRef.close();
    }
  });

  it('hands its one BspMetrics to the adapter, so the alerts it reports are the ones the adapter raised', async () => {
    const config = new AppConfig(
      validateEnv(testEnv({ BSP_PROVIDER: 'meta', META_GRAPH_URL: fake.url, META_ACCESS_TOKEN: 'expired-token' })),
    );
    const moduleRef = await compileBspModule(config);
    try {
      await failure(moduleRef.get(BspClient).sendText({ to: TO, body: 'x' }));
      expect(moduleRef.get(BspMetrics).alerts).toEqual(['190']);
    } finally {
      await moduleRef.close();
    }
  });
});
