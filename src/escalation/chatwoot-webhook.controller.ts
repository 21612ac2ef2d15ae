import { Controller, Post, Req, Res } from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import { type FastifyReply, type FastifyRequest } from 'fastify';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { IngestService, IngestUnavailableError } from '../dedup/ingest.service';
import { RAW_BODY } from '../http/http-hooks';
import { AppLogger } from '../logging/app-logger';
import { MetricsService } from '../metrics/metrics.service';
import { exceedsNesting, parseUntrustedJson } from '../webhook/webhook-payload';
import { JSON_TYPE } from '../webhook/webhook-route.hooks';
import { ChatwootWebhookAuth } from './chatwoot-webhook.auth';
import { parseChatwootWebhook } from './chatwoot-webhook.parser';

type Outcome = 'accepted' | 'duplicate' | 'ignored' | 'unauthorized' | 'invalid' | 'unavailable';

/**
 * POST /chatwoot/webhook: agents' replies and resolved conversations. Authenticated before the
 * body is looked at; the one relevant item is deduplicated (Chatwoot may deliver twice) and queued
 * on the chat's own lane in the same atomic step as Meta's messages, so the answer comes within the
 * ingest budget and an agent's reply keeps its place among the patient's messages.
 */
@Controller('chatwoot')
export class ChatwootWebhookController {
  private readonly logger: Logger;

  constructor(
    private readonly auth: ChatwootWebhookAuth,
    private readonly ingest: IngestService,
    private readonly metrics: MetricsService,
    private readonly config: AppConfig,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('chatwoot-webhook');
  }

  @Post('webhook')
  @RouteConfig({ [RAW_BODY]: true })
  async receive(@Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const token = (req.query as Record<string, unknown>).token;
    if (!this.auth.tokenOk(token)) return this.answer(reply, 401, 'unauthorized', { error: 'invalid token' });
    if (!JSON_TYPE.test(req.headers['content-type'] ?? '') || !Buffer.isBuffer(req.body)) {
      return this.answer(reply, 415, 'invalid', { error: 'content type must be application/json' });
    }
    const raw = req.body;
    if (!this.auth.signatureOk(req.headers, raw)) {
      return this.answer(reply, 401, 'unauthorized', { error: 'invalid signature' });
    }
    let body: unknown;
    try {
      body = parseUntrustedJson(raw);
    } catch {
      body = undefined;
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body) || exceedsNesting(body)) {
      return this.answer(reply, 400, 'invalid', { error: 'body is not a JSON object' });
    }
    const parsed = parseChatwootWebhook(body as Record<string, unknown>, {
      inboxId: this.config.env.CHATWOOT_INBOX_ID,
      phoneNumberId: this.config.env.WHATSAPP_PHONE_NUMBER_ID,
      receivedAt: Date.now(),
    });
    switch (parsed.kind) {
      case 'invalid':
        this.logger.warn({ reason: parsed.reason }, 'chatwoot webhook refused');
        return this.answer(reply, 400, 'invalid', { error: `invalid ${parsed.reason}` });
      case 'ignored':
        this.logger.debug({ reason: parsed.reason }, 'chatwoot webhook ignored');
        return this.answer(reply, 200, 'ignored', { ignored: parsed.reason });
      case 'event':
        return this.enqueue(reply, parsed.item);
    }
  }

  private async enqueue(reply: FastifyReply, item: Parameters<IngestService['ingest']>[0][number]): Promise<void> {
    try {
      const { enqueued } = await this.ingest.ingest([item], []);
      return this.answer(reply, 200, enqueued > 0 ? 'accepted' : 'duplicate', { ok: true });
    } catch (err) {
      if (!(err instanceof IngestUnavailableError)) throw err;
      this.logger.error({ err }, 'redis did not take the chatwoot webhook; 503');
      void reply.header('Retry-After', '5');
      return this.answer(reply, 503, 'unavailable', { error: 'temporarily unavailable' });
    }
  }

  private answer(reply: FastifyReply, status: number, outcome: Outcome, body: object): void {
    this.metrics.chatwootWebhooks.inc({ outcome });
    void reply.code(status).send(body);
  }
}
