import { Cluster } from 'ioredis';
import { AppConfig } from '../../src/config/app-config';
import { validateEnv } from '../../src/config/validate-env';
import { createRedisClient, waitReady } from '../../src/redis/redis-client';
import { RedisConnections } from '../../src/redis/redis-connections.service';
import { chatLane, statusLane } from '../../src/queue/lanes';
import { BotCluster } from '../utils/bot-cluster';
import { agentMessage, statusChanged } from '../utils/chatwoot-payloads';
import { envelope, nowSeconds, textMessage, textPayload } from '../utils/meta-payloads';
import {
  masterOfSlot,
  scanKeys,
  startRedisCluster,
  type ClusterNode,
  type PrivateRedisCluster,
} from '../utils/redis-cluster';
import { waitUntil } from '../utils/spawn-app';
import { startTestApp, type TestApp } from '../utils/test-app';
import { TEST_PHONE_NUMBER_ID, testEnv, uniquePrefix } from '../utils/test-env';

const REPLIED = 'tawasul_turns_total{outcome="replied"}';

/**
 * Cluster-readiness on a real Redis Cluster: three masters, each a process of its own with a third of
 * the slots. The one-node cluster (cluster.e2e-spec) catches a key outside the hash tag; only
 * here does a client that ignores the slot map, or a key that leaves the tag, reach the wrong
 * process. The bot runs as in production — a receiver here, two spawned workers, a fake Chatwoot
 * — and every process gets REDIS_URL of one node and REDIS_CLUSTER_NODES of all three.
 */
