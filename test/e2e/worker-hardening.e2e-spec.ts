import { performance } from 'node:perf_hooks';
import { getQueueToken } from '@nestjs/bullmq';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { type RecordedLlmRequest } from '../fakes/fake-llm.server';
import { randomUUID } from 'node:crypto';
import { ConversationStore } from '../../src/conversation/conversation.store';
import { interpretMessage, planTurn } from '../../src/conversation/inbound-content';
import { LlmStep, SLOT_WAKE_TAG } from '../../src/conversation/llm-step';
import { WakeUpService } from '../../src/dedup/wake-up.service';
import { LlmConcurrencyLimiter, llmSlotsKey, llmWaitingKey } from '../../src/llm/llm-concurrency.limiter';
import { CannedMessages } from '../../src/llm/canned-messages';
import { MAX_TURN_FAILURES } from '../../src/conversation/lane-runner';
import { RedisConversationStore } from '../../src/conversation/redis-conversation.store';
import { OutboundRecords } from '../../src/conversation/outbound-records';
import { ReplySender } from '../../src/conversation/reply-sender';
import { Sweeper } from '../../src/conversation/sweeper';
import { type Lease, leaseUsable, type TurnContext, type TurnMeta } from '../../src/conversation/turn.types';
import {
  DEAD_LETTER_JOB_OPTIONS,
  DEAD_LETTERS_QUEUE,
  TURNS_QUEUE,
  TurnJob,
  WAKE_JOB_OPTIONS,
} from '../../src/queue/queue.constants';
import { chatLane } from '../../src/queue/lanes';
import { BotCluster } from '../utils/bot-cluster';
import { botPerSuite } from '../utils/bot-suite';
import { deadLetters } from '../utils/dead-letters';
import { killAllPrivateRedis, type PrivateRedis, startPrivateRedis } from '../utils/private-redis';
import { envelope, statusPayload, textMessage, textPayload } from '../utils/meta-payloads';
import { type SpawnedApp, waitUntil } from '../utils/spawn-app';
import { startTestApp, type TestApp } from '../utils/test-app';
import { TEST_PHONE_NUMBER_ID } from '../utils/test-env';

/**
 * Hardening of the worker's core (docs/architecture.md: lease, fence, not-before): unique fences,
 * the lease's own deadline, early wake-ups, and the takeover of a killed worker's turn.
 */

/** A sandbox app in this process for the enclosing describe block; `started` receives it. */
function sandboxAppPerSuite(debounceMs: string, started: (t: TestApp) => void): void {
  let app: TestApp | undefined;
  beforeAll(async () => {
    app = await startTestApp({ BSP_PROVIDER: 'sandbox', TURN_DEBOUNCE_MS: debounceMs, MARK_READ: 'false' });
    started(app);
  });
  afterAll(async () => {
    await app?.close();
  });
}

/** What the LLM step reads of a fresh turn of one text message, for running it by hand under `lease`. */
const textTurn = (lease: Lease, from: string, text: string, turnId: string = randomUUID()): TurnContext => ({
  lease,
  turn: { id: turnId, startedAt: Date.now(), attempts: 0, sendFailures: 0, pairRateFailures: 0 },
  items: [],
  plan: planTurn([interpretMessage(textMessage({ from, text }))]),
  state: {},
  history: [],
  handoff: { state: 'bot' },
  language: 'en',
  to: from,
});

