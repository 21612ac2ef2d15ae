import { Queue } from 'bullmq';
import { type Redis } from 'ioredis';
import { FakeChatwootServer, type FakeMessage } from '../fakes/fake-chatwoot.server';
import { FakeGraphServer } from '../fakes/fake-graph.server';
import { FakeLlmServer } from '../fakes/fake-llm.server';
import { TurnJob } from '../../src/queue/queue.constants';
import { type PrivateRedisCluster } from './redis-cluster';
import { killSpawnedApps, spawnApp, waitUntil, type SpawnedApp } from './spawn-app';
import { startTestApp, type TestApp } from './test-app';
import { uniquePrefix } from './test-env';

export interface BotClusterOptions {
  /** Worker processes (spawned, real processes). 0 runs the receiver with role `all` instead. */
  workers?: number;
  /** Environment for every process (receiver and workers). */
  env?: Record<string, string | undefined>;
  /** Start a fake Chatwoot and configure every process for it. */
  chatwoot?: boolean;
  /**
   * Every process on this Redis Cluster: REDIS_URL of one node, REDIS_CLUSTER_NODES of all. `env`
   * still wins, e.g. for a process seeded with one node only.
   */
  redisCluster?: Pick<PrivateRedisCluster, 'url' | 'nodes'>;
}

export const CHATWOOT_WEBHOOK_TOKEN = 'test-chatwoot-webhook-token';

/**
 * The whole bot as in production, on loopback: a fake LLM (vLLM API) and a fake Graph API, the
 * receiver in this process (fast posting), and N worker processes spawned from src/main.ts, all
 * on one REDIS_PREFIX of their own.
 */
export class BotCluster {
  readonly workers: SpawnedApp[] = [];
  private queue?: Queue;
  private queueConnection?: Redis;

  private constructor(
    readonly llm: FakeLlmServer,
    readonly graph: FakeGraphServer,
    readonly receiver: TestApp,
    readonly env: Record<string, string | undefined>,
    private readonly fakeChatwoot?: FakeChatwootServer,
  ) {}

  static async start(options: BotClusterOptions = {}): Promise<BotCluster> {
    // A failed start leaves afterAll nothing to close: what it started is closed here, or its
    // servers and child processes would hold the test run open.
    const started: { close(): Promise<void> }[] = [];
    try {
      return await BotCluster.startAll(options, started);
    } catch (err) {
      await killSpawnedApps();
      await Promise.all(started.reverse().map((s) => s.close().catch(() => undefined)));
      throw err;
    }
  }

