import { Queue } from 'bullmq';
import { Cluster } from 'ioredis';
import { RedisConnections } from '../../src/redis/redis-connections.service';
import { TURNS_QUEUE, TurnJob, type WakeJobData } from '../../src/queue/queue.constants';
import { chatLane, statusLane } from '../../src/queue/lanes';
import { envelope, freshWamid, nowSeconds, textMessage, textPayload } from '../utils/meta-payloads';
import { killAllPrivateRedis, startPrivateRedis, type PrivateRedis } from '../utils/private-redis';
import { scanKeys } from '../utils/redis-cluster';
import { startTestApp, type TestApp } from '../utils/test-app';
import { TEST_PHONE_NUMBER_ID } from '../utils/test-env';

/**
 * The ingest runs on Redis Cluster. A one-node cluster (every slot on one master)
 * enforces what a real one does — a script or command touching keys of two slots fails with
 * CROSSSLOT — so a key outside the hash tag fails here, not in production.
 */
describe('the ingest on a one-node Redis Cluster', () => {
  let redis: PrivateRedis;
  let t: TestApp;
  /** Assertions go through a cluster client too, as an operator's tooling would. */
  let cluster: Cluster;
  let queue: Queue<WakeJobData>;

  beforeAll(async () => {
    redis = await startPrivateRedis({ cluster: true });
    t = await startTestApp({
      APP_ROLE: 'receiver',
      REDIS_URL: redis.url,
      REDIS_CLUSTER_NODES: `127.0.0.1:${redis.port}`,
    });
    cluster = new Cluster([{ host: '127.0.0.1', port: redis.port }]);
    queue = new Queue<WakeJobData>(TURNS_QUEUE, { connection: cluster, prefix: t.config.redisKeyRoot });
  });

  afterAll(async () => {
    try {
      await queue?.close();
      await t?.close();
    } finally {
      cluster?.disconnect();
      await redis?.dispose();
      killAllPrivateRedis();
    }
  });

  async function inbox(lane: string): Promise<{ key: string; raw: Record<string, unknown> }[]> {
    const raw = await cluster.lrange(t.keys.inbox(lane), 0, -1);
    return raw.map((r) => JSON.parse(r) as { key: string; raw: Record<string, unknown> });
  }

  /**
   * Exactly one waiting wake-up job for the lane, read through BullMQ itself on the cluster. Found
   * by its data, not its id: the id scheme (lane plus pending episode) is the app's business.
   */
  async function expectWakeUp(lane: string): Promise<void> {
    const jobs = await queue.getJobs(['waiting', 'delayed', 'prioritized', 'paused']);
    const wakes = jobs.filter((job) => job.data.lane === lane).map((job) => ({ name: job.name, data: job.data }));
    expect({ lane, wakes }).toEqual({ lane, wakes: [{ name: TurnJob.Wake, data: { lane } }] });
  }

  it('runs the app on the cluster: its connections are Cluster clients and ready is 200', async () => {
    // One node holds every slot, so a plain client would work too: make sure this is cluster mode.
    const connections = t.app.get(RedisConnections, { strict: false });
    for (const kind of ['ingest', 'health', 'producer'] as const) {
      expect({ kind, cluster: connections[kind] instanceof Cluster }).toEqual({ kind, cluster: true });
    }
    // Ready only once every connection (the ingest one too) has loaded the cluster's slots.
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      status = (await fetch(`${t.url}/health/ready`)).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(200);
    expect(String(await cluster.call('CLUSTER', 'INFO'))).toContain('cluster_state:ok');
  });

  it('stores a single message in its lane and wakes the lane', async () => {
    const sender = '971500000201';
    const payload = textPayload({ from: sender, text: 'cluster hello' });
    expect((await t.postSigned(payload)).status).toBe(200);
    const lane = chatLane(TEST_PHONE_NUMBER_ID, sender);
    const items = await inbox(lane);
    expect(items.map((i) => (i.raw.text as { body: string }).body)).toEqual(['cluster hello']);
    expect(await cluster.zscore(t.keys.pending, lane)).not.toBeNull();
    await expectWakeUp(lane);
  });

  it('stores the same payload delivered 10 times concurrently once', async () => {
    const sender = '971500000202';
    const id = freshWamid();
    const raw = JSON.stringify(textPayload({ id, from: sender }));
    const answers = await Promise.all(Array.from({ length: 10 }, () => t.postSigned(raw)));
    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(200));
    const lane = chatLane(TEST_PHONE_NUMBER_ID, sender);
    expect((await inbox(lane)).map((i) => i.key)).toEqual([`m:${id}`]);
    await expectWakeUp(lane);
  });

  it('puts every message and status of a batch into its own lane', async () => {
    const senders = ['971500000211', '971500000212', '971500000213'];
    const messages = senders.flatMap((from) => [
      textMessage({ from, text: `${from} one` }),
      textMessage({ from, text: `${from} two` }),
    ]);
    const recipients = ['971500000221', '971500000222'];
    const statuses = recipients.flatMap((recipient_id) =>
      ['sent', 'delivered'].map((status) => ({ id: freshWamid(), status, timestamp: nowSeconds(), recipient_id })),
    );
    const payload = envelope({ messages, statuses });
    expect((await t.postSigned(payload)).status).toBe(200);

    for (const from of senders) {
      const lane = chatLane(TEST_PHONE_NUMBER_ID, from);
      const texts = (await inbox(lane)).map((i) => (i.raw.text as { body: string }).body);
      expect({ lane, texts }).toEqual({ lane, texts: [`${from} one`, `${from} two`] });
      await expectWakeUp(lane);
    }
    for (const recipient of recipients) {
      const lane = statusLane(TEST_PHONE_NUMBER_ID, recipient);
      const expected = statuses.filter((s) => s.recipient_id === recipient).map((s) => `s:${s.id}:${s.status}`);
      expect({ lane, keys: (await inbox(lane)).map((i) => i.key) }).toEqual({ lane, keys: expected });
      expect(await cluster.zscore(t.keys.pending, lane)).not.toBeNull();
      await expectWakeUp(lane);
    }
  });

  it('created every key inside the prefix, all in one hash slot', async () => {
    const node = cluster.nodes('master')[0];
    // The private server holds nothing but this app's keys: every one of them is checked.
    const keys = await scanKeys(node);
    const root = t.config.redisKeyRoot;
    expect(keys).toEqual(expect.arrayContaining([t.keys.pending, `${root}:turns:meta`]));
    expect(keys.some((k) => k.startsWith(`${root}:inbox:`))).toBe(true);
    expect(keys.some((k) => k.startsWith(`${root}:seen:`))).toBe(true);
    const slot = Number(await node.call('CLUSTER', 'KEYSLOT', root));
    const outside: string[] = [];
    for (const key of keys) {
      const keySlot = Number(await node.call('CLUSTER', 'KEYSLOT', key));
      if (!key.startsWith(`${root}:`) || keySlot !== slot) outside.push(`${key} (slot ${keySlot})`);
    }
    expect(outside).toEqual([]);
  });
});
