import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { CostLedger } from '../costs/cost-ledger';
import { Pricing } from '../costs/pricing';
import { RedisConnections } from '../redis/redis-connections.service';
import { RedisKeys } from '../redis/redis-keys';
import { type RedisClient } from '../redis/redis-client';
import { type IngestItem } from '../dedup/ingest-item';
import { laneKind, laneParts, statusLane } from '../queue/queue.constants';
import { Clock } from '../time/clock';
import { type Lease } from './turn.types';

/** Outbound records and part acks outlive late statuses (at least 30 days). */
export const RECORD_TTL_S = 35 * 86400;
/** Statuses waiting on one recipient's lane that a part's settling looks through. */
const WAITING_STATUSES_READ = 500;

/** Status order: a record only moves forward (a late `delivered` never undoes `read`). */
const STATUS_RANK: Record<string, number> = { sent: 1, delivered: 2, read: 3, played: 4, failed: 5 };

/**
 * KEYS: record, the status lane's lease. ARGV: status, rank, statusAt, error code or '', TTL s,
 * part key or '', fence. Fenced like every write of a lane's turn: -1 when the lease was lost.
 * A status for a record that does not exist is refused unless it carries our part key (the send's
 * answer may not have been recorded yet: the connection broke after Meta accepted it).
 * Returns false when refused, else { lane, mode, category, sentAt } of the record.
 */
const APPLY_STATUS = `
if redis.call('GET', KEYS[2]) ~= ARGV[7] then return -1 end
if redis.call('EXISTS', KEYS[1]) == 0 and ARGV[6] == '' then return false end
local rank = tonumber(redis.call('HGET', KEYS[1], 'rank') or '0')
if tonumber(ARGV[2]) > rank then
  redis.call('HSET', KEYS[1], 'status', ARGV[1], 'rank', ARGV[2], 'statusAt', ARGV[3])
  if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'errorCode', ARGV[4]) end
end
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'part', ARGV[6]) end
redis.call('EXPIRE', KEYS[1], ARGV[5])
local r = redis.call('HMGET', KEYS[1], 'lane', 'mode', 'category', 'sentAt')
return { r[1] or '', r[2] or '', r[3] or '', r[4] or '' }
`;

/**
 * KEYS: record, the chat's cost counter. ARGV: micro-USD, TTL s. Adds a message's estimate to its
 * chat's counter once: the record remembers it was counted, so a retried job adds nothing.
 */
const ADD_CHAT_COST = `
if redis.call('HSETNX', KEYS[1], 'chatCounted', '1') == 1 then redis.call('INCRBY', KEYS[2], ARGV[1]) end
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
`;

export interface SentPart {
  wamid: string;
  lane: string;
  turnId: string;
  partKey: string;
  to: string;
  mode: 'free_form' | 'template';
  category: string;
  /** Window open at decision time: some rate tables price a category inside it at 0. */
  inWindow: boolean;
}

export interface StatusUpdate {
  wamid: string;
  status: string;
  /** Seconds since epoch, as Meta sends it. */
  timestamp?: string;
  errorCode?: string;
  partKey?: string;
  /** Meta's `pricing`, when the status carries it. */
  pricing?: { type?: string; category?: string };
  recipient?: string;
}

export interface OutboundRecord {
  lane: string;
  mode: string;
  category: string;
  /** Business time of the send (ms); undefined when only a status created the record. */
  sentAt?: number;
}

type ApplyStatus = (...keysAndArgs: (string | number)[]) => Promise<[string, string, string, string] | null | -1>;
type ChainableWithChatCost = ReturnType<RedisClient['multi']> & {
  tsChatCost(...keysAndArgs: (string | number)[]): ReturnType<RedisClient['multi']>;
};

/**
 * What we sent and what became of it, per wamid (docs/window.md): the part ack that
 * stops a resend, the record late statuses find, and both sides of the cost ledger — the estimate
 * when Meta accepts a message (also added to the chat's own running estimate), the billed price
 * when a status brings `pricing` (once per message, although Meta repeats it on `sent` and again
 * on `delivered` or `read`).
 */
@Injectable()
export class OutboundRecords {
  private readonly redis: RedisClient & { tsApplyStatus?: ApplyStatus; tsChatCost?: unknown };

