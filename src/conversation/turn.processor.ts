import { InjectQueue } from '@nestjs/bullmq';
import { type BeforeApplicationShutdown, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import { type Job, Queue, Worker } from 'bullmq';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { HealthState } from '../health/health-state';
import { AppLogger } from '../logging/app-logger';
import { RedisConnections } from '../redis/redis-connections.service';
import { SWEEPER_SCHEDULER_ID, TURNS_QUEUE, TurnJob, type WakeJobData } from '../queue/queue.constants';
import { LaneRunner } from './lane-runner';
import { SWEEP_EVERY_MS, Sweeper } from './sweeper';

const CLOSE_READY_WAIT_MS = 2000;

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
    this.worker = new Worker<WakeJobData>(TURNS_QUEUE, (job) => this.process(job), {
      connection: this.connections.worker,
      prefix: this.config.redisKeyRoot,
      concurrency: this.config.env.WORKER_CONCURRENCY,
      // A killed or frozen worker's job is handed to another after about one lease.
      lockDuration: lease,
      stalledInterval: lease,
      maxStalledCount: 1000,
    });
    this.worker.on('error', (err) => this.logger.warn({ err: err.message }, 'worker error'));
    this.worker.on('failed', (job, err) =>
      this.logger.error({ job: job?.name, err: err.message }, 'job failed; the sweeper will re-arm its lane'),
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
      .catch((err: Error) => this.logger.warn({ err: err.message }, 'could not schedule the sweeper yet'));
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

  /** SIGTERM: the job in flight finishes before the Redis connections close. */
  async beforeApplicationShutdown(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    // Closing while the worker's connections are still opening makes BullMQ throw unhandled; but
    // with Redis unreachable it never becomes ready, and then there is no job in flight to wait for.
    let timer: NodeJS.Timeout | undefined;
    const ready = await Promise.race([
      worker.waitUntilReady().then(
        () => true,
        () => false,
      ),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), CLOSE_READY_WAIT_MS))),
    ]);
    clearTimeout(timer);
    await worker.close(!ready);
  }
}
