import { Queue } from 'bullmq';
import { type Redis } from 'ioredis';
import { DEAD_LETTERS_QUEUE } from '../../src/queue/queue.constants';

export interface DeadLetterJob {
  id: string;
  state: string;
  /** The job's data: reason, lane, at, the call site's detail, items. */
  data: { reason: string; lane: string; items: Record<string, any>[]; [detail: string]: any };
  failedReason?: string;
  returnvalue?: unknown;
}

/** Every dead letter of one app (its REDIS_PREFIX), in whatever state its job is. */
export async function deadLetters(redis: Redis, root: string): Promise<DeadLetterJob[]> {
  const connection = redis.duplicate();
  const queue = new Queue(DEAD_LETTERS_QUEUE, { connection, prefix: root });
  try {
    const jobs = await queue.getJobs(['waiting', 'active', 'delayed', 'prioritized', 'paused', 'failed', 'completed']);
    return Promise.all(
      jobs
        .filter((job) => job !== undefined)
        .map(async (job) => ({
          id: job.id!,
          state: await job.getState(),
          data: job.data as DeadLetterJob['data'],
          failedReason: job.failedReason,
          returnvalue: job.returnvalue as unknown,
        })),
    );
  } finally {
    await queue.close();
    connection.disconnect();
  }
}
