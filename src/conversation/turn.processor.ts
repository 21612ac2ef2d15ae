import { InjectQueue } from '@nestjs/bullmq';
import { type BeforeApplicationShutdown, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import { type Job, Queue, Worker } from 'bullmq';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { HealthState } from '../health/health-state';
import { JOB_FINISH_LIMIT_MS, settlesWithin } from '../health/shutdown-limits';
import { AppLogger } from '../logging/app-logger';
import { isConnectionError } from '../redis/redis-client';
import { RedisConnections } from '../redis/redis-connections.service';
import { SWEEPER_SCHEDULER_ID, TURNS_QUEUE, TurnJob, type WakeJobData } from '../queue/queue.constants';
import { laneKind } from '../queue/lanes';
import { LaneRunner } from './lane-runner';
import { SWEEP_EVERY_MS, Sweeper } from './sweeper';

const CLOSE_READY_WAIT_MS = 2000;
/** Once our jobs are done, how long BullMQ may take to record them before its close is given up. */
const CLOSE_RECORD_WAIT_MS = 500;

/**
 * The worker's job loop on the 'turns' queue. Built here rather than with @Processor so that its
 * connection (the worker kind: maxRetriesPerRequest null), concurrency (WORKER_CONCURRENCY) and
 * lock duration (TURN_LEASE_MS) come from configuration at runtime. Only registered for the worker
 * and all roles: a receiver never consumes.
 */
@Injectable()
export class TurnProcessor implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private worker?: Worker<WakeJobData>;
  private readonly logger: Logger;
  /** Wake-ups running right now (what shutdown waits for), and who waits for there to be none. */
  private readonly running = new Set<Job<WakeJobData>>();
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly lanes: LaneRunner,
    private readonly sweeper: Sweeper,
    private readonly connections: RedisConnections,
    private readonly health: HealthState,
    private readonly config: AppConfig,
    @InjectQueue(TURNS_QUEUE) private readonly queue: Queue,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('worker');
  }

  onApplicationBootstrap(): void {
    const lease = this.config.env.TURN_LEASE_MS;
    this.worker = new Worker<WakeJobData>(TURNS_QUEUE, (job) => this.tracked(job), {
      connection: this.connections.worker,
      prefix: this.config.redisKeyRoot,
      concurrency: this.config.env.WORKER_CONCURRENCY,
      // A killed or frozen worker's job is handed to another after about one lease.
      lockDuration: lease,
      stalledInterval: lease,
      maxStalledCount: 1000,
    });
    this.worker.on('error', (err) => this.onWorkerError(err));
    this.worker.on('failed', (job, err) =>
      this.logger.error({ job: job?.name, err }, 'job failed; the sweeper will re-arm its lane'),
    );
    this.health.registerLiveness('job-loop', () => this.worker?.isRunning() === true);
    this.health.registerReadiness('job-loop', () => this.worker?.isRunning() === true);
    // One scheduler for all workers: upserting the same id is idempotent.
    this.queue
      .upsertJobScheduler(
        SWEEPER_SCHEDULER_ID,
        { every: SWEEP_EVERY_MS },
        { name: TurnJob.Sweep, opts: { removeOnComplete: true, removeOnFail: true } },
      )
      .catch((err: Error) => this.logger.warn({ err }, 'could not schedule the sweeper yet'));
  }

  /**
   * A sweep is never waited for at shutdown: it only re-arms lanes, and the next one (from any
   * worker, a second later) does the same; with Redis gone it would hold shutdown for nothing.
   */
  private async tracked(job: Job<WakeJobData>): Promise<void> {
    if (job.name === String(TurnJob.Sweep)) return this.process(job);
    this.running.add(job);
    try {
      await this.process(job);
    } finally {
      this.running.delete(job);
      if (this.running.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  private whenIdle(): Promise<void> {
    if (this.running.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * BullMQ forwards every failed reconnect of its connections (its blocking one included): during
   * an outage that is one event a second, which the connections' outage log already tells.
   */
  private onWorkerError(err: Error): void {
    if (isConnectionError(err)) this.connections.outage.seen('bullmq-worker', err);
    else this.logger.warn({ err }, 'worker error');
  }

  async process(job: Job<WakeJobData>): Promise<void> {
    const name = job.name as TurnJob;
    switch (name) {
      case TurnJob.Wake:
        return this.lanes.handle(job.data.lane, job.id);
      case TurnJob.Sweep:
        await this.sweeper.sweep();
        return;
    }
  }

  /**
   * SIGTERM: the job in flight finishes before the Redis connections close — within
   * JOB_FINISH_LIMIT_MS, whatever Redis does. A job that needs a Redis that is gone cannot finish;
   * it is cut short, and its lane is taken over once its lease lapses.
   */
  async beforeApplicationShutdown(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    const started = Date.now();
    // Closing while the worker's connections are still opening makes BullMQ throw unhandled; but
    // with Redis unreachable it never becomes ready, and then there is no job in flight to wait for.
    const ready = worker.waitUntilReady().then(
      () => true,
      () => false,
    );
    const isReady = (await settlesWithin(ready, CLOSE_READY_WAIT_MS)) && (await ready);
    // A graceful close first waits for BullMQ's blocking connection to end, and a connection that
    // is reconnecting to a stopped Redis has no socket to end: it would wait for ever. So with
    // nothing running and Redis away, force; otherwise the wait below is bounded.
    const redisAway = this.connections.worker.status !== 'ready';
    const closing = worker
      .close(!isReady || (this.running.size === 0 && redisAway))
      .catch((err: Error) => this.logger.warn({ err }, 'worker close failed'));
    const finished = Promise.race([closing, this.whenIdle().then(() => settlesWithin(closing, CLOSE_RECORD_WAIT_MS))]);
    if (await settlesWithin(finished, JOB_FINISH_LIMIT_MS - (Date.now() - started))) return;
    this.logger.warn(
      {
        jobs: this.running.size,
        // Lane kinds, not lanes: a chat lane's id holds the patient's phone number.
        lanes: [...this.running].map((job) => laneKind(job.data.lane)),
        waitedMs: Date.now() - started,
      },
      'shutdown: jobs in flight cut short; their lanes are taken over once their leases lapse',
    );
  }
}
