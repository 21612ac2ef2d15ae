import { Redis } from 'ioredis';
import { FakeGraphServer } from '../fakes/fake-graph.server';
import { FakeLlmServer, type RecordedLlmRequest } from '../fakes/fake-llm.server';
import { chatLane } from '../../src/queue/lanes';
import { BotCluster } from '../utils/bot-cluster';
import { envelope, nowSeconds, textPayload } from '../utils/meta-payloads';
import { signBody } from '../utils/sign';
import { httpStatus, spawnApp, waitUntil, type SpawnedApp } from '../utils/spawn-app';
import { deleteKeys } from '../utils/test-app';
import { TEST_PHONE_NUMBER_ID, uniquePrefix } from '../utils/test-env';

/*
 * The worker under process failures: workers SIGKILLed,
 * SIGSTOPped past their lease, SIGTERMed mid-turn, every process restarted. Exact counts are
 * asserted only once the whole bot is quiet.
 */

const lastUser = (r: RecordedLlmRequest): string => r.body.messages[r.body.messages.length - 1].content;

/** Closes the cluster and the Redis connection its queue handle borrowed (BullMQ never closes a shared one). */
async function closeCluster(bot: BotCluster | undefined): Promise<void> {
  if (!bot) return;
  const queueConnection = bot.turnsQueue.opts.connection as Redis;
  await bot.close();
  queueConnection.disconnect();
}

/**
 * Every worker gets its own LLM_API_KEY, which the fake LLM records as the Authorization header:
 * the key of an LLM request names the worker process that holds the chat's lease.
 */
class Workers {
  private next = 0;

  constructor(private readonly bot: BotCluster) {}

  key(): string {
    return `worker-${++this.next}`;
  }

  async ensure(count: number): Promise<void> {
    const missing = count - this.bot.workers.length;
    await Promise.all(Array.from({ length: missing }, () => this.bot.addWorker({ LLM_API_KEY: this.key() })));
  }

  /** The worker process that sent this LLM request. */
  of(request: RecordedLlmRequest): SpawnedApp {
    const worker = this.bot.workers.find((w) => request.headers.authorization === `Bearer ${w.env.LLM_API_KEY}`);
    if (!worker) throw new Error(`no live worker sent the LLM request (${request.headers.authorization})`);
    return worker;
  }

  /** Forgets a worker that is gone or frozen, so bot.metric() and ensure() only count live ones. */
  drop(worker: SpawnedApp): void {
    const index = this.bot.workers.indexOf(worker);
    if (index >= 0) this.bot.workers.splice(index, 1);
  }
}

