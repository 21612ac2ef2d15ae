import { Injectable } from '@nestjs/common';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { AppLogger } from '../logging/app-logger';
import { DedupStore } from './dedup.store';
import { type IngestItem, IngestOutcome, type IngestResult } from './ingest-item';
import { WakeUpService, type WakeTarget } from './wake-up.service';

export class IngestUnavailableError extends Error {}

export interface IngestSummary {
  enqueued: number;
  duplicates: number;
}

/** Rejects after `ms`: the receiver must answer 503 within INGEST_TIMEOUT_MS whatever Redis does. */
async function within<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new IngestUnavailableError(`redis did not answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * "Seen + enqueued" for a batch of items: the atomic store step decides the answer (200 or 503);
 * the wake-up that follows is best effort within what is left of the time budget.
 */
@Injectable()
export class IngestService {
  private readonly logger: Logger;

  constructor(
    private readonly store: DedupStore,
    private readonly wakeUps: WakeUpService,
    private readonly config: AppConfig,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('ingest');
  }

  async ingest(items: readonly IngestItem[], unhandled: readonly string[]): Promise<IngestSummary> {
    const started = Date.now();
    const budget = this.config.env.INGEST_TIMEOUT_MS;
    let results: IngestResult[];
    try {
      results = await within(budget, this.store.ingest(items, unhandled));
    } catch (err) {
      throw err instanceof IngestUnavailableError ? err : new IngestUnavailableError((err as Error).message);
    }
    const targets: WakeTarget[] = [];
    results.forEach(({ outcome, episode }, i) => {
      if (outcome !== IngestOutcome.Duplicate) targets.push({ lane: items[i].lane, tag: episode });
    });
    if (targets.length > 0) await this.wakeBestEffort(targets, budget - (Date.now() - started));
    const enqueued = results.filter((r) => r.outcome === IngestOutcome.Enqueued).length;
    return { enqueued, duplicates: results.length - enqueued };
  }

  /**
   * One idempotent request (docs/http-api.md): the first answer under `onceKey` is kept and its
   * item enqueued atomically; a repeat gets the first answer and enqueues nothing. Same time
   * budget and best-effort wake-up as webhooks.
   */
  async enqueueOnce(request: {
    onceKey: string;
    answer: string;
    ttlSeconds: number;
    item?: IngestItem;
  }): Promise<{ first: boolean; answer: string }> {
    const started = Date.now();
    const budget = this.config.env.INGEST_TIMEOUT_MS;
    let result: { first: boolean; answer: string; episode?: string };
    try {
      result = await within(budget, this.store.enqueueOnce(request));
    } catch (err) {
      throw err instanceof IngestUnavailableError ? err : new IngestUnavailableError((err as Error).message);
    }
    if (request.item && result.episode) {
      await this.wakeBestEffort([{ lane: request.item.lane, tag: result.episode }], budget - (Date.now() - started));
    }
    return result;
  }

  private async wakeBestEffort(targets: WakeTarget[], remainingMs: number): Promise<void> {
    try {
      await within(Math.max(remainingMs, 50), this.wakeUps.wake(targets));
    } catch (err) {
      // The items are durable in their inboxes and in the pending set: the sweeper re-arms them.
      this.logger.warn({ err, lanes: targets.length }, 'wake-up not issued; sweeper will re-arm');
    }
  }
}
