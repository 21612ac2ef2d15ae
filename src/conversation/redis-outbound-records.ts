import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { CostLedger } from '../costs/cost-ledger';
import { Pricing } from '../costs/pricing';
import { RedisConnections } from '../redis/redis-connections.service';
import { RedisKeys } from '../redis/redis-keys';
import { type RedisClient } from '../redis/redis-client';
import { Clock } from '../time/clock';
import {
  type OutboundRecord,
  OutboundRecords,
  RECORD_TTL_S,
  type RecordedStatus,
  recordFields,
  type SentPart,
} from './outbound-records';
import { type Lease } from './turn.types';

/**
 * KEYS: record, the status lane's lease. ARGV: status, rank, statusAt, error code or '', TTL s,
 * part key or '', fence. -1 when the lease was lost, false when refused, else { lane, mode,
 * category, sentAt, origin, turn } of the record ('' for a field it lacks).
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
local r = redis.call('HMGET', KEYS[1], 'lane', 'mode', 'category', 'sentAt', 'origin', 'turn')
return { r[1] or '', r[2] or '', r[3] or '', r[4] or '', r[5] or '', r[6] or '' }
`;

/**
 * KEYS: record, the chat's cost counter. ARGV: micro-USD, TTL s. The record remembers it was
 * counted, so a retried job adds nothing.
 */
const ADD_CHAT_COST = `
if redis.call('HSETNX', KEYS[1], 'chatCounted', '1') == 1 then redis.call('INCRBY', KEYS[2], ARGV[1]) end
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
`;

type ApplyStatus = (
  ...keysAndArgs: (string | number)[]
) => Promise<[string, string, string, string, string, string] | null | -1>;
type ChainableWithChatCost = ReturnType<RedisClient['multi']> & {
  tsChatCost(...keysAndArgs: (string | number)[]): ReturnType<RedisClient['multi']>;
};

/**
 * OutboundRecords on Redis: `out:<wamid>` hashes, `ack:<part key>` strings and the chat's
 * `cost` counter, over the worker connection. The status lane's waiting items are read from its
 * inbox and turn lists, as the ConversationStore keeps them.
 */
@Injectable()
export class RedisOutboundRecords extends OutboundRecords {
  private readonly redis: RedisClient & { tsApplyStatus?: ApplyStatus; tsChatCost?: unknown };

  constructor(
    connections: RedisConnections,
    private readonly keys: RedisKeys,
    private readonly config: AppConfig,
    pricing: Pricing,
    ledger: CostLedger,
    clock: Clock,
  ) {
    super(pricing, ledger, clock);
    this.redis = connections.worker;
    if (!this.redis.tsApplyStatus) this.redis.defineCommand('tsApplyStatus', { numberOfKeys: 2, lua: APPLY_STATUS });
    if (!this.redis.tsChatCost) this.redis.defineCommand('tsChatCost', { numberOfKeys: 2, lua: ADD_CHAT_COST });
  }

  protected async writeSent(part: SentPart, usd: number, at: number): Promise<void> {
    const record = this.keys.outbound(part.wamid);
    const multi = this.redis
      .multi()
      .set(this.keys.partAck(part.partKey), part.wamid, 'EX', RECORD_TTL_S)
      .hset(record, recordFields(part, usd, at)) as ChainableWithChatCost;
    await multi
      .tsChatCost(
        record,
        this.keys.chatCost(part.lane),
        Math.round(usd * 1e6),
        this.config.env.CONVERSATION_TTL_SECONDS,
      )
      .expire(record, RECORD_TTL_S)
      .exec();
  }

  protected readAck(partKey: string): Promise<string | null> {
    return this.redis.get(this.keys.partAck(partKey));
  }

  protected async waitingStatuses(lane: string, max: number): Promise<string[]> {
    const [turn, inbox] = await Promise.all([
      this.redis.lrange(this.keys.turnItems(lane), 0, max - 1),
      this.redis.lrange(this.keys.inbox(lane), 0, max - 1),
    ]);
    return [...turn, ...inbox];
  }

  async ack(partKey: string, wamid: string): Promise<void> {
    await this.redis.set(this.keys.partAck(partKey), wamid, 'EX', RECORD_TTL_S, 'NX');
  }

  protected async writeStatus(lease: Lease, status: RecordedStatus): Promise<OutboundRecord | undefined | 'lost'> {
    const result = await this.redis.tsApplyStatus!(
      this.keys.outbound(status.wamid),
      this.keys.lease(lease.lane),
      status.status,
      status.rank,
      status.statusAt,
      status.errorCode ?? '',
      RECORD_TTL_S,
      status.partKey ?? '',
      lease.fence,
    );
    if (result === -1) return 'lost';
    if (!result) return undefined;
    const [lane, mode, category, sentAt, origin, turnId] = result;
    return { lane, mode, category, origin, turnId, sentAt: Number(sentAt) || undefined };
  }
}