describe('the lease, in one process against real Redis', () => {
  let t: TestApp;
  let store: ConversationStore;
  let seq = 0;
  const lane = (): string => chatLane(TEST_PHONE_NUMBER_ID, `97150150${String(seq++).padStart(4, '0')}`);
  const turn = (): TurnMeta => ({
    id: `t-${seq}`,
    startedAt: Date.now(),
    attempts: 0,
    sendFailures: 0,
    pairRateFailures: 0,
  });

  sandboxAppPerSuite('1000', (app) => {
    t = app;
    store = t.app.get(ConversationStore, { strict: false });
  });

  it('fences are unique: when Redis lost its last writes and the counter repeats, the old holder passes no check', async () => {
    const l = lane();
    const first = (await store.acquire(l))!;
    // What a crash with AOF everysec, or a failover to a lagging replica, can leave behind: the
    // lease and the counter's last increment gone, while the first worker still runs.
    await t.redis.del(t.keys.lease(l));
    await t.redis.hincrby(t.keys.lane(l), 'fence', -1);
    const second = (await store.acquire(l))!;
    expect(second.fence.split('.')[0]).toBe(first.fence.split('.')[0]);
    expect(second.fence).not.toBe(first.fence);
    expect(await store.saveTurn(first, turn())).toBe(false);
    expect(await store.renew(first)).toBe(false);
    expect(await store.saveTurn(second, turn())).toBe(true);
    await store.release(second);
  });

  it('a renewal that finds the lease gone marks it lost: the holder starts no further side effect', async () => {
    const l = lane();
    const lease = (await store.acquire(l))!;
    expect(leaseUsable(lease)).toBe(true);
    expect(await store.renew(lease)).toBe(true);
    await t.redis.del(t.keys.lease(l));
    expect(await store.renew(lease)).toBe(false);
    expect(lease.lost).toBe(true);
    expect(leaseUsable(lease)).toBe(false);
  });

  it('a worker past its own lease deadline writes no send request, even while Redis still says the lease is its', async () => {
    const l = lane();
    const lease = (await store.acquire(l))!;
    const sender = t.app.get(ReplySender, { strict: false });
    const stalled = turn();
    stalled.reply = { kind: 'llm', text: 'hi', parts: ['hi'], sent: [null], sending: [null] };
    // As if the process froze (GC, SIGSTOP) long enough for its monotonic deadline to pass.
    lease.validUntil = performance.now() - 1;
    const sends = await t.redis.llen(`${t.config.redisKeyRoot}:sandbox:outbox`);
    expect(await sender.sendParts(lease, stalled, '971500000001')).toEqual({ kind: 'lost' });
    expect(await t.redis.pttl(t.keys.lease(l))).toBeGreaterThan(0);
    expect(await t.redis.llen(`${t.config.redisKeyRoot}:sandbox:outbox`)).toBe(sends);
    await store.release(lease);
  });

  it('a parked lane is not taken before its time: the not-before check is part of taking the lease', async () => {
    const l = lane();
    const lease = (await store.acquire(l))!;
    const until = Date.now() + 60_000;
    expect(await store.defer(lease, until)).toBe(true);
    expect(await store.acquireDue(l)).toBe(until);
    expect(await t.redis.exists(t.keys.lease(l))).toBe(0);
    // A freed LLM slot may wake it early: the plain acquire ignores the parking.
    const early = await store.acquire(l);
    expect(early).toBeDefined();
    await store.release(early!);
  });

  it('status writes are fenced: a status lane whose lease was lost changes no outbound record', async () => {
    const records = t.app.get(OutboundRecords, { strict: false });
    const statusLane = `s.${TEST_PHONE_NUMBER_ID}.971500000001`;
    const wamid = `wamid.FENCED${Date.now()}`;
    await records.sent({
      wamid,
      lane: lane(),
      turnId: 'x',
      partKey: 't.x.0',
      to: '971500000001',
      mode: 'free_form',
      category: 'service',
      inWindow: true,
    });
    const lease = (await store.acquire(statusLane))!;
    await t.redis.del(t.keys.lease(statusLane));
    expect(await records.applyStatus(lease, { wamid, status: 'read' })).toBe('lost');
    expect(await t.redis.hget(t.keys.outbound(wamid), 'status')).toBeNull();
    const again = (await store.acquire(statusLane))!;
    expect(await records.applyStatus(again, { wamid, status: 'read' })).toMatchObject({ mode: 'free_form' });
    expect(await t.redis.hget(t.keys.outbound(wamid), 'status')).toBe('read');
    await store.release(again);
  });

  it('unhandled items and dead letters are dropped past their retention (7 and 30 days), newer ones kept', async () => {
    const sweeper = t.app.get(Sweeper, { strict: false });
    const dead = t.app.get<Queue>(getQueueToken(DEAD_LETTERS_QUEUE), { strict: false });
    const now = Date.now();
    const day = 86_400_000;
    await t.redis.del(t.keys.unhandled);
    // Newest first, as the app writes them.
    await t.redis.rpush(
      t.keys.unhandled,
      JSON.stringify({ at: now - day, kind: 'payload', raw: '{}' }),
      JSON.stringify({ at: now - 8 * day, kind: 'payload', raw: '{}' }),
      '{"object":"written before entries had a time"}',
    );
    // Dead letters as the app parks them (failed), then aged: their finish time is their score.
    const data = { reason: 'send_permanent', lane: 'c.1.2', at: now, items: [] };
    const young = await dead.add('send_permanent', data, { ...DEAD_LETTER_JOB_OPTIONS, jobId: 'dl-young' });
    const old = await dead.add('send_permanent', data, { ...DEAD_LETTER_JOB_OPTIONS, jobId: 'dl-old' });
    await waitUntil('both parked', async () => (await dead.getFailedCount()) === 2, 10_000);
    await t.redis.zadd(dead.toKey('failed'), 'XX', now - 29 * day, young.id!, now - 31 * day, old.id!);
    expect(await sweeper.trimByAge(now)).toBe(3);
    expect((await t.redis.lrange(t.keys.unhandled, 0, -1)).map((e) => JSON.parse(e).at)).toEqual([now - day]);
    expect((await dead.getFailed()).map((job) => job.id)).toEqual([young.id]);
    expect(await t.redis.exists(dead.toKey(old.id!))).toBe(0);
  });

  it('the sweeper finds a lost wake-up behind more than a thousand lanes parked for an outage', async () => {
    const now = Date.now();
    const pipeline = t.redis.pipeline();
    for (let i = 0; i < 1100; i++) {
      const parked = chatLane(TEST_PHONE_NUMBER_ID, `9715016${String(i).padStart(5, '0')}`);
      // Parked for an LLM outage: waiting since long ago, due in ten minutes.
      pipeline.zadd(t.keys.pending, now - 600_000 + i, parked);
      pipeline.zadd(t.keys.parked, now + 600_000, parked);
      pipeline.hset(t.keys.lane(parked), 'nb', now + 600_000);
    }
    await pipeline.exec();
    // A chat whose wake-up was lost right after its ingest: only the inbox and the pending set.
    const from = '971501699999';
    const l = chatLane(TEST_PHONE_NUMBER_ID, from);
    const message = {
      from,
      id: `wamid.LOST${now}`,
      timestamp: String(Math.floor(now / 1000)),
      type: 'text',
      text: { body: 'lost wake-up' },
    };
    const item = {
      key: `m:${message.id}`,
      lane: l,
      kind: 'message',
      receivedAt: now - 60_000,
      phoneNumberId: TEST_PHONE_NUMBER_ID,
      raw: message,
    };
    await t.redis.rpush(t.keys.inbox(l), JSON.stringify(item));
    await t.redis.zadd(t.keys.pending, now - 60_000, l);
    const outbox = `${t.config.redisKeyRoot}:sandbox:outbox`;
    await waitUntil(
      'the reply to the lost chat',
      async () => (await t.redis.lrange(outbox, 0, -1)).some((e) => JSON.parse(e).payload.to === from),
      20_000,
    );
  }, 30_000);

  it('a parked chat whose delayed wake-up runs early is woken again at its time (not left to the sweeper)', async () => {
    const from = `97150150${String(seq++).padStart(4, '0')}`;
    const l = chatLane(TEST_PHONE_NUMBER_ID, from);
    const connection = new Redis(t.config.env.REDIS_URL, { maxRetriesPerRequest: null });
    const queue = new Queue(TURNS_QUEUE, { connection, prefix: t.config.redisKeyRoot });
    try {
      expect((await t.postSigned(textPayload({ from, text: 'debounced' }))).status).toBe(200);
      // The debounce parks the turn for a second with a delayed wake-up `n<not-before>`.
      let nb = 0;
      await waitUntil(
        'the turn to park',
        async () => (nb = Number(await t.redis.hget(t.keys.lane(l), 'nb'))) > 0,
        5000,
      );
      const early = await queue.getJob(`${l}.n${nb}`);
      expect(early).toBeDefined();
      // Another process's clock ran ahead and promoted it: it runs now, before its time.
      await early!.promote();
      await waitUntil(
        'a wake-up at the parked time',
        async () => {
          const delayed = await queue.getDelayed();
          return delayed.some((job) => job.id === `${l}.m${nb}`);
        },
        5000,
      );
      await waitUntil(
        'the reply',
        async () => (await t.redis.llen(`${t.config.redisKeyRoot}:sandbox:outbox`)) > 0,
        10_000,
      );
    } finally {
      await queue.close();
      connection.disconnect();
    }
  });

  it('a wake-up that finds the lane held wakes it after the lease lapses under another id than its own', async () => {
    const l = lane();
    const connection = new Redis(t.config.env.REDIS_URL, { maxRetriesPerRequest: null });
    const queue = new Queue(TURNS_QUEUE, { connection, prefix: t.config.redisKeyRoot });
    try {
      // Another worker holds the lane. Its lease lapses in the middle of a second, so the wake-up
      // below computes that same second whatever the milliseconds in between.
      await store.acquire(l);
      const second = Math.ceil((Date.now() + 2500) / 1000);
      await t.redis.pexpireat(t.keys.lease(l), second * 1000 - 600);
      // The wake-up `l<second>` itself runs (early, or the holder renewed since it was added): the
      // lapse it computes is that second again, and BullMQ would ignore an add of its own id.
      await queue.add(TurnJob.Wake, { lane: l }, { ...WAKE_JOB_OPTIONS, jobId: `${l}.l${second}` });
      await waitUntil(
        'a wake-up at the lapse',
        async () => (await queue.getDelayed()).some((job) => job.id === `${l}.k${second}`),
        5000,
      );
    } finally {
      await queue.close();
      connection.disconnect();
    }
  });
});

