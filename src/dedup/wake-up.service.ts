import { InjectQueue } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import { Queue } from 'bullmq';
import { TURNS_QUEUE, TurnJob, WAKE_JOB_OPTIONS, type WakeJobData } from '../queue/queue.constants';

/**
 * Best-effort wake-up of lanes after their items are durably enqueued. The job id is the lane id,
 * so concurrent wake-ups of one lane collapse into one waiting job; a lost wake-up is re-armed by
 * the sweeper from the pending set, so failures here never lose work.
 */
@Injectable()
export class WakeUpService {
  constructor(@InjectQueue(TURNS_QUEUE) private readonly queue: Queue<WakeJobData>) {}

  async wake(lanes: Iterable<string>, delayMs = 0): Promise<void> {
    const jobs = [...new Set(lanes)].map((lane) =>
      this.queue.add(TurnJob.Wake, { lane }, { ...WAKE_JOB_OPTIONS, jobId: lane, delay: delayMs }),
    );
    await Promise.all(jobs);
  }
}
