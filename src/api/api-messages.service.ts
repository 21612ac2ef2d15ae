import { createHash, randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { Pricing } from '../costs/pricing';
import { type ApiMessage } from '../conversation/api-message';
import { ConversationStore } from '../conversation/conversation.store';
import { serviceWindow } from '../conversation/service-window';
import { type IngestItem } from '../dedup/ingest-item';
import { IngestService, IngestUnavailableError } from '../dedup/ingest.service';
import { AppLogger } from '../logging/app-logger';
import { LogHasher } from '../logging/log-hasher';
import { MetricsService } from '../metrics/metrics.service';
import { chatLane } from '../queue/lanes';
import { RedisKeys } from '../redis/redis-keys';
import { Clock } from '../time/clock';
import { ApiError } from './api-error';
import { type SendMessageDto } from './api.dto';

/** An idempotency key is honoured this long (docs/http-api.md). */
const IDEMPOTENCY_TTL_S = 24 * 3600;

export interface ApiAnswer {
  status: number;
  body: Record<string, unknown>;
  /** The answer of an earlier request with the same idempotency key. */
  replayed?: boolean;
}

/**
 * POST /v1/messages: chooses free-form or template from the chat's window, prices it, and hands it
 * to the chat's lane — one atomic step with the idempotency record, so concurrent duplicates send
 * once and get the same answer. The receiver never calls the BSP: the worker sends it in turn.
 */
@Injectable()
export class ApiMessagesService {
  private readonly logger: Logger;

  constructor(
    private readonly store: ConversationStore,
    private readonly ingest: IngestService,
    private readonly pricing: Pricing,
    private readonly clock: Clock,
    private readonly keys: RedisKeys,
    private readonly metrics: MetricsService,
    private readonly hasher: LogHasher,
    private readonly config: AppConfig,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('api');
  }

  async send(dto: SendMessageDto, headerKey: string | undefined): Promise<ApiAnswer> {
    if (dto.text === undefined && dto.template === undefined) {
      throw ApiError.invalid('invalid_body', [{ field: 'text', problem: 'give text, template, or both' }]);
    }
    if (headerKey !== undefined && (headerKey.length < 1 || headerKey.length > 255)) {
      throw ApiError.invalid('invalid_body', [{ field: 'Idempotency-Key', problem: 'must be 1 to 255 characters' }]);
    }
    if (headerKey !== undefined && dto.idempotencyKey !== undefined && headerKey !== dto.idempotencyKey) {
      throw ApiError.invalid('invalid_body', [
        { field: 'idempotencyKey', problem: 'differs from the Idempotency-Key header; give one key' },
      ]);
    }
    const to = dto.to.replace(/^\+/, '');
    const lane = chatLane(this.config.phoneNumberId, to);
    const now = this.clock.now();
    const id = randomUUID();
    const { answer, message } = await this.decide(dto, to, lane, id, now);
    const item: IngestItem | undefined = message && {
      key: `api:${id}`,
      lane,
      kind: 'api',
      receivedAt: Date.now(),
      phoneNumberId: this.config.phoneNumberId,
      raw: message,
    };
    const idempotencyKey = dto.idempotencyKey ?? headerKey;
    const onceKey = this.keys.apiIdempotency(idempotencyKey ? sha256(idempotencyKey) : `id.${id}`);
    let result: { first: boolean; answer: string };
    try {
      result = await this.ingest.enqueueOnce({
        onceKey,
        answer: JSON.stringify(answer),
        ttlSeconds: IDEMPOTENCY_TTL_S,
        item,
      });
    } catch (err) {
      if (!(err instanceof IngestUnavailableError)) throw err;
      this.logger.error({ err }, 'redis did not take the API message; 503');
      throw new ApiError(503, {
        error: 'unavailable',
        message: 'storage unavailable; retry with the same idempotency key',
      });
    }
    const given = JSON.parse(result.answer) as ApiAnswer;
    const outcome = result.first ? String(given.body.mode ?? given.body.error) : 'replayed';
    this.metrics.apiRequests.inc({ outcome });
    // Counted here, not in decide: a replayed 409 met no window, it repeats an answer.
    if (result.first && given.status === 409) this.metrics.windowClosed.inc({ source: 'api' });
    this.logger.info({ chat: this.hasher.hash(lane), id: given.body.id, outcome }, 'api message');
    return { ...given, replayed: !result.first };
  }

  private async decide(
    dto: SendMessageDto,
    to: string,
    lane: string,
    id: string,
    now: number,
  ): Promise<{ answer: ApiAnswer; message?: ApiMessage }> {
    const { lastInboundTs, waiting } = await this.inbound(lane);
    const window = serviceWindow(Math.max(lastInboundTs, waiting), now);
    const template = dto.template && {
      name: dto.template.name,
      language: dto.template.language,
      category: dto.template.category,
      bodyParameters: dto.template.parameters,
      headerParameters: dto.template.headerParameters,
      buttons: dto.template.buttons?.map((b) => ({ subType: b.subType, index: b.index, parameter: b.parameter })),
    };
    if (dto.text !== undefined && window.open) {
      const estimatedCostUsd = this.pricing.estimate({ to, category: 'service', at: now, inWindow: true });
      return {
        answer: { status: 202, body: { id, mode: 'free_form', estimatedCostUsd } },
        message: { id, to, mode: 'free_form', text: dto.text, template },
      };
    }
    if (template) {
      const estimatedCostUsd = this.pricing.estimate({
        to,
        category: template.category,
        at: now,
        inWindow: window.open,
      });
      return {
        answer: { status: 202, body: { id, mode: 'template', estimatedCostUsd } },
        message: { id, to, mode: 'template', template },
      };
    }
    const closedAt = window.closesAt ? new Date(window.closesAt).toISOString() : null;
    return {
      answer: {
        status: 409,
        body: {
          error: 'window_closed',
          message: closedAt
            ? `the 24-hour window closed at ${closedAt}; send a template`
            : 'the patient has not written to this number; send a template',
          closedAt,
        },
      },
    };
  }

  /** The last inbound time committed, and that of messages still waiting for their turn. */
  private async inbound(lane: string): Promise<{ lastInboundTs: number; waiting: number }> {
    try {
      const [{ state }, waiting] = await Promise.all([this.store.readChat(lane), this.store.waitingInboundTs(lane)]);
      return { lastInboundTs: state.lastInboundTs ?? 0, waiting };
    } catch (err) {
      this.logger.error({ err }, 'redis did not answer; 503');
      throw new ApiError(503, { error: 'unavailable', message: 'storage unavailable; retry' });
    }
  }
}

function sha256(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}
