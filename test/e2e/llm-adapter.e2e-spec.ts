import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import { AppConfig } from '../../src/config/app-config';
import { AppConfigModule } from '../../src/config/config.module';
import { validateEnv } from '../../src/config/validate-env';
import { CannedMessages } from '../../src/llm/canned-messages';
import { LlmClient, LlmError, type LlmFailureKind, type LlmRequest } from '../../src/llm/llm.client';
import { LlmConcurrencyLimiter, llmSlotsKey } from '../../src/llm/llm-concurrency.limiter';
import { LlmModule } from '../../src/llm/llm.module';
import { buildLlmRequest } from '../../src/llm/llm-request.builder';
import { OfflineLlmClient } from '../../src/llm/offline-llm.client';
import { LLM_IDLE_SOCKET_MS, OpenAiLlmClient, type OpenAiLlmClientOptions } from '../../src/llm/openai-llm.client';
import { SystemPromptLoader } from '../../src/llm/system-prompt.loader';
import { AppLogger } from '../../src/logging/app-logger';
import { LoggingModule } from '../../src/logging/logging.module';
import { MetricsModule } from '../../src/metrics/metrics.module';
import { MetricsService } from '../../src/metrics/metrics.service';
import { RedisConnections } from '../../src/redis/redis-connections.service';
import { RedisKeys } from '../../src/redis/redis-keys';
import { RedisModule } from '../../src/redis/redis.module';
import { waitUntil } from '../utils/wait';
import { FakeLlmServer, type FakeLlmMode, REASONING_TEXT } from '../fakes/fake-llm.server';
import { deleteKeys } from '../utils/test-app';
import { testEnv } from '../utils/test-env';

const logger = new AppLogger('silent');
const PATIENT_TEXT = 'PATIENT-PRIVATE: I have chest pain since Monday';

function configFor(overrides: Record<string, string | undefined> = {}): AppConfig {
  return new AppConfig(validateEnv(testEnv(overrides)));
}

async function failureOf(promise: Promise<unknown>): Promise<LlmError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(LlmError);
    return err as LlmError;
  }
  throw new Error('expected the call to fail');
}

const failureCount = async (metrics: MetricsService, kind: LlmFailureKind): Promise<number> =>
  (await metrics.llmFailures.get()).values.find((v) => v.labels.kind === kind)?.value ?? 0;

const sampleRequest = (turn = PATIENT_TEXT): LlmRequest =>
  buildLlmRequest({
    systemPrompt: 'You are the receptionist of Test Clinic.',
    history: [
      { role: 'user', text: 'Hello' },
      { role: 'assistant', text: 'Welcome! May I have your name?' },
      { role: 'user', text: 'Sara' },
      { role: 'assistant', text: 'Thank you, Sara. What is the reason for your visit?' },
    ],
    turnMessages: [turn, 'second line'],
    user: 'chat-3f9a1c2b',
  });

