import { Injectable, type OnModuleInit } from '@nestjs/common';
import { RedisConnections } from '../redis/redis-connections.service';
import { RedisKeys } from '../redis/redis-keys';
import { MetricsService } from './metrics.service';

/**
 * Fills tawasul_oldest_pending_seconds (the pending set's lowest score) and tawasul_pending_chats
 * (its size) at scrape time: the two signals the worker autoscaler reads.
 */
@Injectable()
export class PendingAgeCollector implements OnModuleInit {
  constructor(
    private readonly metrics: MetricsService,
    private readonly connections: RedisConnections,
    private readonly keys: RedisKeys,
  ) {}

  onModuleInit(): void {
    this.metrics.oldestPendingSource = async () => {
      try {
        const oldest = await this.connections.health.zrange(this.keys.pending, 0, 0, 'WITHSCORES');
        return oldest.length === 2 ? Math.max(0, (Date.now() - Number(oldest[1])) / 1000) : 0;
      } catch {
        return undefined; // Redis unavailable: keep the last reading; readiness reports the outage.
      }
    };
    this.metrics.pendingChatsSource = async () => {
      try {
        return await this.connections.health.zcard(this.keys.pending);
      } catch {
        return undefined;
      }
    };
  }
}