describe('a turn that keeps throwing', () => {
  let t: TestApp;

  sandboxAppPerSuite('0', (app) => (t = app));

  const outbox = async (): Promise<{ id: string; payload: { to: string; text?: { body: string } } }[]> =>
    (await t.redis.lrange(`${t.config.redisKeyRoot}:sandbox:outbox`, 0, -1)).map((raw) => JSON.parse(raw));
  const metric = async (series: string): Promise<number> => {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line ? Number(line.split(' ')[1]) : 0;
  };
  /** Waits until lane `l` has a dead letter. */
  const deadLettered = (l: string, timeoutMs: number): Promise<void> =>
    waitUntil(
      'the dead letter',
      async () => (await deadLetters(t.redis, t.config.redisKeyRoot)).some((job) => job.data.lane === l),
      timeoutMs,
    );

  it('is retried, then dead-lettered with the apology, and the chat answers its next message', async () => {
    const from = '971500015100';
    const l = chatLane(TEST_PHONE_NUMBER_ID, from);
    // A stored item no worker can read (written by a bug, or by hand): every attempt throws.
    await t.redis.rpush(t.keys.inbox(l), '{"kind":"message", not json');
    await t.redis.zadd(t.keys.pending, Date.now(), l);
    expect((await t.postSigned(textPayload({ from, text: 'first' }))).status).toBe(200);
    await deadLettered(l, 30_000);
    const entry = (await deadLetters(t.redis, t.config.redisKeyRoot)).find((job) => job.data.lane === l)!.data;
    // The unreadable item is left out: re-running it would only fail again.
    expect(entry).toMatchObject({ reason: 'turn_failed', failures: 5 });
    expect(entry.items).toEqual([expect.objectContaining({ kind: 'message', lane: l })]);
    expect(await metric('tawasul_turn_failures_total{outcome="retried"}')).toBe(4);
    expect(await metric('tawasul_turn_failures_total{outcome="dead_lettered"}')).toBe(1);
    await waitUntil('the apology', async () => (await outbox()).some((e) => e.payload.to === from), 10_000);
    const apologies = (await outbox()).filter((e) => e.payload.to === from);
    expect(apologies).toHaveLength(1);
    // Recorded and costed like any message, so its statuses find their record.
    expect(await t.redis.hgetall(`${t.config.redisKeyRoot}:out:${apologies[0].id}`)).toMatchObject({
      lane: l,
      mode: 'free_form',
      category: 'service',
    });

    expect((await t.postSigned(textPayload({ from, text: 'second' }))).status).toBe(200);
    await waitUntil(
      'the next reply',
      async () => (await outbox()).filter((e) => e.payload.to === from).length === 2,
      20_000,
    );
    expect(await t.redis.hget(t.keys.lane(l), 'failures')).toBeNull();
  }, 60_000);

  it('a dead-lettered turn takes its chat out of the LLM line', async () => {
    const from = '971500015104';
    const l = chatLane(TEST_PHONE_NUMBER_ID, from);
    const waiting = llmWaitingKey(t.keys);
    await t.redis.hset(t.keys.lane(l), 'failures', MAX_TURN_FAILURES - 1);
    // As if the turn had waited in line for a slot before it started to throw.
    await t.redis.zadd(waiting, 1, l);
    await poison(from);
    await deadLettered(l, 20_000);
    await waitUntil('out of the line', async () => (await t.redis.zscore(waiting, l)) === null, 5_000);
  }, 60_000);

  it('sends no apology into a closed window: the dead letter is kept, the free-form send is not tried', async () => {
    const from = '971500015109';
    const l = chatLane(TEST_PHONE_NUMBER_ID, from);
    await t.redis.rpush(t.keys.inbox(l), '{"kind":"message", not json');
    await t.redis.zadd(t.keys.pending, Date.now(), l);
    const refused = await metric('tawasul_window_closed_total{source="notice"}');
    const late = textMessage({ from, text: 'written yesterday' });
    late.timestamp = String(Math.floor(Date.now() / 1000) - 25 * 3600);
    expect((await t.postSigned(envelope({ messages: [late] }))).status).toBe(200);
    await deadLettered(l, 30_000);
    await waitUntil(
      'the refused apology',
      async () => (await metric('tawasul_window_closed_total{source="notice"}')) > refused,
      10_000,
    );
    expect((await outbox()).filter((e) => e.payload.to === from)).toHaveLength(0);
  }, 60_000);

  /** Runs `fault` instead of the store's `method` for lane `l`'s calls; the others go through. */
  function onLane<M extends 'countFailure' | 'release' | 'finish'>(
    method: M,
    l: string,
    fault: (lease: Lease, call: () => ReturnType<RedisConversationStore[M]>) => ReturnType<RedisConversationStore[M]>,
  ): jest.SpyInstance {
    const original = RedisConversationStore.prototype[method] as (
      ...args: unknown[]
    ) => ReturnType<RedisConversationStore[M]>;
    return jest.spyOn(RedisConversationStore.prototype, method).mockImplementation(function (
      this: RedisConversationStore,
      ...args: unknown[]
    ) {
      const call = (): ReturnType<RedisConversationStore[M]> => original.apply(this, args);
      const lease = args[0] as Lease;
      return lease.lane === l ? fault(lease, call) : call();
    } as never);
  }
  const apology = (): string => t.app.get(CannedMessages, { strict: false }).text('apology', 'en');
  const refused = (): Error =>
    Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });
  const poison = async (from: string): Promise<string> => {
    const l = chatLane(TEST_PHONE_NUMBER_ID, from);
    await t.redis.rpush(t.keys.inbox(l), '{"kind":"message", not json');
    await t.redis.zadd(t.keys.pending, Date.now(), l);
    expect((await t.postSigned(textPayload({ from, text: 'first' }))).status).toBe(200);
    return l;
  };

  it('when Redis fails its count and its release, lets the lease go once Redis answers: retried a sweep later, not after the lease', async () => {
    const from = '971500015101';
    const l = chatLane(TEST_PHONE_NUMBER_ID, from);
    const counted: number[] = [];
    let releases = 0;
    const spies = [
      onLane('countFailure', l, (_lease, call) => {
        counted.push(Date.now());
        return counted.length === 1 ? Promise.reject(refused()) : call();
      }),
      // Redis is back a moment later: the first release is refused, the next one goes through.
      onLane('release', l, (_lease, call) => (++releases === 1 ? Promise.reject(refused()) : call())),
    ];
    try {
      await poison(from);
      await waitUntil('the turn to be tried again', () => counted.length >= 2, 15_000);
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
    // Released right after the blip, the turn is re-armed by the next sweep (1 s); left to its lease
    // (3 s) it would wait that long and a sweep more.
    expect(counted[1] - counted[0]).toBeLessThan(2500);
    expect(releases).toBeGreaterThanOrEqual(2);
    await deadLettered(l, 30_000);
  }, 60_000);

  it('a worker past its own lease deadline dead-letters nothing and sends no apology: the next holder does, once', async () => {
    const from = '971500015102';
    const l = chatLane(TEST_PHONE_NUMBER_ID, from);
    // The last attempt: the next failure dead-letters the turn.
    await t.redis.hset(t.keys.lane(l), 'failures', MAX_TURN_FAILURES - 1);
    let stalled = false;
    const spy = onLane('countFailure', l, (lease, call) => {
      if (!stalled) {
        stalled = true;
        // As if the process froze (GC, SIGSTOP) long enough for its monotonic deadline to pass.
        lease.validUntil = performance.now() - 1;
      }
      return call();
    });
    try {
      await poison(from);
      await deadLettered(l, 20_000);
    } finally {
      spy.mockRestore();
    }
    expect(stalled).toBe(true);
    const entries = (await deadLetters(t.redis, t.config.redisKeyRoot)).filter((job) => job.data.lane === l);
    // Counted by both attempts, dead-lettered by the second only.
    expect(entries.map((job) => job.data)).toEqual([
      expect.objectContaining({ reason: 'turn_failed', failures: MAX_TURN_FAILURES + 1 }),
    ]);
    await waitUntil('the apology', async () => (await outbox()).some((e) => e.payload.to === from), 10_000);
    expect((await outbox()).filter((e) => e.payload.to === from).map((e) => e.payload.text?.body)).toEqual([apology()]);
  }, 60_000);

  it('sends no apology once its own lease deadline passed after dead-lettering the turn', async () => {
    const from = '971500015103';
    const l = chatLane(TEST_PHONE_NUMBER_ID, from);
    await t.redis.hset(t.keys.lane(l), 'failures', MAX_TURN_FAILURES - 1);
    let committed = false;
    const spy = onLane('finish', l, (lease, call) => {
      // The process froze while its commit was on the way: Redis took it, its deadline passed.
      lease.validUntil = performance.now() - 1;
      committed = true;
      return call();
    });
    try {
      await poison(from);
      await deadLettered(l, 20_000);
      // The commit comes after the dead letter: the spy stays until it has run.
      await waitUntil('the commit', () => Promise.resolve(committed), 20_000);
    } finally {
      spy.mockRestore();
    }
    // The chat goes on; whatever this worker would have sent went out before the next reply.
    expect((await t.postSigned(textPayload({ from, text: 'second' }))).status).toBe(200);
    await waitUntil('the next reply', async () => (await outbox()).some((e) => e.payload.to === from), 20_000);
    const sent = (await outbox()).filter((e) => e.payload.to === from).map((e) => e.payload.text?.body);
    expect(sent).toHaveLength(1);
    expect(sent[0]).not.toBe(apology());
  }, 60_000);
});