  private static async startAll(
    options: BotClusterOptions,
    started: { close(): Promise<void> }[],
  ): Promise<BotCluster> {
    const llm = await FakeLlmServer.start();
    started.push(llm);
    const graph = await FakeGraphServer.start();
    started.push(graph);
    const chatwoot = options.chatwoot ? await FakeChatwootServer.start() : undefined;
    if (chatwoot) started.push(chatwoot);
    const workers = options.workers ?? 3;
    const env: Record<string, string | undefined> = {
      REDIS_PREFIX: uniquePrefix(),
      META_GRAPH_URL: graph.url,
      D360_BASE_URL: graph.url,
      LLM_PROVIDER: 'openai',
      LLM_BASE_URL: llm.url,
      TURN_DEBOUNCE_MS: '0',
      LLM_BACKOFF_MS: '200',
      TURN_LEASE_MS: '3000',
      SEND_UNKNOWN_WAIT_MS: '3000',
      MARK_READ: 'false',
      ...(options.redisCluster && {
        REDIS_URL: options.redisCluster.url,
        REDIS_CLUSTER_NODES: options.redisCluster.nodes,
      }),
      ...(chatwoot && {
        CHATWOOT_BASE_URL: chatwoot.url,
        CHATWOOT_API_TOKEN: chatwoot.token,
        CHATWOOT_ACCOUNT_ID: String(chatwoot.accountId),
        CHATWOOT_INBOX_ID: String(chatwoot.inboxId),
        CHATWOOT_WEBHOOK_TOKEN,
      }),
      ...options.env,
    };
    const receiver = await startTestApp({ ...env, APP_ROLE: workers > 0 ? 'receiver' : 'all' });
    started.push(receiver);
    const cluster = new BotCluster(llm, graph, receiver, env, chatwoot);
    // Settled, not all: a worker still starting when another failed would be spawned after the cleanup.
    const results = await Promise.allSettled(Array.from({ length: workers }, () => cluster.addWorker()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return cluster;
  }

  async addWorker(extraEnv: Record<string, string | undefined> = {}): Promise<SpawnedApp> {
    const worker = await spawnApp({ env: { ...this.env, ...extraEnv, APP_ROLE: 'worker' } });
    await worker.waitForLive();
    this.workers.push(worker);
    return worker;
  }

  /** The fake Chatwoot (only with `chatwoot: true`). */
  get chatwoot(): FakeChatwootServer {
    if (!this.fakeChatwoot) throw new Error('BotCluster started without chatwoot: true');
    return this.fakeChatwoot;
  }

  /**
   * Waits until `waId`'s chat is handed over to the fake Chatwoot with at least `messages` messages
   * in its conversation (the history and the note), and the bot is quiet; returns the conversation.
   */
  async handedOver(waId: string, messages = 3): Promise<{ id: number; messages: FakeMessage[] }> {
    let id = 0;
    await this.chatwoot.waitFor(
      () => {
        const contact = this.chatwoot.contacts().find((c) => c.identifier === `wa:${waId}`);
        id = this.chatwoot.conversations().find((c) => c.contactId === contact?.id)?.id ?? 0;
        return id > 0 && this.chatwoot.messagesOf(id).length >= messages;
      },
      30_000,
      `hand-over of ${waId}`,
    );
    await this.waitQuiet();
    return { id, messages: this.chatwoot.messagesOf(id) };
  }

  /** Chatwoot calling POST /chatwoot/webhook on the receiver. */
  postChatwoot(payload: unknown, options: { token?: string; secret?: string } = {}): Promise<Response> {
    return this.chatwoot.postWebhook(`${this.receiver.url}/chatwoot/webhook`, payload, {
      token: CHATWOOT_WEBHOOK_TOKEN,
      ...options,
    });
  }

  get redis(): Redis {
    return this.receiver.redis;
  }

  get turnsQueue(): Queue {
    if (!this.queue) {
      // A Queue given a connection never closes it: close() disconnects it here.
      this.queueConnection = this.receiver.redis.duplicate();
      this.queue = new Queue('turns', { connection: this.queueConnection, prefix: this.receiver.config.redisKeyRoot });
    }
    return this.queue;
  }

  post(payload: Record<string, unknown> | string): Promise<Response> {
    return this.receiver.postSigned(payload);
  }

  /** Texts the fake Graph accepted, in order, optionally for one recipient. */
  sentTexts(to?: string): string[] {
    return this.graph
      .sends()
      .filter((r) => r.wamid && r.body?.type === 'text' && (to === undefined || r.body.to === to))
      .map((r) => r.body.text.body as string);
  }

  /**
   * Everything is quiet: no wake-up waiting, active or delayed (the sweeper's schedule aside), no
   * inbox, no turn in flight, no lease, nothing pending — twice in a row, to not catch a handover.
   */
  async waitQuiet(timeoutMs = 30_000): Promise<void> {
    let quietChecks = 0;
    await waitUntil(
      'the bot to be quiet',
      async () => {
        quietChecks = (await this.isQuiet()) ? quietChecks + 1 : 0;
        return quietChecks >= 2;
      },
      timeoutMs,
    );
  }

  async isQuiet(): Promise<boolean> {
    const root = this.receiver.config.redisKeyRoot;
    const jobs = await this.turnsQueue.getJobs(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);
    if (jobs.some((job) => job && job.name !== String(TurnJob.Sweep))) return false;
    if ((await this.redis.zcard(`${root}:pending`)) > 0) return false;
    for (const pattern of [`${root}:inbox:*`, `${root}:lease:*`, `${root}:turn:*`]) {
      if (await this.anyKey(pattern)) return false;
    }
    return true;
  }

  private async anyKey(pattern: string): Promise<boolean> {
    const escaped = pattern.replace(/[{}]/g, (c) => `\\${c}`);
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', escaped, 'COUNT', 5000);
      if (keys.length > 0) return true;
      cursor = next;
    } while (cursor !== '0');
    return false;
  }

  /** Each series (`name` or `name{label="v"}`, exactly as printed) read from every worker process. */
  async metricsPerWorker(series: readonly string[]): Promise<Record<string, number>[]> {
    // Without worker processes the receiver runs role `all`: it is the worker.
    const processes = this.workers.length > 0 ? this.workers : [{ url: this.receiver.url }];
    return Promise.all(
      processes.map(async (worker) => {
        const totals: Record<string, number> = Object.fromEntries(series.map((s) => [s, 0]));
        const text = await (await fetch(`${worker.url}/metrics`)).text();
        for (const line of text.split('\n')) {
          if (line.startsWith('#')) continue;
          const space = line.lastIndexOf(' ');
          const name = line.slice(0, space);
          if (name in totals) totals[name] += Number(line.slice(space + 1));
        }
        return totals;
      }),
    );
  }

  /** Each series summed over the worker processes. */
  async metrics(series: readonly string[]): Promise<Record<string, number>> {
    const perWorker = await this.metricsPerWorker(series);
    return Object.fromEntries(series.map((s) => [s, perWorker.reduce((sum, m) => sum + m[s], 0)]));
  }

  /** One series summed over the worker processes (the receiver, when it runs role `all`): `metric('x_total', 'kind="a"')` reads `x_total{kind="a"}`. */
  async metric(name: string, labels = ''): Promise<number> {
    const series = labels ? `${name}{${labels}}` : name;
    return (await this.metrics([series]))[series];
  }

  /** How much each series of `before` (a metrics() reading) grew since. */
  async metricDeltas(before: Record<string, number>): Promise<Record<string, number>> {
    const after = await this.metrics(Object.keys(before));
    return Object.fromEntries(Object.keys(before).map((k) => [k, after[k] - before[k]]));
  }

  async close(): Promise<void> {
    await killSpawnedApps();
    await this.queue?.close();
    this.queueConnection?.disconnect();
    await this.receiver.close();
    await Promise.all([this.llm.close(), this.graph.close(), this.fakeChatwoot?.close()]);
  }
}
