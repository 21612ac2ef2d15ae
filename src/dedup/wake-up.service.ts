import { InjectQueue } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import { Queue } from 'bullmq';
import { TURNS_QUEUE, TurnJob, WAKE_JOB_OPTIONS, type WakeJobData } from '../queue/queue.constants';

export interface WakeTarget {
  lane: string;
  /**
   * Makes the job id: one waiting wake-up per (lane, tag). The receiver uses the lane's pending
   * episode; the worker uses its fencing token or a not-before time, so that its own re-arm never
   * collides with the job it is running (BullMQ ignores adds whose id is still active).
   */
  tag: string;
  /** Not before this time (ms since epoch); a delayed job. */
  at?: number;
}

/**
 * Wake-ups of lanes whose items are durably enqueued. Best effort by design: a lost wake-up is
 * re-armed by the sweeper from the pending set, so a failure here never loses work.
 */
@Injectable()
export class WakeUpService {
  constructor(@InjectQueue(TURNS_QUEUE) private readonly queue: Queue<WakeJobData>) {}

  async wake(targets: readonly WakeTarget[]): Promise<void> {
    const seen = new Set<string>();
    const adds: Promise<unknown>[] = [];
    for (const { lane, tag, at } of targets) {
      const jobId = `${lane}.${tag}`;
      if (seen.has(jobId)) continue;
      seen.add(jobId);
      const delay = at !== undefined ? Math.max(0, at - Date.now()) : 0;
      adds.push(this.queue.add(TurnJob.Wake, { lane }, { ...WAKE_JOB_OPTIONS, jobId, delay }));
    }
    await Promise.all(adds);
  }
}