describe('a Redis blip in the middle of a turn', () => {
  let bot: BotCluster;
  let redis: PrivateRedis;

  beforeAll(async () => {
    // A Redis of its own, stopped and started again: its AOF (fsync always) keeps every write.
    redis = await startPrivateRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    bot = await BotCluster.start({ workers: 0, env: { REDIS_URL: redis.url } });
  });

  afterAll(async () => {
    await bot?.close();
    await redis?.dispose();
    killAllPrivateRedis();
  });

  it('costs the chat about the blip, not a lease and a sweep: Redis away for a second while the LLM answers', async () => {
    const from = '971500015400';
    bot.llm.latencyMs = 700;
    expect((await bot.post(textPayload({ from, text: 'blip' }))).status).toBe(200);
    await bot.llm.waitForRequests(1, 10_000);
    const stoppedAt = Date.now();
    // Every connection refused for a second; the LLM answers in the middle of it.
    await redis.stop();
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() - stoppedAt)));
    await redis.restart();
    const awayMs = Date.now() - stoppedAt;
    await bot.graph.waitForSends(1, 30_000);
    const replyAfter = Date.now() - stoppedAt;
    await bot.waitQuiet(30_000);
    expect(bot.sentTexts(from)).toEqual(['Echo: blip']);
    expect(awayMs).toBeGreaterThanOrEqual(1000);
    // The blip, a reconnect (at most a second apart) and the rest of the turn; a turn left to its
    // lease (3 s) and the next sweep (1 s) would take 4 s and more.
    expect(replyAfter).toBeLessThan(2500);
  }, 60_000);
});