describe('OpenAiLlmClient against a fake vLLM', () => {
  let fake: FakeLlmServer;
  const clients: OpenAiLlmClient[] = [];

  const newClient = (
    overrides: Record<string, string | undefined> = {},
    options: OpenAiLlmClientOptions = {},
  ): { client: OpenAiLlmClient; metrics: MetricsService } => {
    const config = configFor({
      LLM_PROVIDER: 'openai',
      LLM_BASE_URL: fake.url,
      LLM_MODEL: 'wa-bot',
      LLM_TIMEOUT_MS: '3000',
      ...overrides,
    });
    const metrics = new MetricsService();
    const client = new OpenAiLlmClient(config, metrics, logger, options);
    clients.push(client);
    return { client, metrics };
  };

  beforeAll(async () => {
    fake = await FakeLlmServer.start();
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.onApplicationShutdown();
    fake.reset();
  });
  afterAll(async () => {
    await fake.close();
  });

  it('posts the chat-completions body: model, messages in order, temperature, max_tokens, no stream, user', async () => {
    const { client } = newClient();
    const request = sampleRequest();
    const reply = await client.complete(request);

    expect(reply).toEqual({
      content: `Echo: ${PATIENT_TEXT}\nsecond line`,
      finishReason: 'stop',
      latencyMs: expect.any(Number),
    });
    expect(fake.requests).toHaveLength(1);
    const { body, headers } = fake.requests[0];
    expect(body).toEqual({
      model: 'wa-bot',
      messages: [
        { role: 'system', content: 'You are the receptionist of Test Clinic.' },
        { role: 'user', content: 'Hello' },
        { role: 'assistant', content: 'Welcome! May I have your name?' },
        { role: 'user', content: 'Sara' },
        { role: 'assistant', content: 'Thank you, Sara. What is the reason for your visit?' },
        { role: 'user', content: `${PATIENT_TEXT}\nsecond line` },
      ],
      temperature: 0.3,
      max_tokens: 512,
      stream: false,
      user: 'chat-3f9a1c2b',
    });
    expect(headers['content-type']).toMatch(/^application\/json/);
    expect(headers.authorization).toBeUndefined();
  });

  it('never sends something that looks like a phone number as `user`', async () => {
    const { client } = newClient();
    await client.complete({ ...sampleRequest(), user: '971500000001' });
    expect(fake.requests[0].body).not.toHaveProperty('user');
  });

  it('sends LLM_API_KEY as a Bearer token, which a vLLM started with --api-key accepts', async () => {
    const secured = await FakeLlmServer.start({ apiKey: 'k-123', servedModel: 'wa-bot' });
    try {
      const withKey = newClient({ LLM_BASE_URL: secured.url, LLM_API_KEY: 'k-123' }).client;
      await expect(withKey.complete(sampleRequest('hi'))).resolves.toMatchObject({ content: 'Echo: hi\nsecond line' });
      expect(secured.requests[0].headers.authorization).toBe('Bearer k-123');

      const withoutKey = newClient({ LLM_BASE_URL: secured.url }).client;
      const error = await failureOf(withoutKey.complete(sampleRequest('hi')));
      expect(error.kind).toBe('config');
      expect(error.details.status).toBe(401);
    } finally {
      await secured.close();
    }
  });

  it('carries Arabic text unchanged to the model and back', async () => {
    const { client } = newClient();
    const arabic = 'مَرْحَبًا، أُرِيدُ حَجْزَ مَوْعِدٍ 👋 يوم الأحد ١٠:٠٠';
    fake.reply = (body) => `تم استلام رسالتك: ${body.messages[body.messages.length - 1].content}`;
    const request = buildLlmRequest({
      systemPrompt: 'أنت موظف الاستقبال.',
      history: [{ role: 'assistant', text: 'أهلاً بك! ما اسمك؟' }],
      turnMessages: [arabic],
    });
    const reply = await client.complete(request);
    expect(fake.requests[0].body.messages).toEqual(request.messages);
    expect(fake.requests[0].body.messages[2].content).toBe(arabic);
    expect(reply.content).toBe(`تم استلام رسالتك: ${arabic}`);
  });

  it('reports the latency of a successful call and records it', async () => {
    const { client, metrics } = newClient();
    fake.latencyMs = 150;
    const reply = await client.complete(sampleRequest());
    expect(reply.latencyMs).toBeGreaterThanOrEqual(140);
    const histogram = await metrics.llmSeconds.get();
    expect(histogram.values.find((v) => v.metricName === 'tawasul_llm_seconds_count')?.value).toBe(1);
  });

  const classified: [FakeLlmMode, LlmFailureKind, number | undefined][] = [
    ['error500', 'error', 500],
    ['unavailable503', 'error', 503],
    ['context400', 'context', 400],
    ['badrequest400', 'error', 400],
    ['unauthorized401', 'config', 401],
    ['notfound404', 'config', 404],
    ['empty', 'empty', undefined],
    ['truncated', 'truncated', undefined],
    ['notjson', 'error', undefined],
  ];

  it.each(classified)('classifies %s as %s, with a safe message, and counts it', async (mode, kind, status) => {
    const { client, metrics } = newClient();
    fake.mode = mode;
    const error = await failureOf(client.complete(sampleRequest()));
    expect(error.kind).toBe(kind);
    expect(error.details.status).toBe(status);
    expect(error.message).not.toContain('PATIENT');
    expect(error.message).not.toMatch(/maximum context length is|EngineCore|tool choice/);
    expect(await failureCount(metrics, kind)).toBe(1);
  });

  it('classifies a wrong model as config, in the flat and the nested 404 shape', async () => {
    const strict = await FakeLlmServer.start({ servedModel: 'wa-bot' });
    try {
      const { client } = newClient({ LLM_BASE_URL: strict.url, LLM_MODEL: 'gpt-4' });
      const flat = await failureOf(client.complete(sampleRequest()));
      expect(flat.kind).toBe('config');
      expect(flat.message).toContain('gpt-4');
    } finally {
      await strict.close();
    }
    const { client } = newClient();
    const nestedBody = {
      error: { message: 'The model `gpt-4` does not exist.', type: 'NotFoundError', param: null, code: 404 },
    };
    fake.enqueue({ raw: { status: 404, body: nestedBody } });
    expect((await failureOf(client.complete(sampleRequest()))).kind).toBe('config');
  });

  it('classifies other 4xx (429) as a retryable error and a context 400 in the flat shape as context', async () => {
    const { client } = newClient();
    fake.enqueue(
      { raw: { status: 429, body: { error: { message: 'Too Many Requests', type: 'RateLimitError', code: 429 } } } },
      {
        raw: {
          status: 400,
          body: {
            object: 'error',
            message: 'The decoder prompt (length 17020) is longer than the maximum model length of 16384.',
            type: 'BadRequestError',
            param: null,
            code: 400,
          },
        },
      },
    );
    expect((await failureOf(client.complete(sampleRequest()))).kind).toBe('error');
    expect((await failureOf(client.complete(sampleRequest()))).kind).toBe('context');
  });

  it.each(['reasoning', 'think'] as const)('returns only the answer of a reasoning model (%s)', async (mode) => {
    const { client } = newClient();
    fake.mode = mode;
    const reply = await client.complete(sampleRequest('hello'));
    expect(reply.content).toBe('Echo: hello\nsecond line');
    expect(JSON.stringify(reply)).not.toContain('SECRET-REASONING');
    expect(REASONING_TEXT).toContain('SECRET-REASONING');
  });

  it.each(['hang', 'stall'] as const)('ends a %s as a timeout within LLM_TIMEOUT_MS and disconnects', async (mode) => {
    const { client, metrics } = newClient({ LLM_TIMEOUT_MS: '300' });
    fake.mode = mode;
    const started = Date.now();
    const error = await failureOf(client.complete(sampleRequest()));
    const elapsed = Date.now() - started;
    expect(error.kind).toBe('timeout');
    expect(elapsed).toBeGreaterThanOrEqual(280);
    expect(elapsed).toBeLessThan(1300);
    expect(await failureCount(metrics, 'timeout')).toBe(1);
    // The client hung up, so vLLM would abort the generation instead of finishing it for nobody.
    await waitUntil('the fake to see the disconnect', () => fake.inFlight === 0, 2000);
  });

  it('fails with kind error while the server is down (connection refused) and recovers when it is back', async () => {
    const { client } = newClient();
    await fake.stop();
    try {
      const error = await failureOf(client.complete(sampleRequest()));
      expect(error.kind).toBe('error');
      expect(error.details.code).toBe('ECONNREFUSED');
    } finally {
      await fake.restart();
    }
    await expect(client.complete(sampleRequest('back'))).resolves.toMatchObject({ content: 'Echo: back\nsecond line' });
  });

  it('follows a queue of per-call behaviours: fail twice, then succeed', async () => {
    const { client } = newClient();
    fake.enqueue('error500', { mode: 'unavailable503' });
    expect((await failureOf(client.complete(sampleRequest()))).details.status).toBe(500);
    expect((await failureOf(client.complete(sampleRequest()))).details.status).toBe(503);
    await expect(client.complete(sampleRequest('ok'))).resolves.toMatchObject({ finishReason: 'stop' });
    expect(fake.requests.map((r) => r.mode)).toEqual(['error500', 'unavailable503', 'ok']);
  });

  it('retries once, on a new socket, when a reused keep-alive socket turns out closed', async () => {
    const { client, metrics } = newClient();
    await client.complete(sampleRequest('first'));
    fake.enqueue('reset');
    const reply = await client.complete(sampleRequest('second'));
    expect(reply.content).toBe('Echo: second\nsecond line');
    expect(fake.requests.map((r) => [r.mode, r.reusedConnection])).toEqual([
      ['ok', false],
      ['reset', true],
      ['ok', false],
    ]);
    expect(await failureCount(metrics, 'error')).toBe(0);
  });

  it('does not retry a reset on a fresh connection: that is the server failing', async () => {
    const { client } = newClient();
    fake.enqueue('reset');
    const error = await failureOf(client.complete(sampleRequest()));
    expect(error.kind).toBe('error');
    expect(error.details.code).toBe('ECONNRESET');
    expect(fake.requests).toHaveLength(1);
  });

  it('reuses one connection for back-to-back calls and closes it when idle, before the server would', async () => {
    expect(LLM_IDLE_SOCKET_MS).toBeLessThan(5000); // uvicorn's keep-alive
    const patient = await FakeLlmServer.start({ keepAliveTimeoutMs: 60_000 });
    try {
      const { client } = newClient({ LLM_BASE_URL: patient.url }, { idleSocketTimeoutMs: 300 });
      await client.complete(sampleRequest('one'));
      await client.complete(sampleRequest('two'));
      expect(patient.connectionsOpened).toBe(1);
      const idleSince = Date.now();
      // The server would keep it for a minute: only the client's idle timeout can close it.
      await waitUntil('the idle socket to close', () => patient.connectionsClosed === 1, 3000);
      expect(Date.now() - idleSince).toBeGreaterThanOrEqual(250);
      await client.complete(sampleRequest('three'));
      expect(patient.connectionsOpened).toBe(2);
    } finally {
      await patient.close();
    }
  });
});

