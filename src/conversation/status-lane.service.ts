import { Injectable } from '@nestjs/common';
import { type Logger } from 'pino';
import { type IngestItem } from '../dedup/ingest-item';
import { IngestService } from '../dedup/ingest.service';
import { AppLogger } from '../logging/app-logger';
import { MetricsService } from '../metrics/metrics.service';
import { laneKind } from '../queue/lanes';
import { ConversationStore } from './conversation.store';
import { DeadLetters } from './dead-letters';
import { OutboundRecords, type StatusUpdate } from './outbound-records';
import { isPartKey } from './reply-sender';
import { type ReengageRequest } from './reengagement';
import { deferredOrLost, finished, LOST, type RunOutcome } from './turn-outcome';
import { type Lease } from './turn.types';

/** A status for a message we do not know yet is retried this long, then counted as an orphan. */
const ORPHAN_AFTER_MS = 2 * 60 * 1000;
const RETRY_EVERY_MS = 10_000;
/** WhatsApp's "more than 24 hours since the customer last replied". */
const WINDOW_CLOSED_CODE = 131047;

/** Seconds since the epoch, as Meta writes them; longer is no date a status can carry. */
const EPOCH_SECONDS = /^\d{1,10}$/;
/** Meta's pricing `category` and `type`: plain lower-case words ('service', 'free_entry_point'). */
const PRICING_WORD = /^[a-z][a-z0-9_-]{0,39}$/;

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {});
const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const scalar = (v: unknown): string | undefined =>
  typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)) ? String(v) : undefined;

/**
 * The fields of a status this lane uses, each of the type it must have, from what Meta (or
 * anyone holding the webhook secret) sent: the payload is passed on as received, and one field of
 * the wrong type must cost that field, never the lane (an array as the timestamp would reach the
 * Lua script as extra arguments, and every later status of the recipient would wait for ever).
 */
function statusOf(raw: unknown): Omit<StatusUpdate, 'errorCode' | 'partKey'> & {
  code?: string;
  callbackData?: string;
} {
  const s = obj(raw);
  const timestamp = scalar(s.timestamp);
  const pricing = obj(s.pricing);
  const category = typeof pricing.category === 'string' ? pricing.category.trim().toLowerCase() : '';
  const type = typeof pricing.type === 'string' ? pricing.type.trim().toLowerCase() : '';
  const code = scalar(obj(Array.isArray(s.errors) ? s.errors[0] : undefined).code);
  return {
    wamid: text(s.id) ?? '',
    status: text(s.status) ?? '',
    timestamp: timestamp !== undefined && EPOCH_SECONDS.test(timestamp) ? timestamp : undefined,
    code: code !== undefined && /^\d{1,9}$/.test(code) ? code : undefined,
    callbackData: text(s.biz_opaque_callback_data),
    pricing:
      PRICING_WORD.test(category) && category !== 'total' && PRICING_WORD.test(type) ? { category, type } : undefined,
    // A patient known only by business-scoped id ('AE.123…') is priced by the country it names.
    recipient: text(s.recipient_id) ?? text(s.recipient_user_id),
  };
}

/**
 * A status lane's turn: sent/delivered/read/failed move the outbound record forward,
 * `pricing` feeds the billed side of the cost ledger, and the part key in biz_opaque_callback_data
 * settles sends of unknown outcome. A free-form reply that failed with 131047 goes back to its
 * chat as a `reengage` item (docs/window.md). Statuses that arrive before their record
 * exists are retried for a while, then counted as orphans (another system may send on the number).
 */
@Injectable()
export class StatusLaneService {
  private readonly logger: Logger;

  constructor(
    private readonly store: ConversationStore,
    private readonly records: OutboundRecords,
    private readonly ingest: IngestService,
    private readonly deadLetters: DeadLetters,
    private readonly metrics: MetricsService,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('status');
  }

  async run(lease: Lease): Promise<RunOutcome> {
    const snapshot = await this.store.join(lease);
    if (!snapshot) return LOST;
    const unresolved: IngestItem[] = [];
    for (const item of snapshot.items) {
      const applied = await this.apply(lease, item);
      if (applied === 'lost') return LOST;
      if (!applied) {
        if (Date.now() - item.receivedAt < ORPHAN_AFTER_MS) unresolved.push(item);
        else this.metrics.orphanStatuses.inc();
      }
    }
    if (unresolved.length === 0) return finished(await this.store.finish(lease, undefined));
    const at = Date.now() + RETRY_EVERY_MS;
    const kept = unresolved.map((item) => JSON.stringify(item));
    return deferredOrLost(await this.store.defer(lease, at, undefined, kept), at);
  }

  /** True when the status found (or, through its part key, created) its outbound record. */
  private async apply(lease: Lease, item: IngestItem): Promise<boolean | 'lost'> {
    const { code: failedWith, callbackData, ...status } = statusOf(item.raw);
    if (!status.wamid || !status.status) return true;
    const partKey = isPartKey(callbackData) ? callbackData : undefined;
    if (partKey) await this.records.ack(partKey, status.wamid);
    const code = status.status === 'failed' ? (failedWith ?? 'unknown') : undefined;
    const record = await this.records.applyStatus(lease, { ...status, errorCode: code, partKey });
    if (record === 'lost') return 'lost';
    if (!record) return false;
    if (code) this.logger.warn({ code }, 'outbound message failed');
    if (code === String(WINDOW_CLOSED_CODE) && record.mode === 'free_form' && laneKind(record.lane) === 'chat') {
      // A /v1 message is the clinic system's: the bot neither re-engages nor hands the chat over
      // for it; the failure is kept where an operator looks (its immediate 131047 is answered with
      // the caller's template by ApiSendTurn, which a later status can no longer do).
      if (record.origin === 'api') {
        this.metrics.windowClosed.inc({ source: 'status' });
        await this.deadLetters.record('window_closed', record.lane, { api: record.turnId, code, late: true });
      } else {
        await this.reengage(item, status.wamid, record.lane, record.sentAt);
      }
    }
    return true;
  }

  /** Once per failed message (deduplicated by its wamid), on the chat's own lane, in order. */
  private async reengage(item: IngestItem, wamid: string, chat: string, sentAt?: number): Promise<void> {
    this.metrics.windowClosed.inc({ source: 'status' });
    const reengage: IngestItem = {
      key: `r:${wamid}`,
      lane: chat,
      kind: 'reengage',
      receivedAt: Date.now(),
      phoneNumberId: item.phoneNumberId,
      raw: { wamid, sentAt } satisfies ReengageRequest,
    };
    await this.ingest.ingest([reengage], []);
  }
}
