import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import { AppConfig } from '../../src/config/app-config';
import { AppConfigModule } from '../../src/config/config.module';
import { validateEnv } from '../../src/config/validate-env';
import { CostLedger, type CostReport, MAX_REPORT_DAYS } from '../../src/costs/cost-ledger';
import { CostsModule } from '../../src/costs/costs.module';
import { Pricing } from '../../src/costs/pricing';
import { RedisCostLedger } from '../../src/costs/redis-cost-ledger';
import { AppLogger } from '../../src/logging/app-logger';
import { LoggingModule } from '../../src/logging/logging.module';
import { MetricsModule } from '../../src/metrics/metrics.module';
import { MetricsService } from '../../src/metrics/metrics.service';
import { RedisConnections } from '../../src/redis/redis-connections.service';
import { RedisKeys } from '../../src/redis/redis-keys';
import { RedisModule } from '../../src/redis/redis.module';
import { deleteKeys } from '../utils/test-app';
import { testEnv, uniquePrefix } from '../utils/test-env';

const DAY_S = 86400;
const at = (iso: string): number => Date.parse(iso);

describe('RedisCostLedger on real Redis', () => {
  let config: AppConfig;
  let keys: RedisKeys;
  let redis: Redis;
  let connections: RedisConnections;
  let metrics: MetricsService;
  let ledger: RedisCostLedger;

  /** What tawasul_cost_usd_total says for one side and category. */
  const counter = async (side: string, category: string): Promise<number> => {
    const { values } = await metrics.costUsd.get();
    return values.find((v) => v.labels.side === side && v.labels.category === category)?.value ?? 0;
  };

  beforeEach(() => {
    config = new AppConfig(validateEnv(testEnv({ REDIS_PREFIX: uniquePrefix() })));
    keys = new RedisKeys(config.redisKeyRoot);
    redis = new Redis(config.env.REDIS_URL, { maxRetriesPerRequest: 1 });
    connections = new RedisConnections(config, new AppLogger('silent'));
    metrics = new MetricsService();
    ledger = new RedisCostLedger(connections, keys, metrics, config);
  });

  afterEach(async () => {
    await connections.onApplicationShutdown();
    await deleteKeys(redis, config.redisKeyRoot);
    redis.disconnect();
  });

  it('counts the same wamid once per side, however often it is recorded', async () => {
    const when = at('2026-05-10T10:00:00Z');
    expect(await ledger.record('billed', 'wamid.A', 'marketing', 0.0499, when)).toBe(true);
    // Meta repeats the pricing on delivered and read; a retried job records again.
    expect(await ledger.record('billed', 'wamid.A', 'marketing', 0.0499, when)).toBe(false);
    expect(await ledger.record('billed', 'wamid.A', 'marketing', 0.0499, when + 60_000)).toBe(false);
    const report = await ledger.report('2026-05-10', '2026-05-10');
    expect(report.billed.marketing).toEqual({ count: 1, usd: 0.0499 });
    expect(report.billed.total).toEqual({ count: 1, usd: 0.0499 });
    expect(await counter('billed', 'marketing')).toBeCloseTo(0.0499, 9);
  });

  it('counts a wamid once when 20 records of it run at the same time', async () => {
    // Each on its own connections, as if 20 workers handled the same status.
    const others = Array.from({ length: 4 }, () => new RedisConnections(config, new AppLogger('silent')));
    try {
      const ledgers = others.map((c) => new RedisCostLedger(c, keys, metrics, config));
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          ledgers[i % ledgers.length].record('billed', 'wamid.RACE', 'utility', 0.0157, at('2026-05-11T08:00:00Z')),
        ),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      const report = await ledger.report('2026-05-11', '2026-05-11');
      expect(report.billed.utility).toEqual({ count: 1, usd: 0.0157 });
      expect(await counter('billed', 'utility')).toBeCloseTo(0.0157, 9);
    } finally {
      for (const c of others) await c.onApplicationShutdown();
    }
  });

  it('keeps estimated and billed independent', async () => {
    const when = at('2026-05-12T12:00:00Z');
    expect(await ledger.record('estimated', 'wamid.B', 'service', 0.0157, when)).toBe(true);
    expect(await ledger.record('billed', 'wamid.B', 'service', 0, when)).toBe(true);
    expect(await ledger.record('estimated', 'wamid.B', 'SERVICE', 0.0157, when)).toBe(false);
    // A template's upper-case category shares the row of the status's lower-case one.
    expect(await ledger.record('estimated', 'wamid.C', 'UTILITY', 0.0157, when)).toBe(true);
    expect(await ledger.record('billed', 'wamid.C', 'utility', 0.0157, when)).toBe(true);
    const report = await ledger.report('2026-05-12', '2026-05-12');
    expect(report.estimated).toEqual({
      service: { count: 1, usd: 0.0157 },
      utility: { count: 1, usd: 0.0157 },
      total: { count: 2, usd: 0.0314 },
    });
    expect(report.billed).toEqual({
      service: { count: 1, usd: 0 },
      utility: { count: 1, usd: 0.0157 },
      total: { count: 2, usd: 0.0157 },
    });
  });

  it('adds up a day of mixed categories exactly, as by hand', async () => {
    const when = at('2026-06-01T09:30:00Z');
    const sent: [string, number, number][] = [
      ['marketing', 0.0499, 3],
      ['utility', 0.0157, 2],
      ['authentication', 0.0178, 1],
      ['service', 0, 4],
      // Ten dimes: a float sum drifts (0.9999999999999999), micro-USD do not.
      ['marketing_lite', 0.1, 10],
    ];
    let n = 0;
    for (const [category, usd, count] of sent) {
      for (let i = 0; i < count; i++) await ledger.record('estimated', `wamid.M${n++}`, category, usd, when);
    }
    // One billed message that was never estimated shows the category on both sides.
    await ledger.record('billed', 'wamid.M0', 'authentication-international', 0.0331, when);

    const report = await ledger.report('2026-06-01', '2026-06-01');
    const expected: CostReport = {
      from: '2026-06-01',
      to: '2026-06-01',
      currency: 'USD',
      estimated: {
        'authentication-international': { count: 0, usd: 0 },
        authentication: { count: 1, usd: 0.0178 },
        marketing: { count: 3, usd: 0.1497 },
        marketing_lite: { count: 10, usd: 1 },
        service: { count: 4, usd: 0 },
        utility: { count: 2, usd: 0.0314 },
        // 0.1497 + 0.0314 + 0.0178 + 0 + 1
        total: { count: 20, usd: 1.1989 },
      },
      billed: {
        'authentication-international': { count: 1, usd: 0.0331 },
        authentication: { count: 0, usd: 0 },
        marketing: { count: 0, usd: 0 },
        marketing_lite: { count: 0, usd: 0 },
        service: { count: 0, usd: 0 },
        utility: { count: 0, usd: 0 },
        total: { count: 1, usd: 0.0331 },
      },
    };
    expect(report).toEqual(expected);
  });

  it('counts UTC days, from and to both inclusive', async () => {
    const record = (wamid: string, iso: string) => ledger.record('estimated', wamid, 'utility', 0.01, at(iso));
    await record('wamid.D1', '2026-03-30T23:59:59.999Z');
    await record('wamid.D2', '2026-03-31T00:00:00.000Z');
    await record('wamid.D3', '2026-03-31T23:59:59.999Z');
    await record('wamid.D4', '2026-04-01T12:00:00.000Z');
    await record('wamid.D5', '2026-04-02T00:00:00.000Z');
    // 02:00 on 2 April in the UAE (UTC+4) is still 1 April in UTC: the ledger's days are UTC days.
    await record('wamid.D6', '2026-04-02T02:00:00+04:00');

    const totalOf = async (from: string, to: string) => (await ledger.report(from, to)).estimated.total;
    expect(await totalOf('2026-03-31', '2026-04-01')).toEqual({ count: 4, usd: 0.04 });
    expect(await totalOf('2026-03-30', '2026-04-02')).toEqual({ count: 6, usd: 0.06 });
    expect(await totalOf('2026-03-31', '2026-03-31')).toEqual({ count: 2, usd: 0.02 });
    expect(await totalOf('2026-04-02', '2026-04-02')).toEqual({ count: 1, usd: 0.01 });
    // Across a month and a year boundary, the day list is built in UTC.
    expect(await totalOf('2025-12-31', '2026-04-30')).toEqual({ count: 6, usd: 0.06 });
  });

  it('reports zero totals for a range with nothing in it', async () => {
    expect(await ledger.report('2024-01-01', '2024-01-31')).toEqual({
      from: '2024-01-01',
      to: '2024-01-31',
      currency: 'USD',
      estimated: { total: { count: 0, usd: 0 } },
      billed: { total: { count: 0, usd: 0 } },
    });
  });

  it('keeps a day 13 months and the once-marks 35 days', async () => {
    await ledger.record('estimated', 'wamid.TTL', 'marketing', 0.05, at('2026-07-01T00:00:00Z'));
    const dayTtl = await redis.ttl(keys.costDay('2026-07-01'));
    expect(dayTtl).toBeGreaterThanOrEqual(395 * DAY_S);
    expect(dayTtl).toBeLessThanOrEqual(400 * DAY_S);
    const onceTtl = await redis.ttl(keys.costOnce('estimated', 'wamid.TTL'));
    expect(onceTtl).toBeGreaterThan(34 * DAY_S);
    expect(onceTtl).toBeLessThanOrEqual(35 * DAY_S);
    // Integer micro-USD in the hash, so sums never drift.
    expect(await redis.hgetall(keys.costDay('2026-07-01'))).toEqual({
      'estimated:marketing:count': '1',
      'estimated:marketing:micros': '50000',
    });
  });

  it('refuses reversed, malformed and over-long ranges', async () => {
    await expect(ledger.report('2026-05-02', '2026-05-01')).rejects.toThrow(RangeError);
    await expect(ledger.report('2026-02-30', '2026-03-01')).rejects.toThrow(RangeError);
    await expect(ledger.report('2026-5-1', '2026-05-02')).rejects.toThrow(RangeError);
    // 2025-01-01 .. 2026-02-04 is 400 days; one more is refused.
    expect(MAX_REPORT_DAYS).toBe(400);
    await expect(ledger.report('2025-01-01', '2026-02-04')).resolves.toMatchObject({
      estimated: { total: { count: 0 } },
    });
    await expect(ledger.report('2025-01-01', '2026-02-05')).rejects.toThrow(RangeError);
  });

  it('refuses input that would corrupt the ledger, writing nothing', async () => {
    const when = at('2026-08-01T00:00:00Z');
    await expect(ledger.record('estimated', 'wamid.X', 'total', 0.01, when)).rejects.toThrow(TypeError);
    await expect(ledger.record('estimated', 'wamid.X', 'a:b', 0.01, when)).rejects.toThrow(TypeError);
    await expect(ledger.record('estimated', 'wamid.X', 'utility', -0.01, when)).rejects.toThrow(RangeError);
    await expect(ledger.record('estimated', 'wamid.X', 'utility', Number.NaN, when)).rejects.toThrow(RangeError);
    await expect(ledger.record('estimated', 'wamid.X', 'utility', 0.01, Number.NaN)).rejects.toThrow(RangeError);
    expect(await redis.exists(keys.costOnce('estimated', 'wamid.X'), keys.costDay('2026-08-01'))).toBe(0);
    // The wamid was not marked: a valid record still counts.
    expect(await ledger.record('estimated', 'wamid.X', 'utility', 0.01, when)).toBe(true);
  });
});