describe('the bot on a three-master Redis Cluster', () => {
  let redis: PrivateRedisCluster;
  let bot: BotCluster;
  /** A second receiver seeded with one node only, as with a managed cluster's configuration endpoint. */
  let seeded: TestApp | undefined;
  /** Reads go through a cluster client, as an operator's tooling would. */
  let cluster: Cluster;
  let root: string;
  let slot: number;
  let owner: ClusterNode;
  let sender = 971500600000;
  const nextSender = (): string => String(++sender);

  beforeAll(async () => {
    redis = await startRedisCluster(3);
    // A prefix whose slot is not on the REDIS_URL node: the app must follow the slot map, and a
    // process that quietly used REDIS_URL as a plain Redis would get MOVED for every key.
    const urlPort = redis.servers[0].port;
    let prefix = uniquePrefix();
    while (
      (await masterOfSlot(redis.client({ host: '127.0.0.1', port: urlPort }), await redis.keySlot(`{${prefix}}`)))
        .port === urlPort
    ) {
      prefix = uniquePrefix();
    }
    bot = await BotCluster.start({
      workers: 2,
      chatwoot: true,
      redisCluster: redis,
      // Two turns at a time per worker: a burst of chats cannot all land on one of them.
      env: { REDIS_PREFIX: prefix, WORKER_CONCURRENCY: '2' },
    });
    root = bot.receiver.config.redisKeyRoot;
    slot = await redis.keySlot(root);
    owner = await masterOfSlot(redis.client({ host: '127.0.0.1', port: urlPort }), slot);
    cluster = redis.cluster();
  }, 120_000);

  afterAll(async () => {
    try {
      await seeded?.close();
      await bot?.close();
    } finally {
      // Disconnects the cluster client too.
      await redis?.dispose();
    }
  });

  beforeEach(() => {
    bot.llm.reset();
    bot.graph.reset();
  });

  async function inboxKeys(lane: string): Promise<string[]> {
    const raw = await cluster.lrange(bot.receiver.keys.inbox(lane), 0, -1);
    return raw.map((r) => (JSON.parse(r) as { key: string }).key);
  }

  it('is a cluster of three masters, and every process runs on it in cluster mode', async () => {
    const masters = await redis.masters();
    expect(masters).toHaveLength(3);
    const slots = masters.flatMap((m) => m.ranges).reduce((sum, [start, end]) => sum + end - start + 1, 0);
    expect(slots).toBe(16384);
    expect(owner.port).not.toBe(redis.servers[0].port);
    const connections = bot.receiver.app.get(RedisConnections, { strict: false });
    for (const kind of ['ingest', 'health', 'producer'] as const) {
      expect({ kind, cluster: connections[kind] instanceof Cluster }).toEqual({ kind, cluster: true });
    }
    for (const app of [bot.receiver, ...bot.workers]) {
      await waitUntil(`${app.url}/health/ready = 200`, async () => (await fetch(`${app.url}/health/ready`)).ok, 10_000);
    }
  });

  it('ingest: a batch of messages and statuses lands in its lanes, and the frozen workers answer once thawed', async () => {
    // The statuses are for a reply sent before: a status of an unknown message is retried for minutes.
    const recipient = nextSender();
    await bot.post(textPayload({ from: recipient, text: 'a reply to report on' }));
    const [send] = await bot.graph.waitForSends(1, 20_000);
    await bot.waitQuiet();
    const senders = [nextSender(), nextSender()];
    const messages = senders.flatMap((from) => [
      textMessage({ from, text: `${from} one` }),
      textMessage({ from, text: `${from} two` }),
    ]);
    const statuses = ['sent', 'delivered'].map((status) => ({
      id: send.wamid,
      status,
      timestamp: nowSeconds(),
      recipient_id: recipient,
      biz_opaque_callback_data: send.body.biz_opaque_callback_data,
    }));
    for (const worker of bot.workers) worker.kill('SIGSTOP');
    try {
      const payload = envelope({ messages, statuses });
      // Delivered twice: the second copy is acknowledged and dropped.
      expect((await bot.post(payload)).status).toBe(200);
      expect((await bot.post(payload)).status).toBe(200);
      for (const from of senders) {
        const lane = chatLane(TEST_PHONE_NUMBER_ID, from);
        const expected = messages.filter((m) => m.from === from).map((m) => `m:${String(m.id)}`);
        expect({ lane, keys: await inboxKeys(lane) }).toEqual({ lane, keys: expected });
        expect(await cluster.zscore(bot.receiver.keys.pending, lane)).not.toBeNull();
      }
      const lane = statusLane(TEST_PHONE_NUMBER_ID, recipient);
      expect(await inboxKeys(lane)).toEqual(statuses.map((s) => `s:${s.id}:${s.status}`));
    } finally {
      for (const worker of bot.workers) worker.kill('SIGCONT');
    }
    await waitUntil('a reply to each sender', () => senders.every((from) => bot.sentTexts(from).length > 0), 30_000);
    await bot.waitQuiet();
    for (const from of senders) {
      // Both messages of a chat waited together: one turn answers them, both in its context, in order.
      const turns = bot.llm.requests
        .map((r) => (r.body.messages as { role: string; content: string }[]).filter((m) => m.role === 'user'))
        .filter((users) => users.some((m) => m.content.includes(from)));
      expect(turns.map((users) => users.map((m) => m.content).join('\n'))).toEqual([`${from} one\n${from} two`]);
      expect(bot.sentTexts(from)).toHaveLength(1);
    }
    expect(await cluster.hget(bot.receiver.keys.outbound(send.wamid!), 'status')).toBe('delivered');
  }, 60_000);

  it('turns across the two workers: every message gets one reply, in order', async () => {
    const senders = Array.from({ length: 6 }, nextSender);
    const rounds = 3;
    bot.llm.latencyMs = 150;
    const before = await bot.metricsPerWorker([REPLIED]);
    try {
      await Promise.all(
        senders.map(async (from) => {
          for (let n = 1; n <= rounds; n++) {
            expect((await bot.post(textPayload({ from, text: `${from} m${n}` }))).status).toBe(200);
            await waitUntil(`reply ${n} to ${from}`, () => bot.sentTexts(from).length >= n, 30_000);
          }
        }),
      );
    } finally {
      bot.llm.latencyMs = 0;
    }
    await bot.waitQuiet();
    for (const from of senders) {
      const expected = Array.from({ length: rounds }, (_, i) => `Echo: ${from} m${i + 1}`);
      expect({ from, replies: bot.sentTexts(from) }).toEqual({ from, replies: expected });
    }
    const after = await bot.metricsPerWorker([REPLIED]);
    const perWorker = after.map((m, i) => m[REPLIED] - before[i][REPLIED]);
    expect(perWorker.reduce((a, b) => a + b, 0)).toBe(senders.length * rounds);
    expect(perWorker.every((turns) => turns > 0)).toBe(true);
  }, 90_000);

  it('hand-over: the history reaches Chatwoot, the agent’s reply reaches the patient, resolved gives the chat back', async () => {
    const from = nextSender();
    await bot.post(textPayload({ from, text: 'hello' }));
    await bot.graph.waitForSends(1, 20_000);
    await bot.waitQuiet();
    await bot.post(textPayload({ from, text: 'I want to file a complaint about my bill' }));
    const { id } = await bot.handedOver(from, 5);
    const visible = bot.chatwoot
      .messagesOf(id)
      .filter((m) => !m.private)
      .map((m) => [m.messageType, m.content]);
    const sent = bot.sentTexts(from);
    expect(sent).toHaveLength(2);
    expect(visible).toEqual([
      ['incoming', 'hello'],
      ['outgoing', 'Echo: hello'],
      ['incoming', 'I want to file a complaint about my bill'],
      ['outgoing', sent[1]],
    ]);
    expect(bot.llm.requests).toHaveLength(1);
    const handoff = bot.receiver.keys.handoff(chatLane(TEST_PHONE_NUMBER_ID, from));
    expect(await cluster.hget(handoff, 'state')).toBe('human');

    expect(
      (await bot.postChatwoot(agentMessage({ conversationId: id, content: 'Sara here.', waId: from }))).status,
    ).toBe(200);
    await bot.graph.waitForSends(3, 20_000);
    await bot.waitQuiet();
    expect(bot.sentTexts(from).at(-1)).toBe('Sara here.');

    expect((await bot.postChatwoot(statusChanged({ conversationId: id, status: 'resolved', waId: from }))).status).toBe(
      200,
    );
    await bot.waitQuiet();
    await bot.post(textPayload({ from, text: 'thank you' }));
    await bot.graph.waitForSends(4, 20_000);
    await bot.waitQuiet();
    expect(bot.sentTexts(from).at(-1)).toBe('Echo: thank you');
  }, 90_000);

  it('statuses settle the outbound record once each, and never move it backwards', async () => {
    const from = nextSender();
    await bot.post(textPayload({ from, text: 'status please' }));
    const [send] = await bot.graph.waitForSends(1, 20_000);
    await bot.waitQuiet();
    const status = (name: string): Record<string, unknown> => ({
      id: send.wamid,
      status: name,
      timestamp: nowSeconds(),
      recipient_id: from,
      biz_opaque_callback_data: send.body.biz_opaque_callback_data,
    });
    await bot.post(envelope({ statuses: [status('sent'), status('delivered')] }));
    await bot.post(envelope({ statuses: [status('read'), status('delivered')] }));
    await bot.post(envelope({ statuses: [status('read')] }));
    await bot.waitQuiet();
    const record = await cluster.hgetall(bot.receiver.keys.outbound(send.wamid!));
    expect({ status: record.status, lane: record.lane }).toEqual({
      status: 'read',
      lane: chatLane(TEST_PHONE_NUMBER_ID, from),
    });
    for (const name of ['sent', 'delivered', 'read']) {
      expect(await cluster.exists(bot.receiver.keys.dedup(`s:${send.wamid}:${name}`))).toBe(1);
    }
  });

  it('a receiver seeded with one node that does not hold the slot ingests too', async () => {
    seeded = await startTestApp({
      ...bot.env,
      APP_ROLE: 'receiver',
      REDIS_CLUSTER_NODES: `127.0.0.1:${redis.servers[0].port}`,
    });
    const from = nextSender();
    await waitUntil(
      'the seeded receiver to be ready',
      async () => (await fetch(`${seeded!.url}/health/ready`)).ok,
      5_000,
    );
    expect((await seeded.postSigned(textPayload({ from, text: 'via one seed' }))).status).toBe(200);
    await bot.graph.waitForSends(1, 20_000);
    await bot.waitQuiet();
    expect(bot.sentTexts(from)).toEqual(['Echo: via one seed']);
  });

  it('a client of each kind seeded with one node is ready at once, and its first command to another node succeeds', async () => {
    // ioredis opens node connections lazily on their first command. Without the node's own offline
    // queue that command fails, the ready check's CLUSTER INFO included, and the client reconnected
    // until a random pick hit a connected node: seconds, once more than 30 s in CI.
    const config = new AppConfig(
      validateEnv(testEnv({ ...bot.env, REDIS_CLUSTER_NODES: `127.0.0.1:${redis.servers[0].port}` })),
    );
    for (let round = 0; round < 3; round++) {
      for (const kind of ['ingest', 'health', 'producer', 'worker'] as const) {
        const client = createRedisClient(kind, config);
        client.on('error', () => undefined);
        try {
          expect({ kind, round, ready: await waitReady(client, 2_000) }).toEqual({ kind, round, ready: true });
          expect(await client.exists(`${root}:probe:${kind}`)).toBe(0);
        } finally {
          client.disconnect();
        }
      }
    }
  });

  it('wrote every key under the prefix, in its one slot, on that slot’s master only, and no command crossed slots', async () => {
    const keysByPort = new Map<number, string[]>();
    for (const master of await redis.masters()) keysByPort.set(master.port, await scanKeys(redis.client(master)));
    // The private servers hold nothing but this bot's keys: every one of them is checked.
    const keys = keysByPort.get(owner.port) ?? [];
    const elsewhere = [...keysByPort].filter(([port]) => port !== owner.port).flatMap(([, k]) => k);
    expect(elsewhere).toEqual([]);
    for (const kind of ['seen:', 'lane:', 'chat:', 'out:', 'ack:', 'cost:', 'cwown:', 'turns:']) {
      expect({ kind, found: keys.some((k) => k.startsWith(`${root}:${kind}`)) }).toEqual({ kind, found: true });
    }
    const pipeline = redis.client(owner).pipeline();
    for (const key of keys) pipeline.call('CLUSTER', 'KEYSLOT', key);
    const slots = ((await pipeline.exec()) ?? []).map(([, s]) => Number(s));
    const outside = keys.filter((key, i) => !key.startsWith(`${root}:`) || slots[i] !== slot);
    expect(outside).toEqual([]);
    // Redis counts every error reply by its code: a CROSSSLOT anywhere, from any process, shows here.
    for (const master of await redis.masters()) {
      const errors = String(await redis.client(master).info('errorstats'));
      expect({ port: master.port, crossslot: /errorstat_CROSSSLOT/.test(errors) }).toEqual({
        port: master.port,
        crossslot: false,
      });
    }
  });
});