describe('LlmConcurrencyLimiter on real Redis', () => {
  const LIMIT = 4;
  let config: AppConfig;
  let redis: Redis;
  const connections: RedisConnections[] = [];

  /** One limiter per simulated worker process, each on its own Redis connections. */
  const newLimiter = (): { limiter: LlmConcurrencyLimiter; metrics: MetricsService; connections: RedisConnections } => {
    const conns = new RedisConnections(config, logger);
    connections.push(conns);
    const metrics = new MetricsService();
    const limiter = new LlmConcurrencyLimiter(conns, new RedisKeys(config.redisKeyRoot), config, metrics, logger);
    return { limiter, metrics, connections: conns };
  };

  beforeEach(() => {
    config = configFor({ LLM_MAX_CONCURRENCY: String(LIMIT), LLM_TIMEOUT_MS: '1000' });
    redis = new Redis(config.env.REDIS_URL, { maxRetriesPerRequest: 1 });
  });
  afterEach(async () => {
    for (const c of connections.splice(0)) await c.onApplicationShutdown();
    await deleteKeys(redis, config.redisKeyRoot);
    redis.disconnect();
  });

  it('grants exactly LLM_MAX_CONCURRENCY slots to a simultaneous burst from several processes', async () => {
    const limiters = [newLimiter(), newLimiter(), newLimiter()];
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => limiters[i % 3].limiter.tryAcquire(`turn-${i}`)),
    );
    expect(results.filter(Boolean)).toHaveLength(LIMIT);
    expect(await limiters[0].limiter.held()).toBe(LIMIT);
    const busy = await Promise.all(limiters.map(async (l) => (await l.metrics.llmSlotsBusy.get()).values[0].value));
    expect(busy.reduce((a, b) => a + b, 0)).toBe(30 - LIMIT);
  });

  it('keeps real inference calls in flight at or below the limit across processes', async () => {
    const fake = await FakeLlmServer.start();
    try {
      fake.latencyMs = 40;
      const llmConfig = configFor({ LLM_PROVIDER: 'openai', LLM_BASE_URL: fake.url });
      const client = new OpenAiLlmClient(llmConfig, new MetricsService(), logger);
      const limiters = [newLimiter(), newLimiter(), newLimiter()].map((l) => l.limiter);
      let completed = 0;
      const turn = async (i: number): Promise<void> => {
        const limiter = limiters[i % limiters.length];
        const holder = `turn-${i}`;
        // The turn processor defers a turn without a slot; here the "deferral" is a short retry.
        while (!(await limiter.tryAcquire(holder))) await new Promise((r) => setTimeout(r, 5));
        try {
          await client.complete(sampleRequest(`patient ${i}`));
          completed++;
        } finally {
          await limiter.release(holder);
        }
      };
      await Promise.all(Array.from({ length: 24 }, (_, i) => turn(i)));
      client.onApplicationShutdown();
      expect(completed).toBe(24);
      expect(fake.maxInFlight).toBeLessThanOrEqual(LIMIT);
      // The load was high enough to hit the cap: a broken limiter would have shown more.
      expect(fake.maxInFlight).toBe(LIMIT);
      expect(await limiters[0].held()).toBe(0);
    } finally {
      await fake.close();
    }
  });

  it('frees a slot on release', async () => {
    const { limiter } = newLimiter();
    for (let i = 0; i < LIMIT; i++) expect(await limiter.tryAcquire(`h${i}`)).toBe(true);
    expect(await limiter.tryAcquire('late')).toBe(false);
    await limiter.release('h2');
    expect(await limiter.tryAcquire('late')).toBe(true);
    expect(await limiter.tryAcquire('later')).toBe(false);
  });

  it('gives freed slots first come first served: release names the next in line, and nobody jumps it', async () => {
    const { limiter } = newLimiter();
    const other = newLimiter().limiter;
    for (let i = 0; i < LIMIT; i++) expect(await limiter.tryAcquire(`h${i}`, `chat-${i}`)).toBe(true);
    expect(await limiter.tryAcquire('w1', 'chat-w1')).toBe(false);
    expect(await other.tryAcquire('w2', 'chat-w2')).toBe(false);
    // Asking again keeps a chat's place in line.
    expect(await limiter.tryAcquire('w1', 'chat-w1')).toBe(false);
    const next = await limiter.release('h0');
    expect(next.map((w) => w.chat)).toEqual(['chat-w1']);
    // One slot is free: a newcomer and the second in line must not take it before the first.
    expect(await other.tryAcquire('late', 'chat-late')).toBe(false);
    expect(await other.tryAcquire('w2', 'chat-w2')).toBe(false);
    expect(await limiter.tryAcquire('w1', 'chat-w1')).toBe(true);
    expect((await limiter.release('h1')).map((w) => w.chat)).toEqual(['chat-w2']);
    expect(await other.tryAcquire('w2', 'chat-w2')).toBe(true);
    expect((await limiter.release('h2')).map((w) => w.chat)).toEqual(['chat-late']);
  });

  it('counts a holder that acquires twice once', async () => {
    const { limiter } = newLimiter();
    expect(await limiter.tryAcquire('same')).toBe(true);
    expect(await limiter.tryAcquire('same')).toBe(true);
    expect(await limiter.held()).toBe(1);
  });

  it('frees the slots of a crashed worker when they expire', async () => {
    const crashed = newLimiter();
    for (let i = 0; i < LIMIT; i++) expect(await crashed.limiter.tryAcquire(`dead-${i}`, `dead-${i}`, 400)).toBe(true);
    // Gone without releasing, like a SIGKILLed worker.
    connections.splice(connections.indexOf(crashed.connections), 1);
    await crashed.connections.onApplicationShutdown();
    const { limiter } = newLimiter();
    const started = Date.now();
    expect(await limiter.tryAcquire('alive')).toBe(false);
    await waitUntil('a dead slot to expire', () => limiter.tryAcquire('alive'), 3000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    // The dead slots were taken a few ms apart, so they expire a few ms apart.
    await waitUntil('every dead slot to expire', async () => (await limiter.held()) === 1, 1000);
    await limiter.tryAcquire('alive'); // renewing prunes the expired holders
    expect(await redis.zrange(llmSlotsKey(new RedisKeys(config.redisKeyRoot)), 0, -1)).toEqual(['alive']);
  });

  it('defaults the slot lifetime to LLM_TIMEOUT_MS plus a margin, under the prefix, and the key expires too', async () => {
    const { limiter } = newLimiter();
    expect(limiter.defaultTtlMs).toBeGreaterThan(config.env.LLM_TIMEOUT_MS);
    await limiter.tryAcquire('h');
    const key = llmSlotsKey(new RedisKeys(config.redisKeyRoot));
    expect(key).toBe(`{${config.env.REDIS_PREFIX}}:llm:slots`);
    const score = Number(await redis.zscore(key, 'h'));
    const [seconds, micros] = await redis.time();
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    expect(score - now).toBeGreaterThan(config.env.LLM_TIMEOUT_MS);
    expect(score - now).toBeLessThanOrEqual(limiter.defaultTtlMs);
    const pttl = await redis.pttl(key);
    expect(pttl).toBeGreaterThan(config.env.LLM_TIMEOUT_MS);
    expect(pttl).toBeLessThanOrEqual(limiter.defaultTtlMs);
  });
});