describe('CostsModule', () => {
  /** Closed here, not by the module: a module that failed to build is not there to close them. */
  const opened: RedisConnections[] = [];

  afterAll(async () => {
    for (const c of opened.splice(0)) await c.onApplicationShutdown();
  });

  const build = (env: Record<string, string>) => {
    const config = new AppConfig(validateEnv(testEnv({ REDIS_PREFIX: uniquePrefix(), ...env })));
    // The ledger opens its Redis connection while the module is built, so a build that fails
    // later (a bad PRICING_FILE) would leave it open and hold the test run.
    const connections = new RedisConnections(config, new AppLogger('silent'));
    opened.push(connections);
    return Test.createTestingModule({
      imports: [
        AppConfigModule.forRoot(config),
        LoggingModule,
        RedisModule,
        MetricsModule.forRoot({ servePublicly: false }),
        CostsModule,
      ],
    })
      .overrideProvider(RedisConnections)
      .useValue(connections)
      .compile();
  };

  it('provides the shipped pricing for the configured BSP and the Redis ledger', async () => {
    const moduleRef = await build({ BSP_PROVIDER: 'sandbox' });
    try {
      const pricing = moduleRef.get(Pricing);
      expect(pricing.market('+971501234567')).toBe('AE');
      expect(pricing.markupPercent).toBe(0);
      const ledger = moduleRef.get(CostLedger);
      expect(ledger).toBeInstanceOf(RedisCostLedger);
      expect(await ledger.report('2024-02-01', '2024-02-02')).toMatchObject({ estimated: { total: { count: 0 } } });
    } finally {
      await moduleRef.close();
    }
  });

  it('stops start-up with one readable message when PRICING_FILE is bad', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'tawasul-pricing-')), 'pricing.json');
    writeFileSync(file, JSON.stringify({ currency: 'USD' }));
    const failure = await build({ PRICING_FILE: file }).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(failure?.message.startsWith(`PRICING_FILE: ${file}: bspMarkupPercent: expected an object`)).toBe(true);
    expect(failure?.message).not.toMatch(/\n/);
  });
});
