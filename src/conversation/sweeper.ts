import { Injectable } from '@nestjs/common';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { WakeUpService, type WakeTarget } from '../dedup/wake-up.service';
import { AppLogger } from '../logging/app-logger';
import { RedisConnections } from '../redis/redis-connections.service';
import { RedisKeys } from '../redis/redis-keys';

/** Often enough that a killed worker's turn restarts about a second after its lease lapses. */
export const SWEEP_EVERY_MS = 1000;
const SWEEP_BATCH = 1000;
/** A lane younger than this still has the wake-up its ingest issued. */
const MIN_AGE_MS = 1000;

/**
 * The safety net of SPEC §5: one scheduled job re-arms lanes that wait in the pending set without
 * a live lease. Per lane, by what it shows:
 * - parked (a not-before time ahead): its delayed wake-up is made sure of (same id: no duplicate);
 * - a turn in flight (turn items) and no lease: its worker died or lost Redis mid-turn — re-armed
 *   at once, so a SIGKILLed worker's chat restarts within a lease and a sweep;
 * - otherwise, waiting longer than two leases without a lease: its wake-up was lost (a Redis blip
 *   after the ingest, a failed job) — re-armed.
 * Redundant wake-ups are harmless.
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
    const lanes = await redis.zrangebyscore(
      this.keys.pending,
      '-inf',
      now - MIN_AGE_MS,
      'WITHSCORES',
      'LIMIT',
      0,
      SWEEP_BATCH,
    );
    if (lanes.length === 0) return 0;
    const pipeline = redis.pipeline();
    for (let i = 0; i < lanes.length; i += 2) {
      const lane = lanes[i];
      pipeline.exists(this.keys.lease(lane)).hget(this.keys.lane(lane), 'nb').exists(this.keys.turnItems(lane));
    }
    const replies = (await pipeline.exec()) ?? [];
    const targets: WakeTarget[] = [];
    const bucket = Math.floor(now / SWEEP_EVERY_MS);
    let orphaned = 0;
    for (let i = 0; i < lanes.length / 2; i++) {
      const lane = lanes[2 * i];
      const since = Number(lanes[2 * i + 1]);
      const leased = Number(replies[3 * i]?.[1]) === 1;
      const nb = Number(replies[3 * i + 1]?.[1] ?? 0);
      const inFlight = Number(replies[3 * i + 2]?.[1]) === 1;
      if (leased) continue;
      if (nb > now) {
        targets.push({ lane, tag: `n${nb}`, at: nb });
      } else if (inFlight || now - since > this.graceMs) {
        if (inFlight) orphaned++;
        targets.push({ lane, tag: `s${bucket}` });
      }
    }
    if (targets.length > 0) {
      await this.wakeUps.wake(targets);
      if (orphaned > 0) this.logger.info({ lanes: orphaned }, 're-armed turns whose worker let go of them');
    }
    return targets.length;
  }
}