describe('worker crashes with three worker processes', () => {
  let bot: BotCluster;
  let workers: Workers;

  beforeAll(async () => {
    bot = await BotCluster.start({
      workers: 1,
      env: {
        LLM_API_KEY: 'worker-0',
        TURN_LEASE_MS: '2000',
        // Long enough that a status posted right after a crash always settles an unknown send.
        SEND_UNKNOWN_WAIT_MS: '10000',
        // Workers log warnings ('lease lost'); the in-process receiver has none in these tests.
        LOG_LEVEL: 'warn',
      },
    });
    workers = new Workers(bot);
    await workers.ensure(3);
  }, 180_000);

  afterAll(async () => {
    await closeCluster(bot);
  });

  beforeEach(async () => {
    bot.llm.reset();
    bot.graph.reset();
    await workers.ensure(3);
    await bot.waitQuiet(60_000);
  }, 120_000);

  /**
   * Replies numbered by request (not by answer: a killed worker's call is never answered), so a
   * reply to the first call is told apart from a reply to a later one.
   */
  function numberedReplies(): void {
    bot.llm.reply = (body) =>
      `answer #${bot.llm.requests.findIndex((r) => r.body === body) + 1} to ${body.messages[body.messages.length - 1].content}`;
  }

  const laneOf = (from: string): string => chatLane(TEST_PHONE_NUMBER_ID, from);
  const key = (suffix: string): string => `${bot.receiver.config.redisKeyRoot}:${suffix}`;
  const sendsTo = (from: string) => bot.graph.sends().filter((r) => r.body?.to === from);

  it('a worker SIGKILLed mid-turn: another finishes the turn, exactly one reply goes out', async () => {
    const from = '971500003001';
    numberedReplies();
    bot.llm.latencyMs = 2000;
    expect((await bot.post(textPayload({ from, text: 'killed mid-turn' }))).status).toBe(200);
    await bot.llm.waitForRequests(1, 30_000);
    const holder = workers.of(bot.llm.requests[0]);
    expect(await bot.redis.get(key(`lease:${laneOf(from)}`))).not.toBeNull();
    holder.kill('SIGKILL');
    expect((await holder.waitExit()).signal).toBe('SIGKILL');
    workers.drop(holder);

    await bot.graph.waitForSends(1, 60_000);
    await bot.waitQuiet(60_000);
    // The dead worker's answer was never stored, so the LLM is asked again — by someone else
    // (more than once only if a takeover itself lost its lease on this busy machine).
    expect(bot.llm.requests.length).toBeGreaterThanOrEqual(2);
    expect(workers.of(bot.llm.requests[1])).not.toBe(holder);
    expect(new Set(bot.llm.requests.map(lastUser))).toEqual(new Set(['killed mid-turn']));
    expect(sendsTo(from)).toHaveLength(1);
    expect(bot.sentTexts(from)).toEqual([expect.stringMatching(/^answer #\d+ to killed mid-turn$/)]);
  }, 120_000);

  it('a worker SIGSTOPped past its lease sends and commits nothing once resumed', async () => {
    const from = '971500003002';
    numberedReplies();
    bot.llm.latencyMs = 4000;
    const lane = laneOf(from);
    expect((await bot.post(textPayload({ from, text: 'frozen worker' }))).status).toBe(200);
    await bot.llm.waitForRequests(1, 30_000);
    const frozen = workers.of(bot.llm.requests[0]);
    frozen.kill('SIGSTOP');
    workers.drop(frozen);
    try {
      // The lease holds `<counter>.<random>`; the lane's counter moves on at a takeover.
      const fence = Number((await bot.redis.get(key(`lease:${lane}`)))?.split('.')[0]);
      expect(fence).toBeGreaterThan(0);
      // Another worker takes the chat over (a new fencing token) and answers it.
      await waitUntil(
        'another worker to take the lane over',
        async () => Number(await bot.redis.hget(key(`lane:${lane}`), 'fence')) > fence,
        60_000,
      );
      await bot.graph.waitForSends(1, 60_000);
      await waitUntil(
        'the turn to be committed',
        async () => (await bot.redis.llen(key(`chat:${lane}:history`))) === 2,
        30_000,
      );
    } finally {
      frozen.kill('SIGCONT');
    }
    // The resumed worker gets its (first) LLM answer, finds its fence stale at the first write,
    // and gives up: nothing sent, nothing committed.
    await frozen.waitForOutput(/lease lost/, 30_000);
    await bot.waitQuiet(60_000);
    expect(bot.llm.requests.length).toBeGreaterThanOrEqual(2);
    expect(sendsTo(from)).toHaveLength(1);
    // Answer #1 is the frozen worker's: it must never reach the patient or the history.
    const [sent] = bot.sentTexts(from);
    expect(sent).toMatch(/^answer #\d+ to frozen worker$/);
    expect(sent).not.toBe('answer #1 to frozen worker');
    const history = (await bot.redis.lrange(key(`chat:${lane}:history`), 0, -1)).map((e) => JSON.parse(e));
    expect(history.map((h: { role: string; text: string }) => [h.role, h.text])).toEqual([
      ['user', 'frozen worker'],
      ['assistant', sent],
    ]);
    frozen.kill('SIGKILL');
    await frozen.waitExit();
  }, 150_000);

  it('a send whose answer never came, its worker SIGKILLed: a status for the part key stops any resend', async () => {
    const from = '971500003003';
    const lane = laneOf(from);
    bot.graph.enqueue({ kind: 'hang' });
    expect((await bot.post(textPayload({ from, text: 'hung send' }))).status).toBe(200);
    const [hung] = await bot.graph.waitForSends(1, 30_000);
    const sender = workers.of(bot.llm.requests[0]);
    sender.kill('SIGKILL');
    await sender.waitExit();
    workers.drop(sender);

    // Meta did deliver it: its 'sent' status carries our part key and the wamid we never saw.
    const partKey = hung.body.biz_opaque_callback_data as string;
    expect(partKey).toMatch(/^t\.[\w-]+\.0$/);
    const wamid = `wamid.META_${Date.now().toString(36)}`;
    const status = {
      id: wamid,
      status: 'sent',
      timestamp: nowSeconds(),
      recipient_id: from,
      biz_opaque_callback_data: partKey,
    };
    expect((await bot.post(envelope({ statuses: [status] }))).status).toBe(200);

    // The worker that takes the chat over settles the part from the status and commits the turn.
    await waitUntil(
      'the turn to be committed',
      async () => (await bot.redis.llen(key(`chat:${lane}:history`))) === 2,
      60_000,
    );
    await bot.waitQuiet(60_000);
    expect(bot.graph.sends()).toHaveLength(1);
    expect(bot.llm.requests).toHaveLength(1);
    expect(await bot.redis.get(key(`ack:${partKey}`))).toBe(wamid);
    expect(await bot.redis.hgetall(key(`out:${wamid}`))).toMatchObject({ status: 'sent', part: partKey });
    const history = (await bot.redis.lrange(key(`chat:${lane}:history`), 0, -1)).map((e) => JSON.parse(e));
    expect(history[1]).toMatchObject({ role: 'assistant', text: 'Echo: hung send' });
    expect(await bot.metric('tawasul_possible_duplicate_sends_total')).toBe(0);
  }, 120_000);

  it('SIGTERM mid-turn: the turn in flight finishes, its reply goes out, the worker exits 0', async () => {
    const from = '971500003005';
    bot.llm.latencyMs = 4000;
    expect((await bot.post(textPayload({ from, text: 'graceful stop' }))).status).toBe(200);
    await bot.llm.waitForRequests(1, 30_000);
    const worker = workers.of(bot.llm.requests[0]);
    expect(await httpStatus(`${worker.url}/health/live`)).toBe(200);
    expect(await httpStatus(`${worker.url}/health/ready`)).toBe(200);
    worker.kill('SIGTERM');
    // Not ready from the moment SIGTERM arrives, while the job in flight still runs.
    await waitUntil('ready to turn 503', async () => (await httpStatus(`${worker.url}/health/ready`)) === 503, 5000);
    expect(worker.running()).toBe(true);
    const exit = await worker.waitExit(30_000);
    workers.drop(worker);
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.elapsedMs).toBeLessThan(20_000);
    // The stopping worker itself answered: no takeover, no second LLM call.
    expect(bot.sentTexts(from)).toEqual(['Echo: graceful stop']);
    await bot.waitQuiet(60_000);
    expect(bot.llm.requests).toHaveLength(1);
    expect(sendsTo(from)).toHaveLength(1);
  }, 120_000);
});

describe('state survives a restart of every process', () => {
  let llm: FakeLlmServer;
  let graph: FakeGraphServer;
  let redis: Redis;
  const prefix = uniquePrefix();
  const root = `{${prefix}}`;

  beforeAll(async () => {
    llm = await FakeLlmServer.start();
    graph = await FakeGraphServer.start();
    redis = new Redis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 });
  });

  afterAll(async () => {
    await deleteKeys(redis, root);
    redis.disconnect();
    await Promise.all([llm.close(), graph.close()]);
  });

  /** A receiver and three workers, all spawned: unlike TestApp.close(), stopping them keeps the keys. */
  async function startAll(): Promise<{ receiver: SpawnedApp; workers: SpawnedApp[] }> {
    const env = {
      REDIS_PREFIX: prefix,
      META_GRAPH_URL: graph.url,
      LLM_PROVIDER: 'openai',
      LLM_BASE_URL: llm.url,
      TURN_DEBOUNCE_MS: '0',
      TURN_LEASE_MS: '3000',
      MARK_READ: 'false',
    };
    const apps = await Promise.all([
      spawnApp({ env: { ...env, APP_ROLE: 'receiver' } }),
      ...[1, 2, 3].map(() => spawnApp({ env: { ...env, APP_ROLE: 'worker' } })),
    ]);
    await Promise.all(apps.map((app) => app.waitForLive()));
    return { receiver: apps[0], workers: apps.slice(1) };
  }

  async function stopAll(apps: SpawnedApp[]): Promise<void> {
    for (const app of apps) app.kill('SIGTERM');
    const exits = await Promise.all(apps.map((app) => app.waitExit(30_000)));
    for (const exit of exits) expect(exit).toMatchObject({ code: 0, signal: null });
  }

  async function post(receiver: SpawnedApp, from: string, text: string): Promise<void> {
    const raw = JSON.stringify(textPayload({ from, text }));
    const res = await fetch(`${receiver.url}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-hub-signature-256': signBody(raw) },
      body: raw,
    });
    expect(res.status).toBe(200);
  }

  it('a third turn after every process restarted carries the first two turns as history', async () => {
    const from = '971500003004';
    const history = `${root}:chat:${chatLane(TEST_PHONE_NUMBER_ID, from)}:history`;
    const first = await startAll();
    await post(first.receiver, from, 'my name is Ahmed');
    await graph.waitForSends(1, 30_000);
    await waitUntil('turn 1 committed', async () => (await redis.llen(history)) === 2, 30_000);
    await post(first.receiver, from, 'I need a dentist');
    await graph.waitForSends(2, 30_000);
    await waitUntil('turn 2 committed', async () => (await redis.llen(history)) === 4, 30_000);
    await stopAll([first.receiver, ...first.workers]);

    const second = await startAll();
    try {
      await post(second.receiver, from, 'what is my name?');
      await graph.waitForSends(3, 30_000);
      await waitUntil('turn 3 committed', async () => (await redis.llen(history)) === 6, 30_000);
      expect(llm.requests).toHaveLength(3);
      expect(llm.requests[2].body.messages.slice(1)).toEqual([
        { role: 'user', content: 'my name is Ahmed' },
        { role: 'assistant', content: 'Echo: my name is Ahmed' },
        { role: 'user', content: 'I need a dentist' },
        { role: 'assistant', content: 'Echo: I need a dentist' },
        { role: 'user', content: 'what is my name?' },
      ]);
      expect(graph.sends().map((s) => s.body.text.body)).toEqual([
        'Echo: my name is Ahmed',
        'Echo: I need a dentist',
        'Echo: what is my name?',
      ]);
    } finally {
      await stopAll([second.receiver, ...second.workers]);
    }
  }, 180_000);
});

describe('WORKER_CONCURRENCY=1 with three workers', () => {
  let bot: BotCluster;

  beforeAll(async () => {
    bot = await BotCluster.start({ workers: 3, env: { WORKER_CONCURRENCY: '1' } });
  }, 180_000);

  afterAll(async () => {
    await closeCluster(bot);
  });

  it('ten chats, three messages each: all answered once, in arrival order per chat', async () => {
    bot.llm.latencyMs = 150;
    const chats = Array.from({ length: 10 }, (_, i) => ({
      from: `9715000031${String(i).padStart(2, '0')}`,
      tag: `c${i}`,
    }));
    for (let m = 1; m <= 3; m++) {
      for (const { from, tag } of chats) {
        expect((await bot.post(textPayload({ from, text: `${tag}-m${m}` }))).status).toBe(200);
      }
    }
    await bot.waitQuiet(90_000);
    // One job at a time per worker process: never more inferences in flight than workers.
    expect(bot.llm.maxInFlight).toBeLessThanOrEqual(3);
    for (const { from, tag } of chats) {
      const turns = bot.llm.requests.map(lastUser).filter((text) => text.startsWith(`${tag}-`));
      // Every message reached the LLM exactly once, in order; each turn was answered once, in order.
      expect(turns.join('\n').split('\n')).toEqual([`${tag}-m1`, `${tag}-m2`, `${tag}-m3`]);
      expect(bot.sentTexts(from)).toEqual(turns.map((t) => `Echo: ${t}`));
    }
    expect(bot.graph.sends()).toHaveLength(bot.llm.requests.length);
  }, 150_000);
});
