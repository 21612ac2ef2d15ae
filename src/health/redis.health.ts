import { Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { RedisConnections } from '../redis/redis-connections.service';

const PING_LIMIT_MS = 1000;

/**
 * Redis answers a PING within 1 s. The health connection has no offline queue and a 1 s command
 * timeout, so a stopped Redis fails at once and a frozen one (SIGSTOP) within the limit.
 */
@Injectable()
export class RedisHealthIndicator {
  constructor(
    private readonly connections: RedisConnections,
    private readonly indicator: HealthIndicatorService,
  ) {}

  async isHealthy(key = 'redis'): Promise<HealthIndicatorResult> {
    const session = this.indicator.check(key);
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no PONG within ${PING_LIMIT_MS} ms`)), PING_LIMIT_MS);
      });
      await Promise.race([this.connections.health.ping(), timeout]);
      return session.up();
    } catch (err) {
      return session.down({ message: (err as Error).message });
    } finally {
      clearTimeout(timer);
    }
  }
}
