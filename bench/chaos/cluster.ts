import { createHmac } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { FakeChatwootServer } from '../../test/fakes/fake-chatwoot.server';
import { FakeGraphServer } from '../../test/fakes/fake-graph.server';
import { FakeLlmServer } from '../../test/fakes/fake-llm.server';
import { deadLetters, type DeadLetterJob } from '../../test/utils/dead-letters';
import { freePort, startPrivateRedis, type PrivateRedis } from '../../test/utils/private-redis';
import { benchEnv, PHONE_NUMBER_ID, SECRET } from '../bench-apps';
import { type ChaosConfig } from './config';
import { chatOfWaId } from './plan';
import { AppProcess, snapshotDist } from './processes';

export const CHATWOOT_WEBHOOK_TOKEN = 'chaos-chatwoot-webhook-token';
const LOG_HASH_KEY = 'chaos-log-hash-key-0123456789abcdef';

/** The id the app's logs give a lane (LogHasher with the run's LOG_HASH_KEY). */
export const logHashOf = (lane: string): string =>
  createHmac('sha256', LOG_HASH_KEY).update(lane).digest('hex').slice(0, 16);
export { PHONE_NUMBER_ID, SECRET };

/** Wake-up jobs and keys of these lanes must be gone for the bot to be done: chats and their desk lanes. */
const DRAINED_LANES = /^[cd]\./;

/**
 * The bot as deployed, on loopback: receivers and workers of the built app (each its own process,
 * on its own port), a private redis-server with the AOF fsynced on every write (so that a restart
 * loses nothing acknowledged), the fake LLM, Graph API and Chatwoot.
 */
export class ChaosCluster {
  /** When the ack of each part key was first written (a send's answer, or a status), as seen live. */
  readonly ackWrittenAt = new Map<string, number>();
  private readonly logs: WriteStream[] = [];
  private subscriber?: Redis;
  private queue?: Queue;
  private queueConnection?: Redis;

  private constructor(
    readonly redis: PrivateRedis,
    readonly client: Redis,
    readonly llm: FakeLlmServer,
    readonly graph: FakeGraphServer,
    readonly chatwoot: FakeChatwootServer,
    readonly receivers: AppProcess[],
    readonly workers: AppProcess[],
    readonly root: string,
  ) {}