describe('the holding message', () => {
  let bot: BotCluster;

  botPerSuite({ workers: 0 }, (started) => (bot = started));

  it('has an outbound record: its statuses are applied, not counted as orphans, and it is costed', async () => {
    const from = '971500015300';
    bot.llm.enqueue('error500');
    expect((await bot.post(textPayload({ from, text: 'are you open?' }))).status).toBe(200);
    await bot.graph.waitForSends(2, 30_000);
    await bot.waitQuiet();
    const [holding, reply] = bot.graph.sends().filter((r) => r.body?.to === from);
    expect(reply.body.text.body).toBe('Echo: are you open?');
    const record = `${bot.receiver.config.redisKeyRoot}:out:${holding.wamid}`;
    expect(await bot.redis.hgetall(record)).toMatchObject({ mode: 'free_form', category: 'service' });
    const orphans = await bot.metric('tawasul_orphan_statuses_total');
    expect((await bot.post(statusPayload(holding.wamid!, 'delivered', from))).status).toBe(200);
    await waitUntil('the status', async () => (await bot.redis.hget(record, 'status')) === 'delivered', 10_000);
    expect(await bot.metric('tawasul_orphan_statuses_total')).toBe(orphans);
  }, 60_000);

  it('is not sent by a worker past its own lease deadline, even while Redis still says the lease is its', async () => {
    const from = '971500015301';
    const l = chatLane(TEST_PHONE_NUMBER_ID, from);
    const store = bot.receiver.app.get(ConversationStore, { strict: false });
    const lease = (await store.acquire(l))!;
    bot.llm.enqueue({ mode: 'error500', latencyMs: 600 });
    // The deadline passes while the LLM answers, as if the process froze meanwhile.
    lease.validUntil = performance.now() + 300;
    const sends = bot.graph.sends().length;
    const step = await bot.receiver.app.get(LlmStep, { strict: false }).run(textTurn(lease, from, 'are you open?'));
    expect(step).toEqual({ kind: 'outcome', outcome: { kind: 'lost' } });
    expect(await bot.redis.pttl(bot.receiver.keys.lease(l))).toBeGreaterThan(0);
    expect(bot.graph.sends()).toHaveLength(sends);
    expect(await bot.redis.hget(bot.receiver.keys.chat(l), 'holding')).toBeNull();
    await store.release(lease);
  }, 30_000);
});

