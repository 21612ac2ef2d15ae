import { randomUUID } from 'node:crypto';
import { InjectQueue } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import { Queue } from 'bullmq';
import { type Logger } from 'pino';
import { type IngestItem } from '../dedup/ingest-item';
import { AppLogger } from '../logging/app-logger';
import { LogHasher } from '../logging/log-hasher';
import { MetricsService } from '../metrics/metrics.service';
import { DEAD_LETTER_JOB_OPTIONS, DEAD_LETTERS_QUEUE } from '../queue/queue.constants';
import { laneParts } from '../queue/lanes';
import { type ApiMessage } from './api-message';

export type DeadLetterReason = 'llm_exhausted' | 'send_permanent' | 'window_closed' | 'desk_step' | 'turn_failed';

/**
 * One dead letter, the data of its job in the `dead-letters` queue: why and when, the chat, what
 * the call site knew (codes, turn id), and the items of the turn (from ConversationStore.turnItems
 * when the turn threw), so that a retry can run the turn again.
 */
export interface DeadLetterData extends Record<string, unknown> {
  reason: DeadLetterReason;
  lane: string;
  at: number;
  items: IngestItem[];
}

/**
 * Work given up, visibly: a metric, an error log line (hashed chat, no text) and a job
 * in the `dead-letters` queue, which /admin/queues shows as failed and whose Retry re-runs the turn.
 */
@Injectable()
export class DeadLetters {
  private readonly logger: Logger;

  constructor(
    @InjectQueue(DEAD_LETTERS_QUEUE) private readonly queue: Queue<DeadLetterData>,
    private readonly metrics: MetricsService,
    private readonly hasher: LogHasher,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('dead-letter');
  }

  /** @param items the turn's items; without them the dead letter can be seen but not re-run */
  async record(
    reason: DeadLetterReason,
    lane: string,
    detail: Record<string, unknown> = {},
    items: readonly IngestItem[] = [],
  ): Promise<void> {
    this.metrics.deadLetters.inc({ reason });
    this.logger.error({ reason, chat: this.hasher.hash(lane), ...detail, items: items.length }, 'dead-lettered');
    const data: DeadLetterData = { ...detail, reason, lane, at: Date.now(), items: [...items] };
    try {
      // A random id: BullMQ's counter restarts if the queue is obliterated, and the re-run mark
      // lives in the job's hash.
      await this.queue.add(reason, data, { ...DEAD_LETTER_JOB_OPTIONS, jobId: randomUUID() });
    } catch (err) {
      this.logger.error({ err }, 'could not store dead letter');
    }
  }
}

/** The item a /v1 message travelled in (see ApiMessagesService), rebuilt for its dead letter. */
export function apiItemOf(lane: string, message: ApiMessage): IngestItem {
  return {
    key: `api:${message.id}`,
    lane,
    kind: 'api',
    receivedAt: Date.now(),
    phoneNumberId: laneParts(lane).phoneNumberId,
    raw: message,
  };
}
