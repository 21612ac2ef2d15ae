import { InjectQueue } from '@nestjs/bullmq';
import {
  type BeforeApplicationShutdown,
  Injectable,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { type Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { type DeadLetterData } from '../conversation/dead-letters';
import { type IngestItem } from '../dedup/ingest-item';
import { WakeUpService } from '../dedup/wake-up.service';
import { settlesWithin } from '../health/shutdown-limits';
import { AppLogger } from '../logging/app-logger';
import { LogHasher } from '../logging/log-hasher';
import { DEAD_LETTERS_QUEUE } from '../queue/queue.constants';
import { REQUEUE_SCRIPT } from '../queue/requeue.script';
import { isConnectionError, type RedisClient } from '../redis/redis-client';
import { RedisConnections } from '../redis/redis-connections.service';
import { RedisKeys } from '../redis/redis-keys';

type RequeueCommand = (...keysAndArgs: (string | number)[]) => Promise<[number, string]>;

/** What a re-run dead letter answers: the dashboard shows it as the job's return value. */
export type RequeueResult =
  { requeued: number; lane?: string } | { requeued: 0; alreadyRequeuedAt: string } | { requeued: 0; gone: true };

/** Before closing, how long to wait for the worker's connections to finish opening. */
const CLOSE_READY_WAIT_MS = 1000;
/** How long shutdown waits for this worker; its jobs are short and safe to cut (see onModuleDestroy). */
const CLOSE_LIMIT_MS = 2000;
const LANE = /^[csd]\.[^:\s]+$/;
const KINDS = new Set<string>(['message', 'status', 'chatwoot', 'desk', 'api', 'reengage']);

/**
 * The worker side of the `dead-letters` queue. A job's first run parks it as failed, which is
 * where /admin/queues lists it with its Retry button. A retried job puts its turn's items back into
 * their lane's inbox, as ingest would (REQUEUE_SCRIPT: once per dead letter however often it is
 * retried), and wakes the lane: the turn runs again in the lane's own order, under its lease.
 */
@Injectable()
export class DeadLetterProcessor implements OnApplicationBootstrap, OnModuleDestroy, BeforeApplicationShutdown {
  private worker?: Worker<DeadLetterData, RequeueResult>;
  private closing?: Promise<void>;
  private readonly logger: Logger;
  private readonly client: RedisClient & { tawasulRequeue?: RequeueCommand };

  constructor(
    private readonly connections: RedisConnections,
    private readonly keys: RedisKeys,
    private readonly wakeUps: WakeUpService,
    private readonly hasher: LogHasher,
    private readonly config: AppConfig,
    @InjectQueue(DEAD_LETTERS_QUEUE) private readonly queue: Queue<DeadLetterData>,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('dead-letter');
    this.client = connections.worker;
    if (!this.client.tawasulRequeue) {
      this.client.defineCommand('tawasulRequeue', { numberOfKeys: 5, lua: REQUEUE_SCRIPT });
    }
  }

  onApplicationBootstrap(): void {
    this.worker = new Worker<DeadLetterData, RequeueResult>(DEAD_LETTERS_QUEUE, (job) => this.process(job), {
      connection: this.connections.worker,
      prefix: this.config.redisKeyRoot,
      concurrency: 1,
    });
    this.worker.on('error', (err) => {
      if (isConnectionError(err)) this.connections.outage.seen('bullmq-worker', err);
      else this.logger.warn({ err }, 'dead-letter worker error');
    });
  }

  async process(job: Job<DeadLetterData>): Promise<RequeueResult> {
    // Not run before: this is the dead letter arriving. BullMQ keeps attemptsMade across a retry.
    if (job.attemptsMade === 0) throw new UnrecoverableError(parkedReason(job.data));
    return this.requeue(job);
  }

  private async requeue(job: Job<DeadLetterData>): Promise<RequeueResult> {
    const items = (Array.isArray(job.data.items) ? job.data.items : []).filter(isItem);
    if (items.length === 0) return { requeued: 0 };
    const lane = items[0].lane;
    if (items.some((item) => item.lane !== lane)) throw new UnrecoverableError('items of more than one lane');
    const ids = items.flatMap((item) => (item.kind === 'message' ? messageId(item) : []));
    const run = this.client.tawasulRequeue as RequeueCommand;
    const [outcome, value] = await run.call(
      this.client,
      this.queue.toKey(job.id!),
      this.keys.inbox(lane),
      this.keys.pending,
      this.keys.deskBacklog,
      this.keys.history(lane),
      Date.now(),
      lane,
      items.length,
      ...items.map((item) => JSON.stringify(item)),
      ...ids,
    );
    const chat = this.hasher.hash(lane);
    if (outcome === -1) return { requeued: 0, gone: true };
    if (outcome === 0) {
      this.logger.info({ chat, reason: job.data.reason }, 'dead letter retried again; its turn was re-run already');
      return { requeued: 0, alreadyRequeuedAt: new Date(Number(value)).toISOString() };
    }
    // Best effort, as after ingest: the items are in the inbox and the lane is pending.
    await this.wakeUps
      .wake([{ lane, tag: String(value) }])
      .catch((err: Error) => this.logger.warn({ err }, 'wake-up not issued; sweeper will re-arm'));
    this.logger.info({ chat, reason: job.data.reason, items: items.length }, 'dead letter re-queued on its lane');
    return { requeued: items.length, lane };
  }

  /**
   * Started as the app begins to close, so that it runs beside the turns worker's close rather
   * than after it. Forced: a retried job cut short runs again on another worker once its lock
   * lapses, and its re-run mark keeps it from re-queuing twice; a first run cut short parks then.
   */
  onModuleDestroy(): void {
    this.closing ??= this.close();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.closing ??= this.close();
    if (!(await settlesWithin(this.closing, CLOSE_LIMIT_MS))) {
      this.logger.warn({ limitMs: CLOSE_LIMIT_MS }, 'shutdown: dead-letter worker did not close in time');
    }
  }

  private async close(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    // Closing while its connections are still opening makes BullMQ throw where nobody catches.
    await settlesWithin(worker.waitUntilReady(), CLOSE_READY_WAIT_MS);
    await worker.close(true).catch((err: Error) => this.logger.warn({ err }, 'dead-letter worker close failed'));
  }
}

/** The failure the dashboard shows: the reason and what the call site knew, no text. */
function parkedReason(data: DeadLetterData): string {
  const skip = new Set(['reason', 'lane', 'at', 'items']);
  const detail = Object.entries(data)
    .filter(([key, value]) => !skip.has(key) && value !== undefined)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  const items = Array.isArray(data.items) ? data.items.length : 0;
  return [String(data.reason), ...detail, `items=${items}`].join(' ').slice(0, 300);
}

function isItem(item: unknown): item is IngestItem {
  const candidate = item as Partial<IngestItem> | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.lane === 'string' &&
    LANE.test(candidate.lane) &&
    typeof candidate.kind === 'string' &&
    KINDS.has(candidate.kind)
  );
}

function messageId(item: IngestItem): string[] {
  const id = (item.raw as { id?: unknown } | null)?.id;
  return typeof id === 'string' ? [id] : [];
}