describe('LLM slots', () => {
  let bot: BotCluster;

  botPerSuite({ workers: 0 }, (started) => (bot = started));

  it('are held by the turn plus the fence: a stalled attempt and the one that took its turn over hold two', async () => {
    const from = '971500015310';
    const l = chatLane(TEST_PHONE_NUMBER_ID, from);
    const app = bot.receiver.app;
    const store = app.get(ConversationStore, { strict: false });
    const limiter = app.get(LlmConcurrencyLimiter, { strict: false });
    const stalled = (await store.acquire(l))!;
    // Its lease lapses in Redis while its worker is frozen; another worker takes the turn over.
    await bot.redis.del(bot.receiver.keys.lease(l));
    const takeover = (await store.acquire(l))!;
    const turnId = randomUUID();
    const turn = (lease: Lease): TurnContext => textTurn(lease, from, 'slots', turnId);
    bot.llm.latencyMs = 1500;
    const step = app.get(LlmStep, { strict: false });
    // The frozen worker resumes with the LLM call it was about to make, beside the new holder's.
    const runs = Promise.all([step.run(turn(stalled)), step.run(turn(takeover))]);
    await bot.llm.waitForRequests(2, 10_000);
    expect(await limiter.held()).toBe(2);
    expect((await bot.redis.zrange(llmSlotsKey(bot.receiver.keys), 0, -1)).sort()).toEqual(
      [`${turnId}.${stalled.fence}`, `${turnId}.${takeover.fence}`].sort(),
    );
    expect((await runs).map((r) => r.kind)).toEqual(['reply', 'reply']);
    expect(await limiter.held()).toBe(0);
    await store.release(takeover);
  }, 30_000);

  it('a chat that leaves the line without the LLM (handed over) gives its place: the next in line is woken', async () => {
    const [a, b] = ['971500015320', '971500015321'];
    const app = bot.receiver.app;
    const limiter = app.get(LlmConcurrencyLimiter, { strict: false });
    const waiting = llmWaitingKey(bot.receiver.keys);
    const inLine = async (from: string) =>
      (await bot.redis.zscore(waiting, chatLane(TEST_PHONE_NUMBER_ID, from))) !== null;
    const blockers = Array.from({ length: limiter.limit }, (_, i) => `blocker-${i}-${randomUUID()}`);
    try {
      for (const holder of blockers) expect(await limiter.tryAcquire(holder, holder, 120_000)).toBe(true);
      expect((await bot.post(textPayload({ from: a, text: 'hello' }))).status).toBe(200);
      await waitUntil('a in line', () => inLine(a), 10_000);
      expect((await bot.post(textPayload({ from: b, text: 'hello' }))).status).toBe(200);
      await waitUntil('b in line behind a', () => inLine(b), 10_000);
      // a's parked turn takes this in: it now asks for a human, not for the LLM.
      expect((await bot.post(textPayload({ from: a, text: 'I want to talk to a human' }))).status).toBe(200);

      // One slot frees: a is first in line and is woken, as LlmStep wakes the first in line.
      const next = await limiter.release(blockers.shift()!);
      expect(next.map((w) => w.chat)).toEqual([chatLane(TEST_PHONE_NUMBER_ID, a)]);
      await app
        .get(WakeUpService, { strict: false })
        .wake(next.map((w) => ({ lane: w.chat, tag: `${SLOT_WAKE_TAG}${w.since}` })));
      // a is handed over without the LLM and leaves the line; b gets the slot at once, not when a
      // is forgotten (30 s) or at its own recheck (10 s).
      await waitUntil('b answered', () => Promise.resolve(bot.graph.sends().some((r) => r.body?.to === b)), 8_000);
      expect(await inLine(a)).toBe(false);
      expect(
        await bot.redis.hget(
          `${bot.receiver.config.redisKeyRoot}:chat:${chatLane(TEST_PHONE_NUMBER_ID, a)}:handoff`,
          'state',
        ),
      ).toBe('human');
    } finally {
      for (const holder of blockers) await limiter.release(holder);
    }
  }, 40_000);
});