describe('LlmModule wiring', () => {
  const build = async (overrides: Record<string, string | undefined>) => {
    const config = configFor(overrides);
    const moduleRef = await Test.createTestingModule({
      imports: [
        AppConfigModule.forRoot(config),
        LoggingModule,
        RedisModule,
        MetricsModule.forRoot({ servePublicly: false }),
        LlmModule,
      ],
    }).compile();
    return { moduleRef, config };
  };

  it('binds LlmClient to OfflineLlmClient by default and to OpenAiLlmClient with LLM_BASE_URL', async () => {
    const offline = await build({});
    try {
      expect(offline.moduleRef.get(LlmClient)).toBeInstanceOf(OfflineLlmClient);
      expect(offline.moduleRef.get(SystemPromptLoader).prompt).toContain('Demo Clinic');
      expect(offline.moduleRef.get(CannedMessages).text('holding', 'ar')).toMatch(/[\u0600-\u06FF]/);
      expect(offline.moduleRef.get(LlmConcurrencyLimiter).limit).toBe(32);
      const metrics = await offline.moduleRef.get(MetricsService).render();
      expect(metrics).toContain('tawasul_llm_failures_total{kind="config"} 0');
      expect(metrics).toContain('tawasul_llm_seconds_bucket');
    } finally {
      await offline.moduleRef.close();
    }
    const openai = await build({ LLM_BASE_URL: 'http://127.0.0.1:9/v1' });
    try {
      expect(openai.config.env.LLM_PROVIDER).toBe('openai');
      expect(openai.moduleRef.get(LlmClient)).toBeInstanceOf(OpenAiLlmClient);
    } finally {
      await openai.moduleRef.close();
    }
  });

  it('fails start-up with a clear error when the system prompt file is missing', async () => {
    await expect(build({ SYSTEM_PROMPT_FILE: 'config/prompts/nope.md' })).rejects.toThrow(
      /SYSTEM_PROMPT_FILE: cannot read config\/prompts\/nope\.md .*ENOENT/,
    );
  });

  it('fails start-up with a clear error when the messages file is missing', async () => {
    await expect(build({ MESSAGES_FILE: 'config/nope.json' })).rejects.toThrow(
      /MESSAGES_FILE: cannot read config\/nope\.json .*ENOENT/,
    );
  });
});
