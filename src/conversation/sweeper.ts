import { Injectable } from '@nestjs/common';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { WakeUpService, type WakeTarget } from '../dedup/wake-up.service';
import { AppLogger } from '../logging/app-logger';
import { RedisConnections } from '../redis/redis-connections.service';
import { RedisKeys } from '../redis/redis-keys';

export const SWEEP_EVERY_MS = 5000;
const SWEEP_BATCH = 1000;

/**
 * The safety net of SPEC §5: one scheduled job re-arms lanes that wait in the pending set without
 * a live lease — their wake-up was lost (Redis blip after the ingest, a failed job, a crash) — and
 * re-creates lost delayed wake-ups of parked lanes. Redundant wake-ups are harmless.
 */
@Injectable()
export class Sweeper {
  private readonly logger: Logger;

  constructor(
    private readonly connections: RedisConnections,
    private readonly keys: RedisKeys,
    private readonly wakeUps: WakeUpService,
    private readonly config: AppConfig,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('sweeper');
  }

  /** Lanes pending longer than this without a lease are considered lost. */
  get graceMs(): number {
    return 2 * this.config.env.TURN_LEASE_MS + SWEEP_EVERY_MS;
  }

  async sweep(): Promise<number> {
    const redis = this.connections.worker;
    const now = Date.now();
    const lanes = await redis.zrangebyscore(this.keys.pending, '-inf', now - this.graceMs, 'LIMIT', 0, SWEEP_BATCH);
    if (lanes.length === 0) return 0;
    const pipeline = redis.pipeline();
    for (const lane of lanes) pipeline.exists(this.keys.lease(lane)).hget(this.keys.lane(lane), 'nb');
    const replies = (await pipeline.exec()) ?? [];
    const targets: WakeTarget[] = [];
    const bucket = Math.floor(now / SWEEP_EVERY_MS);
    lanes.forEach((lane, i) => {
      const leased = Number(replies[2 * i]?.[1]) === 1;
      const nb = Number(replies[2 * i + 1]?.[1] ?? 0);
      if (leased) return;
      targets.push(nb > now ? { lane, tag: `n${nb}`, at: nb } : { lane, tag: `s${bucket}` });
    });
    if (targets.length > 0) {
      await this.wakeUps.wake(targets);
      this.logger.info({ lanes: targets.length }, 're-armed lanes without a live wake-up');
    }
    return targets.length;
  }
}