describe('a flood of messages from one chat', () => {
  let t: TestApp;

  sandboxAppPerSuite('0', (app) => (t = app));

  const repliesTo = async (to: string): Promise<number> =>
    (await t.redis.lrange(`${t.config.redisKeyRoot}:sandbox:outbox`, 0, -1)).filter(
      (e) => JSON.parse(e).payload.to === to,
    ).length;

  it('is answered in at most 10 turns a minute; the rest wait for the next window and are answered together', async () => {
    const from = '971500015200';
    const l = chatLane(TEST_PHONE_NUMBER_ID, from);
    for (let i = 1; i <= 10; i++) {
      expect((await t.postSigned(textPayload({ from, text: `message ${i}` }))).status).toBe(200);
      await waitUntil(`reply ${i}`, async () => (await repliesTo(from)) === i, 10_000);
    }
    for (let i = 11; i <= 15; i++)
      expect((await t.postSigned(textPayload({ from, text: `message ${i}` }))).status).toBe(200);
    // The eleventh turn is parked until the minute is over; the later messages wait with it.
    await waitUntil(
      'the turn to park',
      async () => Number(await t.redis.hget(t.keys.lane(l), 'nb')) > Date.now() + 30_000,
      10_000,
    );
    const waiting = async (): Promise<number> =>
      (await t.redis.llen(t.keys.turnItems(l))) + (await t.redis.llen(t.keys.inbox(l)));
    await waitUntil('every later message to wait with it', async () => (await waiting()) === 5, 10_000);
    expect(await repliesTo(from)).toBe(10);
    // The minute passes (moved by hand: leases and wake-ups keep real time).
    await t.redis.hset(t.keys.lane(l), 'rateStart', 0, 'nb', Date.now() - 5000);
    await t.redis.zadd(t.keys.parked, Date.now() - 5000, l);
    await waitUntil('one reply to the five waiting messages', async () => (await repliesTo(from)) === 11, 15_000);
    expect(await waiting()).toBe(0);
  }, 60_000);
});

