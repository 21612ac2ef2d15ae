import { Injectable } from '@nestjs/common';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { IngestService, IngestUnavailableError } from '../dedup/ingest.service';
import { HealthState } from '../health/health-state';
import { AppLogger } from '../logging/app-logger';
import { RedisConnections } from '../redis/redis-connections.service';
import { MetricsService, type WebhookOutcome } from '../metrics/metrics.service';
import { exceedsNesting, parseUntrustedJson, parseWebhook, type ParsedWebhook } from './webhook-payload';

export interface WebhookAnswer {
  status: 200 | 400 | 503;
  outcome: WebhookOutcome;
}

/** From a verified raw body to items durably in Redis (or a clear reason why not). */
@Injectable()
export class WebhookService {
  private readonly logger: Logger;

  constructor(
    private readonly ingestService: IngestService,
    private readonly metrics: MetricsService,
    private readonly config: AppConfig,
    appLogger: AppLogger,
    connections: RedisConnections,
    health: HealthState,
  ) {
    this.logger = appLogger.child('webhook');
    // A receiver whose ingest connection is not up (still connecting, reconnecting) would answer
    // 503: keep it out of the load balancer until it is.
    health.registerReadiness('ingest-connection', () => connections.ingest.status === 'ready');
  }

  async handle(raw: Buffer): Promise<WebhookAnswer> {
    let body: unknown;
    try {
      body = parseUntrustedJson(raw);
    } catch {
      // Invalid JSON, or a `__proto__` / `constructor.prototype` key: neither is a payload of Meta's.
      body = undefined;
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      this.logger.warn({ bytes: raw.length }, 'signed webhook body is not a JSON object');
      return { status: 400, outcome: 'invalid' };
    }
    // Signed but too deep to serialise: kept as the bytes we got (a 5xx would make Meta retry it for a week).
    const parsed: ParsedWebhook = exceedsNesting(body)
      ? { items: [], unhandled: [{ kind: 'nesting', raw: raw.toString('utf8') }], ignored: 0 }
      : parseWebhook(body as Record<string, unknown>, this.config.env.WHATSAPP_PHONE_NUMBER_ID, Date.now());
    for (const { kind } of parsed.unhandled) this.metrics.unhandledItems.inc({ kind });
    if (parsed.unhandled.length > 0) {
      this.logger.warn({ kinds: parsed.unhandled.map((u) => u.kind) }, 'kept signed items we cannot handle');
    }
    if (parsed.items.length === 0 && parsed.unhandled.length === 0) return { status: 200, outcome: 'ignored' };
    try {
      const summary = await this.ingestService.ingest(
        parsed.items,
        parsed.unhandled.map((u) => capRaw(u.kind, u.raw)),
      );
      if (summary.enqueued > 0) this.metrics.webhookItems.inc({ result: 'enqueued' }, summary.enqueued);
      if (summary.duplicates > 0) this.metrics.webhookItems.inc({ result: 'duplicate' }, summary.duplicates);
      if (parsed.items.length === 0) return { status: 200, outcome: 'ignored' };
      return { status: 200, outcome: summary.enqueued > 0 ? 'accepted' : 'duplicate' };
    } catch (err) {
      if (!(err instanceof IngestUnavailableError)) throw err;
      this.logger.error({ err, items: parsed.items.length }, 'redis did not take the webhook; 503');
      return { status: 503, outcome: 'unavailable' };
    }
  }
}

/** Kept raw items are for an operator's eyes: a 3 MB body must not make a 3 MB list entry each time. */
const KEEP_RAW_BYTES = 16384;
/**
 * One entry of the unhandled list: when, what kind, and the item as Meta sent it (its start only,
 * when it is huge). `at` lets the sweeper drop entries past their retention (they hold patients'
 * texts and numbers: docs/operations.md).
 */
function capRaw(kind: string, raw: string): string {
  const at = Date.now();
  if (raw.length <= KEEP_RAW_BYTES) return JSON.stringify({ at, kind, raw });
  return JSON.stringify({ at, kind, truncated: true, length: raw.length, head: raw.slice(0, KEEP_RAW_BYTES) });
}
