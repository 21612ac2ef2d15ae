import { Injectable } from '@nestjs/common';
import { type Logger } from 'pino';
import { AppLogger } from '../logging/app-logger';
import { LogHasher } from '../logging/log-hasher';
import { MetricsService } from '../metrics/metrics.service';
import { RedisConnections } from '../redis/redis-connections.service';
import { RedisKeys } from '../redis/redis-keys';

const DEAD_LETTER_CAP = 10000;

export type DeadLetterReason =
  'llm_exhausted' | 'send_permanent' | 'send_expired' | 'window_closed' | 'config' | 'desk_step' | 'turn_failed';

/**
 * Work given up, visibly (SPEC §4.3): a metric, an error log line (hashed chat, no text) and an
 * entry in a capped Redis list an operator can inspect or replay.
 */
@Injectable()
export class DeadLetters {
  private readonly logger: Logger;

  constructor(
    private readonly connections: RedisConnections,
    private readonly keys: RedisKeys,
    private readonly metrics: MetricsService,
    private readonly hasher: LogHasher,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('dead-letter');
  }

  async record(reason: DeadLetterReason, lane: string, detail: Record<string, unknown> = {}): Promise<void> {
    this.metrics.deadLetters.inc({ reason });
    this.logger.error({ reason, chat: this.hasher.hash(lane), ...detail }, 'dead-lettered');
    const entry = JSON.stringify({ reason, lane, at: Date.now(), ...detail });
    try {
      await this.connections.worker
        .multi()
        .lpush(this.keys.deadLetters, entry)
        .ltrim(this.keys.deadLetters, 0, DEAD_LETTER_CAP - 1)
        .exec();
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'could not store dead letter');
    }
  }
}
