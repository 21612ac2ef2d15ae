import { type AppConfig } from '../../src/config/app-config';
import { CostLedger, type CostReport, type CostSide } from '../../src/costs/cost-ledger';
import { type Pricing } from '../../src/costs/pricing';
import {
  type OutboundRecord,
  OutboundRecords,
  RECORD_TTL_S,
  type RecordedStatus,
  recordFields,
  type SentPart,
} from '../../src/conversation/outbound-records';
import { type Lease } from '../../src/conversation/turn.types';
import { type Clock } from '../../src/time/clock';
import { type InMemoryConversationStore } from './in-memory-conversation.store';

const RECORD_TTL_MS = RECORD_TTL_S * 1000;

/**
 * OutboundRecords in memory, over the keyspace of an InMemoryConversationStore, as the Redis
 * adapter shares Redis with RedisConversationStore: fenced by the store's leases, reading the
 * status lanes' waiting items from the store's lists, and its chat estimate erased with the chat.
 * `clock` is the app's business clock (sent-at times, the ledger's day); TTLs run on the store's.
 */
export class InMemoryOutboundRecords extends OutboundRecords {
  constructor(
    private readonly store: InMemoryConversationStore,
    private readonly config: AppConfig,
    pricing: Pricing,
    ledger: CostLedger,
    clock: Clock,
  ) {
    super(pricing, ledger, clock);
  }

  private get data() {
    return this.store.data;
  }

  private get keys() {
    return this.store.keys;
  }

  /** The record of a wamid as the Redis adapter keeps its hash (for assertions). */
  record(wamid: string): Record<string, string> {
    return this.data.hash(this.keys.outbound(wamid));
  }

  protected writeSent(part: SentPart, usd: number, at: number): Promise<void> {
    this.data.setString(this.keys.partAck(part.partKey), part.wamid, RECORD_TTL_MS);
    const key = this.keys.outbound(part.wamid);
    this.data.setFields(key, recordFields(part, usd, at));
    const costKey = this.keys.chatCost(part.lane);
    if (!this.data.hash(key).chatCounted) {
      this.data.setFields(key, { chatCounted: '1' });
      const micros = Number(this.data.string(costKey) ?? 0) + Math.round(usd * 1e6);
      this.data.setString(costKey, String(micros));
    }
    this.data.expire(costKey, this.config.env.CONVERSATION_TTL_SECONDS * 1000);
    this.data.expire(key, RECORD_TTL_MS);
    return Promise.resolve();
  }

  protected readAck(partKey: string): Promise<string | null> {
    return Promise.resolve(this.data.string(this.keys.partAck(partKey)) ?? null);
  }

  protected waitingStatuses(lane: string, max: number): Promise<string[]> {
    return Promise.resolve([
      ...this.data.list(this.keys.turnItems(lane)).slice(0, max),
      ...this.data.list(this.keys.inbox(lane)).slice(0, max),
    ]);
  }

  ack(partKey: string, wamid: string): Promise<void> {
    const key = this.keys.partAck(partKey);
    if (!this.data.exists(key)) this.data.setString(key, wamid, RECORD_TTL_MS);
    return Promise.resolve();
  }

  protected writeStatus(lease: Lease, status: RecordedStatus): Promise<OutboundRecord | undefined | 'lost'> {
    if (!this.store.holds(lease)) return Promise.resolve('lost');
    const key = this.keys.outbound(status.wamid);
    if (!this.data.exists(key) && !status.partKey) return Promise.resolve(undefined);
    if (status.rank > Number(this.data.hash(key).rank ?? 0)) {
      this.data.setFields(key, {
        status: status.status,
        rank: String(status.rank),
        statusAt: status.statusAt,
        ...(status.errorCode && { errorCode: status.errorCode }),
      });
    }
    if (status.partKey) this.data.setFields(key, { part: status.partKey });
    this.data.expire(key, RECORD_TTL_MS);
    const record = this.data.hash(key);
    return Promise.resolve({
      lane: record.lane ?? '',
      mode: record.mode ?? '',
      category: record.category ?? '',
      origin: record.origin ?? '',
      turnId: record.turn ?? '',
      sentAt: Number(record.sentAt) || undefined,
    });
  }
}

/**
 * A cost ledger that keeps its entries in a list, counting each wamid once per side as the port
 * promises; the figures themselves are Pricing's, tested on their own (src/costs/pricing.spec.ts).
 */
export class RecordingCostLedger extends CostLedger {
  readonly entries: { side: CostSide; wamid: string; category: string; usd: number; at: number }[] = [];

  record(side: CostSide, wamid: string, category: string, usd: number, at: number): Promise<boolean> {
    if (this.entries.some((e) => e.side === side && e.wamid === wamid)) return Promise.resolve(false);
    this.entries.push({ side, wamid, category: category.trim().toLowerCase(), usd, at });
    return Promise.resolve(true);
  }

  report(): Promise<CostReport> {
    return Promise.reject(new Error('RecordingCostLedger keeps entries; reports come from RedisCostLedger'));
  }
}
