import { Injectable } from '@nestjs/common';
import { type Logger } from 'pino';
import { type IngestItem } from '../dedup/ingest-item';
import { AppLogger } from '../logging/app-logger';
import { MetricsService } from '../metrics/metrics.service';
import { RedisConnections } from '../redis/redis-connections.service';
import { RedisKeys } from '../redis/redis-keys';
import { ConversationStore } from './conversation.store';
import { isPartKey } from './reply-sender';
import { deferredOrLost, finished, LOST, type RunOutcome } from './turn-outcome';
import { type Lease } from './turn.types';

/** A status for a message we do not know yet is retried this long, then counted as an orphan. */
const ORPHAN_AFTER_MS = 2 * 60 * 1000;
const RETRY_EVERY_MS = 10_000;
const RECORD_TTL_S = 35 * 86400;

interface StatusRaw {
  id?: string;
  status?: string;
  timestamp?: string;
  biz_opaque_callback_data?: string;
  errors?: { code?: number }[];
}

/**
 * A status lane's turn (SPEC §4.11): sent/delivered/read/failed update the outbound record; the
 * part key in biz_opaque_callback_data settles sends of unknown outcome; statuses that arrive
 * before their record exists are retried for a while, then counted as orphans (another system may
 * send on the same number). Billed costs from `pricing` arrive with the cost-ledger issue.
 */
@Injectable()
export class StatusService {
  private readonly logger: Logger;

  constructor(
    private readonly store: ConversationStore,
    private readonly connections: RedisConnections,
    private readonly keys: RedisKeys,
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
      if (!(await this.apply(item))) {
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
  private async apply(item: IngestItem): Promise<boolean> {
    const status = item.raw as StatusRaw;
    if (!status.id || !status.status) return true;
    const redis = this.connections.worker;
    const record = this.keys.outbound(status.id);
    const ours = isPartKey(status.biz_opaque_callback_data);
    if (ours) await redis.set(this.keys.partAck(status.biz_opaque_callback_data!), status.id, 'EX', RECORD_TTL_S, 'NX');
    if (!ours && (await redis.exists(record)) === 0) return false;
    const fields: Record<string, string> = {
      status: status.status,
      statusAt: status.timestamp ?? String(Math.floor(Date.now() / 1000)),
    };
    if (ours) fields.part = status.biz_opaque_callback_data!;
    if (status.status === 'failed') fields.errorCode = String(status.errors?.[0]?.code ?? 'unknown');
    await redis.multi().hset(record, fields).expire(record, RECORD_TTL_S).exec();
    if (status.status === 'failed') this.logger.warn({ code: fields.errorCode }, 'outbound message failed');
    return true;
  }
}