describe('takeover after SIGKILL, default lease, two workers', () => {
  let bot: BotCluster;
  const lastUser = (r: RecordedLlmRequest): string => r.body.messages[r.body.messages.length - 1].content;
  const keyOf = (r: RecordedLlmRequest): string | undefined => r.headers.authorization;

  beforeAll(async () => {
    // TURN_LEASE_MS left at its default.
    bot = await BotCluster.start({
      workers: 1,
      env: { TURN_LEASE_MS: undefined, LLM_API_KEY: 'worker-a', LOG_LEVEL: 'warn' },
    });
    await bot.addWorker({ LLM_API_KEY: 'worker-b' });
  }, 120_000);

  afterAll(async () => {
    await bot?.close();
  });

  it('a worker SIGKILLed mid-turn: another restarts the turn within 5 s, one reply goes out', async () => {
    const from = '971500015999';
    bot.llm.latencyMs = 4000;
    expect((await bot.post(textPayload({ from, text: 'killed' }))).status).toBe(200);
    await bot.llm.waitForRequests(1, 30_000);
    const holder = bot.workers.find((w: SpawnedApp) => `Bearer ${w.env.LLM_API_KEY}` === keyOf(bot.llm.requests[0]))!;
    const killedAt = Date.now();
    holder.kill('SIGKILL');
    await holder.waitExit();
    bot.workers.splice(bot.workers.indexOf(holder), 1);
    await bot.llm.waitForRequests(2, 30_000);
    const restartedAfter = Date.now() - killedAt;
    await bot.graph.waitForSends(1, 30_000);
    await bot.waitQuiet(30_000);
    expect(restartedAfter).toBeLessThanOrEqual(5000);
    expect(bot.llm.requests.map(lastUser)).toEqual(['killed', 'killed']);
    expect(bot.sentTexts(from)).toEqual(['Echo: killed']);
  }, 90_000);
});