  static async start(config: ChaosConfig, runDir: string): Promise<ChaosCluster> {
    const mainJs = await snapshotDist(runDir);
    // Keyspace events for string writes: the harness times when each part's ack is written.
    const redis = await startPrivateRedis({
      args: ['--appendonly', 'yes', '--appendfsync', 'always', '--notify-keyspace-events', 'E$'],
    });
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 200 });
    client.on('error', () => undefined);
    const subscriber = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    subscriber.on('error', () => undefined);
    const [llm, graph, chatwoot] = await Promise.all([
      FakeLlmServer.start(),
      FakeGraphServer.start({ accessToken: 'bench-token' }),
      FakeChatwootServer.start(),
    ]);
    const prefix = `chaos_${config.seed}`;
    const env = benchEnv(
      redis.url,
      prefix,
      { graphUrl: graph.url, llmUrl: llm.url },
      {
        LOG_LEVEL: config.app.logLevel,
        TURN_LEASE_MS: String(config.app.leaseMs),
        SEND_UNKNOWN_WAIT_MS: String(config.app.sendUnknownWaitMs),
        LLM_TIMEOUT_MS: String(config.app.llmTimeoutMs),
        LLM_BACKOFF_MS: String(config.app.llmBackoffMs),
        LLM_MAX_ATTEMPTS: String(config.app.llmMaxAttempts),
        TURN_DEBOUNCE_MS: String(config.app.debounceMs),
        // Known, so that a finding can name the chat as the logs do (logHashOf).
        LOG_HASH_KEY,
        CHATWOOT_BASE_URL: chatwoot.url,
        CHATWOOT_API_TOKEN: chatwoot.token,
        CHATWOOT_ACCOUNT_ID: String(chatwoot.accountId),
        CHATWOOT_INBOX_ID: String(chatwoot.inboxId),
        CHATWOOT_WEBHOOK_TOKEN,
      },
    );
    const logs: WriteStream[] = [];
    const make = async (role: 'receiver' | 'worker', i: number): Promise<AppProcess> => {
      const name = `${role}-${i + 1}`;
      const log = createWriteStream(join(runDir, `${name}.log`), { flags: 'a' });
      logs.push(log);
      return new AppProcess(name, role, await freePort(), env, mainJs, log, config.nice);
    };
    const receivers: AppProcess[] = [];
    const workers: AppProcess[] = [];
    for (let i = 0; i < config.receivers; i++) receivers.push(await make('receiver', i));
    for (let i = 0; i < config.workers; i++) workers.push(await make('worker', i));
    const cluster = new ChaosCluster(redis, client, llm, graph, chatwoot, receivers, workers, `{${prefix}}`);
    cluster.logs.push(...logs);
    cluster.subscriber = subscriber;
    const ackPrefix = `${cluster.root}:ack:`;
    subscriber.on('pmessage', (_pattern: string, _channel: string, key: string) => {
      if (key.startsWith(ackPrefix) && !cluster.ackWrittenAt.has(key.slice(ackPrefix.length))) {
        cluster.ackWrittenAt.set(key.slice(ackPrefix.length), Date.now());
      }
    });
    await subscriber.psubscribe('__keyevent@*__:set');
    try {
      await Promise.all([...receivers, ...workers].map((p) => p.start()));
    } catch (err) {
      await cluster.close();
      throw err;
    }
    return cluster;
  }

  get processes(): AppProcess[] {
    return [...this.receivers, ...this.workers];
  }

  /**
   * Every chat and desk lane is done: nothing pending, parked, queued, held or in flight. Status
   * lanes are left out: a status for a message the app never recorded (a holding message whose
   * send failed after Meta took it) is retried for two minutes before it counts as an orphan.
   */
  async isQuiet(): Promise<boolean> {
    for (const set of ['pending', 'parked', 'inflight']) {
      const lanes = await this.client.zrange(`${this.root}:${set}`, 0, -1);
      if (lanes.some((lane) => DRAINED_LANES.test(lane))) return false;
    }
    for (const kind of ['inbox', 'turn', 'lease']) {
      for (const lane of ['c', 'd']) if (await this.anyKey(`${this.root}:${kind}:${lane}.*`)) return false;
    }
    const jobs = await this.turnsQueue().getJobs(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);
    return !jobs.some((job) => job && DRAINED_LANES.test(String((job.data as { lane?: string }).lane ?? '')));
  }

  /** What keeps the bot from being quiet, for the timeline of a slow or stuck drain. */
  async busy(): Promise<string> {
    const parts: string[] = [];
    for (const set of ['pending', 'parked', 'inflight']) {
      const lanes = (await this.client.zrange(`${this.root}:${set}`, 0, -1)).filter((l) => DRAINED_LANES.test(l));
      if (lanes.length > 0) parts.push(`${set} ${lanes.length}`);
    }
    const jobs = await this.turnsQueue().getJobs(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);
    const mine = jobs.filter((job) => job && DRAINED_LANES.test(String((job.data as { lane?: string }).lane ?? '')));
    if (mine.length > 0) parts.push(`wake-ups ${mine.length}`);
    return parts.join(', ') || 'nothing in Redis';
  }

  /**
   * The state of every chat or desk lane still waiting: what its scheduling hash, inbox and lease
   * say, with the turn's send bookkeeping (not its texts). For a drain that never ends.
   */
  async stuckLanes(): Promise<Record<string, unknown>[]> {
    const lanes = new Set<string>();
    for (const set of ['pending', 'parked', 'inflight']) {
      for (const lane of await this.client.zrange(`${this.root}:${set}`, 0, -1))
        if (DRAINED_LANES.test(lane)) lanes.add(lane);
    }
    const now = Date.now();
    return Promise.all(
      [...lanes].map(async (lane) => {
        const hash = await this.client.hgetall(`${this.root}:lane:${lane}`);
        const turn = hash.turn ? (JSON.parse(hash.turn) as Record<string, any>) : undefined;
        return {
          lane: lane.slice(0, 2),
          chat: chatOfWaId(lane.split('.')[2] ?? ''),
          log: logHashOf(lane),
          notBeforeInMs: hash.nb ? Number(hash.nb) - now : undefined,
          fence: hash.fence,
          failures: hash.failures,
          rate: { start: hash.rateStart, count: hash.rateCount },
          inbox: await this.client.llen(`${this.root}:inbox:${lane}`),
          turnItems: await this.client.llen(`${this.root}:turn:${lane}`),
          leaseTtlMs: await this.client.pttl(`${this.root}:lease:${lane}`),
          turn: turn && {
            id: turn.id,
            ageMs: now - Number(turn.startedAt),
            attempts: turn.attempts,
            sendFailures: turn.sendFailures,
            pairRateFailures: turn.pairRateFailures,
            escalation: turn.escalation,
            reply: turn.reply && {
              kind: turn.reply.kind,
              parts: turn.reply.parts?.length,
              sent: turn.reply.sent,
              sending: turn.reply.sending,
            },
          },
          scores: {
            pending: await this.client.zscore(`${this.root}:pending`, lane),
            parked: await this.client.zscore(`${this.root}:parked`, lane),
            inflight: await this.client.zscore(`${this.root}:inflight`, lane),
          },
        };
      }),
    );
  }

  deadLetters(): Promise<DeadLetterJob[]> {
    return deadLetters(this.client, this.root);
  }

  async close(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.kill()));
    await this.queue?.close().catch(() => undefined);
    this.queueConnection?.disconnect();
    this.subscriber?.disconnect();
    this.client.disconnect();
    await Promise.all([this.llm.close(), this.graph.close(), this.chatwoot.close()]);
    await this.redis.dispose();
    await Promise.all(this.logs.map((log) => new Promise<void>((r) => log.end(() => r()))));
  }

  private turnsQueue(): Queue {
    if (!this.queue) {
      // A Queue given a connection never closes it: close() disconnects it.
      this.queueConnection = this.client.duplicate();
      this.queueConnection.on('error', () => undefined);
      this.queue = new Queue('turns', { connection: this.queueConnection, prefix: this.root });
    }
    return this.queue;
  }

  private async anyKey(pattern: string): Promise<boolean> {
    const escaped = pattern.replace(/[{}]/g, (c) => `\\${c}`);
    let cursor = '0';
    do {
      const [next, keys] = await this.client.scan(cursor, 'MATCH', escaped, 'COUNT', 5000);
      if (keys.length > 0) return true;
      cursor = next;
    } while (cursor !== '0');
    return false;
  }
}
