import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { MetricsService } from '../metrics/metrics.service';
import { RedisConnections } from '../redis/redis-connections.service';
import { RedisKeys } from '../redis/redis-keys';
import { type RedisClient, waitReady } from '../redis/redis-client';
import {
  COST_SIDES,
  CostLedger,
  costDayOf,
  type CostReport,
  type CostSide,
  type CostSideReport,
  type CostTotals,
  MAX_REPORT_DAYS,
} from './cost-ledger';
import { COST_RECORD } from './cost-ledger.scripts';
import { utcDateMs } from './pricing';

type RecordCommand = (numKeys: number, ...keysAndArgs: (string | number)[]) => Promise<number>;

const DAY_S = 86400;
const DAY_MS = DAY_S * 1000;
/** Longer than Meta keeps retrying a status webhook, and than any job retry. */
const ONCE_TTL_S = 35 * DAY_S;
/** 13 months and a bit: a year-on-year comparison of the same month still finds its days. */
const DAY_TTL_S = 400 * DAY_S;

const isCategory = (c: string): boolean => c.length > 0 && c !== 'total' && !c.includes(':');
const usdOf = (micros: number): number => Math.round(micros) / 1e6;

interface Sums {
  count: number;
  micros: number;
}

/**
 * CostLedger on Redis: a hash per UTC day with `<side>:<category>:count` and
 * `<side>:<category>:micros` fields, and a short-lived once-key per side and wamid. Records go over
 * the worker connection (they run in jobs, where waiting out a Redis blip is right); reports over
 * the ingest connection, because the receiver's HTTP API asks for them and must fail fast.
 */
@Injectable()
export class RedisCostLedger extends CostLedger {
  private readonly writer: RedisClient & { tawasulCostRecord?: RecordCommand };

  constructor(
    private readonly connections: RedisConnections,
    private readonly keys: RedisKeys,
    private readonly metrics: MetricsService,
    private readonly config: AppConfig,
  ) {
    super();
    this.writer = connections.worker;
    if (!this.writer.tawasulCostRecord) this.writer.defineCommand('tawasulCostRecord', { lua: COST_RECORD });
  }

  async record(side: CostSide, wamid: string, rawCategory: string, usd: number, at: number): Promise<boolean> {
    const category = rawCategory.trim().toLowerCase();
    if (!COST_SIDES.includes(side)) throw new TypeError(`cost ledger: unknown side ${String(side)}`);
    if (wamid === '') throw new TypeError('cost ledger: empty wamid');
    if (!isCategory(category)) throw new TypeError(`cost ledger: invalid category ${JSON.stringify(category)}`);
    if (!Number.isFinite(usd) || usd < 0) throw new RangeError(`cost ledger: invalid amount ${usd}`);
    const day = costDayOf(at);
    const run = this.writer.tawasulCostRecord as RecordCommand;
    const counted = await run.call(
      this.writer,
      2,
      this.keys.costOnce(side, wamid),
      this.keys.costDay(day),
      ONCE_TTL_S,
      DAY_TTL_S,
      `${side}:${category}:count`,
      `${side}:${category}:micros`,
      Math.round(usd * 1e6),
    );
    if (counted !== 1) return false;
    this.metrics.costUsd.inc({ side, category }, usd);
    return true;
  }

  async report(from: string, to: string): Promise<CostReport> {
    const fromMs = utcDateMs(from);
    const toMs = utcDateMs(to);
    if (fromMs === undefined || toMs === undefined) {
      throw new RangeError(`cost report: from and to must be YYYY-MM-DD dates (got ${from}, ${to})`);
    }
    if (fromMs > toMs) throw new RangeError(`cost report: from (${from}) is after to (${to})`);
    const days = (toMs - fromMs) / DAY_MS + 1;
    if (days > MAX_REPORT_DAYS) throw new RangeError(`cost report: ${days} days asked, at most ${MAX_REPORT_DAYS}`);

    const client = this.connections.ingest;
    // Without an offline queue a command sent while the connection handshakes fails at once;
    // waiting within the ingest budget makes the first report after start-up work.
    if (['connecting', 'connect', 'reconnecting', 'wait'].includes(client.status)) {
      await waitReady(client, this.config.env.INGEST_TIMEOUT_MS);
    }
    const pipeline = client.pipeline();
    for (let ms = fromMs; ms <= toMs; ms += DAY_MS) pipeline.hgetall(this.keys.costDay(costDayOf(ms)));
    const replies = await pipeline.exec();
    if (!replies) throw new Error('cost report: the Redis pipeline was aborted');

    const sums: Record<CostSide, Map<string, Sums>> = { estimated: new Map(), billed: new Map() };
    for (const [err, hash] of replies) {
      if (err) throw err;
      for (const [field, value] of Object.entries(hash as Record<string, string>)) {
        const first = field.indexOf(':');
        const last = field.lastIndexOf(':');
        const side = field.slice(0, first) as CostSide;
        const kind = field.slice(last + 1);
        if (first <= 0 || last <= first || !COST_SIDES.includes(side)) continue;
        if (kind !== 'count' && kind !== 'micros') continue;
        const category = field.slice(first + 1, last);
        const entry = sums[side].get(category) ?? { count: 0, micros: 0 };
        entry[kind] += Number(value) || 0;
        sums[side].set(category, entry);
      }
    }

    const categories = [...new Set([...sums.estimated.keys(), ...sums.billed.keys()])].sort();
    const sideReport = (side: CostSide): CostSideReport => {
      const report: Record<string, CostTotals> = {};
      const total: Sums = { count: 0, micros: 0 };
      for (const category of categories) {
        const s = sums[side].get(category) ?? { count: 0, micros: 0 };
        report[category] = { count: s.count, usd: usdOf(s.micros) };
        total.count += s.count;
        total.micros += s.micros;
      }
      return { ...report, total: { count: total.count, usd: usdOf(total.micros) } };
    };
    return { from, to, currency: 'USD', estimated: sideReport('estimated'), billed: sideReport('billed') };
  }
}
