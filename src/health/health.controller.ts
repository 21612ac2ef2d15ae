import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService, HealthIndicatorService, type HealthCheckResult } from '@nestjs/terminus';
import { HealthState } from './health-state';
import { RedisHealthIndicator } from './redis.health';

@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly state: HealthState,
    private readonly redis: RedisHealthIndicator,
    private readonly indicator: HealthIndicatorService,
  ) {}

  /** Never touches Redis: a Redis outage must not get every pod restarted. */
  @Get('live')
  @HealthCheck()
  live(): Promise<HealthCheckResult> {
    return this.health.check([
      () => {
        const failed = this.state.failedLiveness();
        const session = this.indicator.check('process');
        return failed.length === 0 ? session.up() : session.down({ failed });
      },
    ]);
  }

  /**
   * 503 from the moment SIGTERM arrives, while a registered readiness condition fails (HealthState),
   * and whenever Redis does not answer a PING within 1 s.
   */
  @Get('ready')
  @HealthCheck()
  ready(): Promise<HealthCheckResult> {
    return this.health.check([
      () => {
        const session = this.indicator.check('lifecycle');
        if (this.state.shuttingDown) return session.down({ message: 'shutting down' });
        const failed = this.state.failedReadiness();
        return failed.length === 0 ? session.up() : session.down({ failed });
      },
      () => this.redis.isHealthy(),
    ]);
  }
}
