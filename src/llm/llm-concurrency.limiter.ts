import { Injectable } from '@nestjs/common';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { AppLogger } from '../logging/app-logger';
import { RedisConnections } from '../redis/redis-connections.service';
import { type RedisClient, waitReady } from '../redis/redis-connections';
import { RedisKeys } from '../redis/redis-keys';
import { LlmMetrics } from './llm.metrics';

/** The holders of inference slots, under the hash-tagged root: `{tawasul}:llm:slots`. */
export const llmSlotsKey = (keys: RedisKeys): string => `${keys.root}:llm:slots`;

/** A slot outlives LLM_TIMEOUT_MS by this much, so it expires only after its call surely ended. */
export const SLOT_TTL_MARGIN_MS = 5000;

/** How long a call waits for the Redis connection to come up before failing (start-up only). */
const READY_WAIT_MS = 2000;

/**
 * KEYS[1] slot holders: sorted set, member = holder id, score = expiry (ms, Redis clock)
 * ARGV[1] holder id   ARGV[2] ttl (ms)   ARGV[3] limit
 * Returns 1 when the holder now has a slot (a holder that already had one is renewed), else 0.
 * The Redis clock, not the workers': a worker whose clock runs ahead must not expire others.
 */
const ACQUIRE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
`;

/** KEYS[1] slot holders. Returns the number of unexpired holders. */
const COUNT_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
`;

// numberOfKeys is fixed by defineCommand: called as (key, ...args).
type ScriptCommand = (...keysAndArgs: (string | number)[]) => Promise<number>;
type LimiterClient = RedisClient & { tawasulLlmAcquire?: ScriptCommand; tawasulLlmCount?: ScriptCommand };

/**
 * The global cap on inference calls in flight across every worker process (SPEC §4.7: vLLM
 * queues without limit, so latency would grow until every call times out). A Redis semaphore:
 * holders in a sorted set scored by expiry, so a slot of a SIGKILLed worker frees itself after
 * LLM_TIMEOUT_MS + SLOT_TTL_MARGIN_MS.
 *
 * No waiting inside: tryAcquire answers at once, and the caller defers its turn (a per-chat
 * "not before" time, SPEC §4.5) when no slot is free.
 *
 *   const holder = `${turnId}`;                     // unique per call in flight
 *   if (!(await limiter.tryAcquire(holder))) return deferTurn();
 *   try { reply = await llm.complete(request); } finally { await limiter.release(holder); }
 */
@Injectable()
export class LlmConcurrencyLimiter {
  private readonly key: string;
  private readonly logger: Logger;
  private connecting?: Promise<void>;

  constructor(
    private readonly connections: RedisConnections,
    keys: RedisKeys,
    private readonly config: AppConfig,
    private readonly metrics: LlmMetrics,
    appLogger: AppLogger,
  ) {
    this.key = llmSlotsKey(keys);
    this.logger = appLogger.child('llm');
  }

  /** The producer connection, opened on first use: it fails fast during an outage instead of queueing. */
  private get client(): LimiterClient {
    const client: LimiterClient = this.connections.producer;
    if (!client.tawasulLlmAcquire) {
      client.defineCommand('tawasulLlmAcquire', { numberOfKeys: 1, lua: ACQUIRE_SCRIPT });
      client.defineCommand('tawasulLlmCount', { numberOfKeys: 1, lua: COUNT_SCRIPT });
    }
    return client;
  }

  get limit(): number {
    return this.config.env.LLM_MAX_CONCURRENCY;
  }

  /** LLM_TIMEOUT_MS plus a margin: one call, start to end, always fits. */
  get defaultTtlMs(): number {
    return this.config.env.LLM_TIMEOUT_MS + SLOT_TTL_MARGIN_MS;
  }

  /**
   * Takes a slot for `holderId` when fewer than LLM_MAX_CONCURRENCY are held; true on success.
   * Taking it again with the same id renews it and still counts once. Rejects when Redis is
   * unreachable (the caller's turn fails and is retried like any other Redis error).
   */
  async tryAcquire(holderId: string, ttlMs: number = this.defaultTtlMs): Promise<boolean> {
    const client = await this.ready();
    const run = client.tawasulLlmAcquire as ScriptCommand;
    const acquired = (await run.call(client, this.key, holderId, Math.ceil(ttlMs), this.limit)) === 1;
    if (!acquired) this.metrics.slotsBusy.inc();
    return acquired;
  }

  /** Frees the slot. Never rejects: when Redis is away the slot expires by itself. */
  async release(holderId: string): Promise<void> {
    try {
      const client = await this.ready();
      await client.zrem(this.key, holderId);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'could not release an llm slot; it will expire');
    }
  }

  /** Slots held right now (unexpired), across all processes. */
  async held(): Promise<number> {
    const client = await this.ready();
    const run = client.tawasulLlmCount as ScriptCommand;
    return run.call(client, this.key);
  }

  /** At start-up many turns may ask at once: they share one wait for the connection. */
  private async ready(): Promise<LimiterClient> {
    const client = this.client;
    if (client.status === 'ready') return client;
    this.connecting ??= waitReady(client, READY_WAIT_MS)
      .then((ready) => {
        if (!ready) throw new Error(`redis not ready after ${READY_WAIT_MS} ms`);
      })
      .finally(() => {
        this.connecting = undefined;
      });
    await this.connecting;
    return client;
  }
}
