import { Injectable } from '@nestjs/common';
import { type Logger } from 'pino';
import { type IngestItem } from '../dedup/ingest-item';
import { IngestService } from '../dedup/ingest.service';
import { AppLogger } from '../logging/app-logger';
import { MetricsService } from '../metrics/metrics.service';
import { laneKind } from '../queue/queue.constants';
import { ConversationStore } from './conversation.store';
import { OutboundRecords } from './outbound-records';
import { isPartKey } from './reply-sender';
import { type ReengageRequest } from './reengagement';
import { deferredOrLost, finished, LOST, type RunOutcome } from './turn-outcome';
import { type Lease } from './turn.types';

/** A status for a message we do not know yet is retried this long, then counted as an orphan. */
const ORPHAN_AFTER_MS = 2 * 60 * 1000;
const RETRY_EVERY_MS = 10_000;
/** WhatsApp's "more than 24 hours since the customer last replied". */
const WINDOW_CLOSED_CODE = 131047;

interface StatusRaw {
  id?: string;
  status?: string;
  timestamp?: string;
  recipient_id?: string;
  biz_opaque_callback_data?: string;
  errors?: { code?: number }[];
  pricing?: { type?: string; category?: string };
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
    const status = item.raw as StatusRaw;
    if (!status.id || !status.status) return true;
    const partKey = isPartKey(status.biz_opaque_callback_data) ? status.biz_opaque_callback_data : undefined;
    if (partKey) await this.records.ack(partKey, status.id);
    const code = status.status === 'failed' ? String(status.errors?.[0]?.code ?? 'unknown') : undefined;
    const record = await this.records.applyStatus(lease, {
      wamid: status.id,
      status: status.status,
      timestamp: status.timestamp,
      errorCode: code,
      partKey,
      pricing: status.pricing,
      recipient: status.recipient_id,
    });
    if (record === 'lost') return 'lost';
    if (!record) return false;
    if (code) this.logger.warn({ code }, 'outbound message failed');
    if (code === String(WINDOW_CLOSED_CODE) && record.mode === 'free_form' && laneKind(record.lane) === 'chat') {
      await this.reengage(item, status.id, record.lane, record.sentAt);
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
