import { InjectQueue } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import { Queue } from 'bullmq';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { WakeUpService, type WakeTarget } from '../dedup/wake-up.service';
import { AppLogger } from '../logging/app-logger';
import { DEAD_LETTER_RETENTION_MS, DEAD_LETTERS_QUEUE } from '../queue/queue.constants';
import { RedisConnections } from '../redis/redis-connections.service';
import { RedisKeys } from '../redis/redis-keys';

/** Often enough that a killed worker's turn restarts about a second after its lease lapses. */
export const SWEEP_EVERY_MS = 1000;
const SWEEP_BATCH = 1000;
/** A parked lane this late past its not-before time lost its delayed wake-up. */
const OVERDUE_MS = 2000;
/** The full scan for lost ingest wake-ups runs every this many sweeps. */
const FULL_SCAN_EVERY = 5;
/** What holds patients' texts is trimmed by age every this many sweeps (a minute). */
const TRIM_EVERY = 60;
const DAY_MS = 86_400_000;
/**
 * How long the raw unhandled items are kept (besides their count cap): they hold patients' texts
 * and numbers, so they are kept only as long as an operator needs to look. Dead letters: see
 * DEAD_LETTER_RETENTION_MS.
 */
export const UNHANDLED_RETENTION_MS = 7 * DAY_MS;
const TRIM_BATCH = 1000;
/** KEYS: list. ARGV: entry. Pops the list's oldest entry only if it is still that one. */
const POP_IF_OLDEST = `
if redis.call('LINDEX', KEYS[1], -1) == ARGV[1] then
  redis.call('RPOP', KEYS[1])
  return 1
end
return 0
`;

/**
 * The safety net of the design: one scheduled job re-arms lanes whose wake-up was lost. It reads
 * only what can be stuck, so its cost follows the trouble, not the traffic:
 * - the in-flight set: turns whose lease ran out (their worker died, froze, or let go mid-turn) —
 *   re-armed at once, so a SIGKILLed worker's chat restarts within a lease and a sweep;
 * - the parked set: lanes well past their not-before time — their delayed wake-up was lost;
 * - every 5th sweep, the pending set, paged through: lanes waiting longer than two leases that
 *   are neither held, parked nor in flight — the wake-up of their ingest was lost;
 * - once a minute, unhandled items and dead letters past their retention (trimByAge).
 * Lanes parked for a long outage (LLM down, 131056) cost nothing here until they are due.
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
    @InjectQueue(DEAD_LETTERS_QUEUE) private readonly deadLetters: Queue,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('sweeper');
  }

  /** Lanes pending longer than this, without a lease, parking or turn in flight, lost their wake-up. */
  get graceMs(): number {
    return 2 * this.config.env.TURN_LEASE_MS + SWEEP_EVERY_MS;
  }

  async sweep(): Promise<number> {
    const redis = this.connections.worker;
    const now = Date.now();
    const bucket = Math.floor(now / SWEEP_EVERY_MS);
    const [orphans, overdue] = await Promise.all([
      redis.zrangebyscore(this.keys.inflight, '-inf', now, 'LIMIT', 0, SWEEP_BATCH),
      redis.zrangebyscore(this.keys.parked, '-inf', now - OVERDUE_MS, 'LIMIT', 0, SWEEP_BATCH),
    ]);
    const unheld = await this.withoutLease([...new Set([...orphans, ...overdue])]);
    const lost = bucket % FULL_SCAN_EVERY === 0 ? await this.lostIngestWakes(now) : [];
    if (bucket % TRIM_EVERY === 0) await this.trimByAge(now);
    const lanes = [...new Set([...unheld, ...lost])];
    if (lanes.length === 0) return 0;
    const targets: WakeTarget[] = lanes.map((lane) => ({ lane, tag: `s${bucket}` }));
    await this.wakeUps.wake(targets);
    this.logger.info(
      { orphaned: orphans.filter((l) => unheld.includes(l)).length, overdue: overdue.length, lost: lost.length },
      're-armed lanes without a live wake-up',
    );
    return targets.length;
  }

  /**
   * Drops unhandled items past their retention from the oldest end of their newest-first list (an
   * entry without a time counts as old), and dead letters that
   * finished (parked, or re-run) longer than their retention ago: BullMQ's own age limit acts only
   * when another dead letter arrives.
   */
  async trimByAge(now: number): Promise<number> {
    const redis = this.connections.worker;
    const key = this.keys.unhandled;
    let dropped = 0;
    for (let i = 0; i < TRIM_BATCH; i++) {
      const oldest = await redis.lindex(key, -1);
      if (oldest === null || entryTime(oldest) >= now - UNHANDLED_RETENTION_MS) break;
      // Only that entry: the count cap may have trimmed it meanwhile.
      if (Number(await redis.eval(POP_IF_OLDEST, 1, key, oldest)) === 1) dropped++;
    }
    // clean() counts back from its own clock, not from the sweep's `now`.
    const grace = Math.max(0, DEAD_LETTER_RETENTION_MS + Date.now() - now);
    for (const state of ['failed', 'completed'] as const) {
      dropped += (await this.deadLetters.clean(grace, TRIM_BATCH, state)).length;
    }
    if (dropped > 0) this.logger.info({ dropped }, 'dropped unhandled items and dead letters past their retention');
    return dropped;
  }

  private async withoutLease(lanes: string[]): Promise<string[]> {
    if (lanes.length === 0) return [];
    const pipeline = this.connections.worker.pipeline();
    for (const lane of lanes) pipeline.exists(this.keys.lease(lane));
    const replies = (await pipeline.exec()) ?? [];
    return lanes.filter((_, i) => Number(replies[i]?.[1]) !== 1);
  }

  /** Pending lanes older than graceMs that nothing holds, parks or runs, page by page. */
  private async lostIngestWakes(now: number): Promise<string[]> {
    const redis = this.connections.worker;
    const lost: string[] = [];
    for (let offset = 0; ; offset += SWEEP_BATCH) {
      const lanes = await redis.zrangebyscore(
        this.keys.pending,
        '-inf',
        now - this.graceMs,
        'LIMIT',
        offset,
        SWEEP_BATCH,
      );
      if (lanes.length === 0) break;
      const pipeline = redis.pipeline();
      for (const lane of lanes) {
        pipeline.exists(this.keys.lease(lane)).zscore(this.keys.parked, lane).zscore(this.keys.inflight, lane);
      }
      const replies = (await pipeline.exec()) ?? [];
      lanes.forEach((lane, i) => {
        const leased = Number(replies[3 * i]?.[1]) === 1;
        const parked = replies[3 * i + 1]?.[1] !== null;
        const inFlight = replies[3 * i + 2]?.[1] !== null;
        if (!leased && !parked && !inFlight) lost.push(lane);
      });
      if (lanes.length < SWEEP_BATCH) break;
    }
    return lost;
  }
}

function entryTime(raw: string): number {
  try {
    const at = (JSON.parse(raw) as { at?: unknown }).at;
    return typeof at === 'number' ? at : 0;
  } catch {
    return 0;
  }
}
