import { Injectable } from '@nestjs/common';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { AppLogger } from '../logging/app-logger';
import { MetricsService } from '../metrics/metrics.service';
import { RedisConnections } from '../redis/redis-connections.service';
import { type RedisClient, waitReady } from '../redis/redis-client';
import { RedisKeys } from '../redis/redis-keys';

/** The holders of inference slots, under the hash-tagged root: `{tawasul}:llm:slots`. */
export const llmSlotsKey = (keys: RedisKeys): string => `${keys.root}:llm:slots`;
/** Chats waiting for a slot, first come first served (score: their place in line). */
export const llmWaitingKey = (keys: RedisKeys): string => `${keys.root}:llm:waiting`;
/** The next place in line: a counter, so two chats asking in the same millisecond keep their order. */
const llmLineKey = (keys: RedisKeys): string => `${keys.root}:llm:line`;
/** When each waiting chat last asked (score), so chats that stopped asking are forgotten. */
const llmSeenKey = (keys: RedisKeys): string => `${keys.root}:llm:seen`;

/** A waiting chat asks again at least this often (its parked turn's own wake-up)... */
export const SLOT_RECHECK_MS = 10_000;
/** ...and is forgotten when it has not asked for this long (its chat was erased, its turn moved on). */
const WAITER_STALE_MS = 3 * SLOT_RECHECK_MS;

/** A slot outlives LLM_TIMEOUT_MS by this much, so it expires only after its call surely ended. */
export const SLOT_TTL_MARGIN_MS = 5000;

/** How long a call waits for the Redis connection to come up before failing (start-up only). */
const READY_WAIT_MS = 2000;

/**
 * KEYS[1] slot holders: sorted set, member = holder id, score = expiry (ms, Redis clock)
 * KEYS[2] waiting chats (score: place in line)   KEYS[3] waiting chats (score: last asked)
 * KEYS[4] the place-in-line counter
 * ARGV[1] holder id   ARGV[2] ttl (ms)   ARGV[3] limit   ARGV[4] the asking chat   ARGV[5] stale ms
 * Returns 1 when the holder now has a slot (a holder that already had one is renewed), else 0 and
 * the chat waits in line. A free slot goes to the chats that have waited longest: a chat gets one
 * only while fewer chats wait ahead of it than slots are free.
 * The Redis clock, not the workers': a worker whose clock runs ahead must not expire others.
 */
const ACQUIRE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local stale = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - stale, 'LIMIT', 0, 100)
for i = 1, #gone do
  redis.call('ZREM', KEYS[2], gone[i])
  redis.call('ZREM', KEYS[3], gone[i])
end
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
local free = tonumber(ARGV[3]) - redis.call('ZCARD', KEYS[1])
local ahead = redis.call('ZRANK', KEYS[2], ARGV[4]) or redis.call('ZCARD', KEYS[2])
if held or (free > 0 and ahead < free) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
  redis.call('ZREM', KEYS[2], ARGV[4])
  redis.call('ZREM', KEYS[3], ARGV[4])
  return 1
end
if not redis.call('ZSCORE', KEYS[2], ARGV[4]) then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), ARGV[4])
end
redis.call('ZADD', KEYS[3], now, ARGV[4])
redis.call('PEXPIRE', KEYS[2], 2 * stale)
redis.call('PEXPIRE', KEYS[3], 2 * stale)
redis.call('PEXPIRE', KEYS[4], 2 * stale)
return 0
`;

/**
 * KEYS[1] slot holders   KEYS[2] waiting chats (score: place in line)
 * ARGV[1] holder id      ARGV[2] limit
 * Frees the holder's slot and returns the chats first in line for the slots now free, flattened
 * as chat, place-in-line pairs: their parked turns are woken at once instead of polling.
 */
const RELEASE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local free = tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[1])
if free <= 0 then return {} end
return redis.call('ZRANGE', KEYS[2], 0, free - 1, 'WITHSCORES')
`;

/**
 * KEYS[1] slot holders   KEYS[2] waiting chats (score: place in line)   KEYS[3] waiting (last asked)
 * ARGV[1] the chat leaving   ARGV[2] limit
 * Takes the chat out of the line and returns the chats now first in line for the free slots, as
 * RELEASE does: a chat that left from the head must not leave a free slot idle.
 */
const LEAVE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return {} end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local free = tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[1])
if free <= 0 then return {} end
return redis.call('ZRANGE', KEYS[2], 0, free - 1, 'WITHSCORES')
`;

/** KEYS[1] slot holders. Returns the number of unexpired holders. */
const COUNT_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
`;

// numberOfKeys is fixed by defineCommand: called as (key, ...args).
type ScriptCommand = (...keysAndArgs: (string | number)[]) => Promise<number>;
type LimiterClient = RedisClient & {
  tawasulLlmAcquire?: ScriptCommand;
  tawasulLlmCount?: ScriptCommand;
  tawasulLlmRelease?: (...keysAndArgs: (string | number)[]) => Promise<string[]>;
  tawasulLlmLeave?: (...keysAndArgs: (string | number)[]) => Promise<string[]>;
};

