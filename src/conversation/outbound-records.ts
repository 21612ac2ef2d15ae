import { type CostLedger } from '../costs/cost-ledger';
import { type Pricing } from '../costs/pricing';
import { type IngestItem } from '../dedup/ingest-item';
import { laneKind, laneParts, statusLane } from '../queue/lanes';
import { type Clock } from '../time/clock';
import { type Lease } from './turn.types';

/** Outbound records and part acks outlive late statuses (at least 30 days). */
export const RECORD_TTL_S = 35 * 86400;
/** Statuses waiting on one recipient's lane that a part's settling looks through. */
const WAITING_STATUSES_READ = 500;

/** Status order: a record only moves forward (a late `delivered` never undoes `read`). */
const STATUS_RANK: Record<string, number> = { sent: 1, delivered: 2, read: 3, played: 4, failed: 5 };

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
  /**
   * Whose message it is: a bot or agent reply, a /v1 message (a late 131047 is then the clinic
   * system's failure to report, not the bot's to repair) or a canned notice. Default `reply`.
   */
  origin?: SendOrigin;
}

export type SendOrigin = 'reply' | 'api' | 'notice';

/** A sent part's record as every adapter stores it (a flat map of strings: a Redis hash). */
export function recordFields(part: SentPart, usd: number, at: number): Record<string, string> {
  return {
    lane: part.lane,
    turn: part.turnId,
    part: part.partKey,
    mode: part.mode,
    category: part.category,
    origin: part.origin ?? 'reply',
    estimateUsd: String(usd),
    sentAt: String(at),
  };
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

/** A status as the record keeps it: `rank` orders statuses (0: one the order does not know). */
export interface RecordedStatus {
  wamid: string;
  status: string;
  rank: number;
  /** Seconds since epoch. */
  statusAt: string;
  errorCode?: string;
  partKey?: string;
}

export interface OutboundRecord {
  lane: string;
  mode: string;
  category: string;
  /** SentPart.origin ('' when only a status created the record). */
  origin: string;
  turnId: string;
  /** Business time of the send (ms); undefined when only a status created the record. */
  sentAt?: number;
}

/**
 * Port: what we sent and what became of it, per wamid (docs/architecture.md §7; Redis adapter:
 * redis-outbound-records.ts): the part ack that stops a resend, the record late statuses find,
 * and both sides of the cost ledger — the estimate when Meta accepts a message (also added to the
 * chat's own running estimate), the billed price when a status brings `pricing` (once per
 * message, although Meta repeats it on `sent` and again on `delivered` or `read`).
 *
 * The public methods are the whole contract consumers use; pricing and the ledger are decided here,
 * once for every adapter. An adapter implements the storage steps below, each one atomic. Records
 * and acks live RECORD_TTL_S after their last write; the chat's running estimate lives as long as
 * its history (CONVERSATION_TTL_SECONDS), and erasing the chat (ConversationStore.erase) drops it.
 */
export abstract class OutboundRecords {
  constructor(
    protected readonly pricing: Pricing,
    protected readonly ledger: CostLedger,
    protected readonly clock: Clock,
  ) {}

  /**
   * Meta accepted a part: its ack, its record and its estimate. Not fenced: the message went out
   * whatever became of the lease, and the next holder must find the ack rather than resend.
   * Idempotent: a retried job records the same part again without counting it twice. Returns the
   * estimate (USD).
   */
  async sent(part: SentPart): Promise<number> {
    const now = this.clock.now();
    const usd = this.pricing.estimate({ to: part.to, category: part.category, at: now, inWindow: part.inWindow });
    await this.writeSent(part, usd, now);
    await this.ledger.record('estimated', part.wamid, part.category, usd, now);
    return usd;
  }

  /** The wamid Meta confirmed for a part key, from a send answer or a status. */
  async ackOf(partKey: string, chat?: string): Promise<string | null> {
    const acked = await this.readAck(partKey);
    if (acked || !chat || laneKind(chat) !== 'chat') return acked;
    // A status a receiver accepted is as good as its ack: its status lane may not have run yet
    // (it waits for a worker like any other lane, longer when workers are starved), and a
    // resend now would double a reply Meta already has.
    const { phoneNumberId, sender } = laneParts(chat);
    for (const raw of await this.waitingStatuses(statusLane(phoneNumberId, sender), WAITING_STATUSES_READ)) {
      const status = (JSON.parse(raw) as IngestItem).raw as { id?: unknown; biz_opaque_callback_data?: unknown };
      if (status?.biz_opaque_callback_data !== partKey || typeof status.id !== 'string' || status.id === '') continue;
      await this.ack(partKey, status.id);
      return status.id;
    }
    return null;
  }

  /**
   * Settles a part whose send outcome was unknown: its status arrived. The first ack of a part key
   * wins (a later one changes nothing); it lives RECORD_TTL_S. Not fenced, like `sent`.
   */
  abstract ack(partKey: string, wamid: string): Promise<void>;

  /**
   * Applies a status under the status lane's lease; undefined when the message is not one of ours
   * (yet), 'lost' when the lease was.
   */
  async applyStatus(lease: Lease, update: StatusUpdate): Promise<OutboundRecord | undefined | 'lost'> {
    const rank = Object.hasOwn(STATUS_RANK, update.status) ? STATUS_RANK[update.status] : 0;
    const statusAt = update.timestamp ?? String(Math.floor(Date.now() / 1000));
    const { wamid, status, errorCode, partKey } = update;
    const record = await this.writeStatus(lease, { wamid, status, rank, statusAt, errorCode, partKey });
    if (record === 'lost' || !record) return record;
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
    return record;
  }

  /**
   * One atomic step: the part's ack (part key → wamid), the record (lane, turn, part, mode,
   * category, estimate, sent-at), and the estimate (micro-USD, rounded) added to the chat's running
   * estimate only the first time this record is written. Record and ack live RECORD_TTL_S, the
   * running estimate CONVERSATION_TTL_SECONDS from its last addition.
   */
  protected abstract writeSent(part: SentPart, usd: number, at: number): Promise<void>;

  /** The wamid acked for a part key, or null. */
  protected abstract readAck(partKey: string): Promise<string | null>;

  /**
   * The raw items (JSON) waiting on a status lane: up to `max` of its turn in flight, then up to
   * `max` of its inbox, each in arrival order.
   */
  protected abstract waitingStatuses(lane: string, max: number): Promise<string[]>;

  /**
   * One atomic step, fenced by the status lane's lease ('lost', nothing written, when it is not
   * `lease`'s). A status for a record that does not exist is refused (undefined) unless it carries
   * our part key (the send's answer may not have been recorded yet: the connection broke after Meta
   * accepted it); then the record is created with what the status knows. The status, its time and
   * error code are written only when `rank` is above the record's (never backwards); the part key
   * is kept either way and the record lives RECORD_TTL_S from now. Returns the record ('' and
   * undefined for what a status-created record does not know).
   */
  protected abstract writeStatus(lease: Lease, status: RecordedStatus): Promise<OutboundRecord | undefined | 'lost'>;
}