  constructor(
    connections: RedisConnections,
    private readonly keys: RedisKeys,
    private readonly pricing: Pricing,
    private readonly ledger: CostLedger,
    private readonly clock: Clock,
    private readonly config: AppConfig,
  ) {
    this.redis = connections.worker;
    if (!this.redis.tsApplyStatus) this.redis.defineCommand('tsApplyStatus', { numberOfKeys: 2, lua: APPLY_STATUS });
    if (!this.redis.tsChatCost) this.redis.defineCommand('tsChatCost', { numberOfKeys: 2, lua: ADD_CHAT_COST });
  }

  /** Idempotent: a retried job records the same part again without counting it twice. */
  async sent(part: SentPart): Promise<number> {
    const now = this.clock.now();
    const usd = this.pricing.estimate({ to: part.to, category: part.category, at: now, inWindow: part.inWindow });
    const record = this.keys.outbound(part.wamid);
    const multi = this.redis.multi().set(this.keys.partAck(part.partKey), part.wamid, 'EX', RECORD_TTL_S).hset(record, {
      lane: part.lane,
      turn: part.turnId,
      part: part.partKey,
      mode: part.mode,
      category: part.category,
      estimateUsd: usd,
      sentAt: now,
    }) as ChainableWithChatCost;
    await multi
      .tsChatCost(
        record,
        this.keys.chatCost(part.lane),
        Math.round(usd * 1e6),
        this.config.env.CONVERSATION_TTL_SECONDS,
      )
      .expire(record, RECORD_TTL_S)
      .exec();
    await this.ledger.record('estimated', part.wamid, part.category, usd, now);
    return usd;
  }

  /** The wamid Meta confirmed for a part key, from a send answer or a status. */
  async ackOf(partKey: string, chat?: string): Promise<string | null> {
    const acked = await this.redis.get(this.keys.partAck(partKey));
    if (acked || !chat || laneKind(chat) !== 'chat') return acked;
    // A status a receiver accepted is as good as its ack: its status lane may not have run yet
    // (it waits for a worker like any other lane, longer when workers are starved), and a
    // resend now would double a reply Meta already has.
    const { phoneNumberId, sender } = laneParts(chat);
    const lane = statusLane(phoneNumberId, sender);
    const [turn, inbox] = await Promise.all([
      this.redis.lrange(this.keys.turnItems(lane), 0, WAITING_STATUSES_READ - 1),
      this.redis.lrange(this.keys.inbox(lane), 0, WAITING_STATUSES_READ - 1),
    ]);
    for (const raw of [...turn, ...inbox]) {
      const status = (JSON.parse(raw) as IngestItem).raw as { id?: unknown; biz_opaque_callback_data?: unknown };
      if (status?.biz_opaque_callback_data !== partKey || typeof status.id !== 'string' || status.id === '') continue;
      await this.ack(partKey, status.id);
      return status.id;
    }
    return null;
  }

  /** Settles a part whose send outcome was unknown: its status arrived. */
  async ack(partKey: string, wamid: string): Promise<void> {
    await this.redis.set(this.keys.partAck(partKey), wamid, 'EX', RECORD_TTL_S, 'NX');
  }

  /**
   * Applies a status under the status lane's lease; undefined when the message is not one of ours
   * (yet), 'lost' when the lease was.
   */
  async applyStatus(lease: Lease, update: StatusUpdate): Promise<OutboundRecord | undefined | 'lost'> {
    const rank = Object.hasOwn(STATUS_RANK, update.status) ? STATUS_RANK[update.status] : 0;
    const statusAt = update.timestamp ?? String(Math.floor(Date.now() / 1000));
    const result = await this.redis.tsApplyStatus!(
      this.keys.outbound(update.wamid),
      this.keys.lease(lease.lane),
      update.status,
      rank,
      statusAt,
      update.errorCode ?? '',
      RECORD_TTL_S,
      update.partKey ?? '',
      lease.fence,
    );
    if (result === -1) return 'lost';
    if (!result) return undefined;
    const [lane, mode, category, sentAt] = result;
    const pricing = update.pricing;
    if (pricing?.category && pricing.type) {
      const at = Number(statusAt) * 1000 || this.clock.now();
      const usd = this.pricing.billed({
        to: update.recipient ?? '',
        category: pricing.category,
        type: pricing.type,
        at,
      });
      await this.ledger.record('billed', update.wamid, pricing.category, usd, at);
    }
    return { lane, mode, category, sentAt: Number(sentAt) || undefined };
  }
}