/** A chat first in line for a slot that was just freed. */
export interface SlotWaiter {
  chat: string;
  /** Its place in line: names this stretch of waiting, for its wake-up's id. */
  since: string;
}

/**
 * The global cap on inference calls in flight across every worker process (vLLM
 * queues without limit, so latency would grow until every call times out). A Redis semaphore:
 * holders in a sorted set scored by expiry, so a slot of a SIGKILLed worker frees itself after
 * LLM_TIMEOUT_MS + SLOT_TTL_MARGIN_MS.
 *
 * No waiting inside: tryAcquire answers at once, and the caller parks its turn (a per-chat
 * "not before" time) when no slot is free; the chat then waits in line. release()
 * names the chats first in line for the slots it leaves free, for the caller to wake: slots go
 * first come first served, without polling. The caller is LlmStep (src/conversation/llm-step.ts).
 */
@Injectable()
export class LlmConcurrencyLimiter {
  private readonly key: string;
  private readonly waitingKey: string;
  private readonly seenKey: string;
  private readonly lineKey: string;
  private readonly logger: Logger;
  private connecting?: Promise<void>;

  constructor(
    private readonly connections: RedisConnections,
    keys: RedisKeys,
    private readonly config: AppConfig,
    private readonly metrics: MetricsService,
    appLogger: AppLogger,
  ) {
    this.key = llmSlotsKey(keys);
    this.waitingKey = llmWaitingKey(keys);
    this.seenKey = llmSeenKey(keys);
    this.lineKey = llmLineKey(keys);
    this.logger = appLogger.child('llm');
  }

  /** The producer connection, opened on first use: it fails fast during an outage instead of queueing. */
  private get client(): LimiterClient {
    const client: LimiterClient = this.connections.producer;
    if (!client.tawasulLlmAcquire) {
      client.defineCommand('tawasulLlmAcquire', { numberOfKeys: 4, lua: ACQUIRE_SCRIPT });
      client.defineCommand('tawasulLlmRelease', { numberOfKeys: 2, lua: RELEASE_SCRIPT });
      client.defineCommand('tawasulLlmCount', { numberOfKeys: 1, lua: COUNT_SCRIPT });
      client.defineCommand('tawasulLlmLeave', { numberOfKeys: 3, lua: LEAVE_SCRIPT });
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
   * Takes a slot for `holderId` when one is free and no chat waits ahead of `chat`; true on
   * success. Otherwise `chat` waits in line (until it asks again, or stops asking for a while).
   * Taking it again with the same id renews it and still counts once. Rejects when Redis is
   * unreachable (the caller's turn fails and is retried like any other Redis error).
   */
  async tryAcquire(holderId: string, chat: string = holderId, ttlMs: number = this.defaultTtlMs): Promise<boolean> {
    const client = await this.ready();
    const run = client.tawasulLlmAcquire as ScriptCommand;
    const acquired =
      (await run.call(
        client,
        this.key,
        this.waitingKey,
        this.seenKey,
        this.lineKey,
        holderId,
        Math.ceil(ttlMs),
        this.limit,
        chat,
        WAITER_STALE_MS,
      )) === 1;
    if (!acquired) this.metrics.llmSlotsBusy.inc();
    return acquired;
  }

  /**
   * Frees the slot and returns the chats first in line for the slots now free (wake them). Never
   * rejects: when Redis is away the slot expires by itself, and waiting chats ask again.
   */
  async release(holderId: string): Promise<SlotWaiter[]> {
    try {
      const client = await this.ready();
      return waitersOf(await client.tawasulLlmRelease!(this.key, this.waitingKey, holderId, this.limit));
    } catch (err) {
      this.logger.warn({ err }, 'could not release an llm slot; it will expire');
      return [];
    }
  }

  /**
   * Takes `chat` out of the line (its turn ended without the LLM) and returns the chats now first
   * in line for the free slots (wake them). Never rejects: a waiter that stops asking is forgotten
   * after a while anyway.
   */
  async leaveLine(chat: string): Promise<SlotWaiter[]> {
    try {
      const client = await this.ready();
      return waitersOf(await client.tawasulLlmLeave!(this.key, this.waitingKey, this.seenKey, chat, this.limit));
    } catch (err) {
      this.logger.warn({ err }, 'could not take a chat out of the llm line; it will be forgotten');
      return [];
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

/** Chat, place-in-line pairs as the scripts return them, flattened. */
function waitersOf(flat: string[]): SlotWaiter[] {
  const waiters: SlotWaiter[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) waiters.push({ chat: flat[i], since: flat[i + 1] });
  return waiters;
}
