import { Controller, Get, Post, Req, Res } from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import { type FastifyReply, type FastifyRequest } from 'fastify';
import { WEBHOOK_INGEST } from '../http/http-hooks';
import { WebhookAuth } from './webhook-auth';
import { WebhookService } from './webhook.service';
import { setWebhookOutcome } from './webhook-route.hooks';

@Controller('webhook')
export class WebhookController {
  constructor(
    private readonly webhooks: WebhookService,
    private readonly auth: WebhookAuth,
  ) {}

  /** Meta's subscription handshake: the challenge, verbatim, as text/plain. */
  @Get()
  verify(@Req() req: FastifyRequest, @Res() reply: FastifyReply): void {
    const query = req.query as Record<string, unknown>;
    const challenge = query['hub.challenge'];
    if (
      query['hub.mode'] !== 'subscribe' ||
      typeof challenge !== 'string' ||
      !this.auth.verifyTokenOk(query['hub.verify_token'])
    ) {
      void reply.code(403).type('text/plain').send('forbidden');
      return;
    }
    void reply.code(200).type('text/plain').send(challenge);
  }

  /**
   * Ingest. Content type, size and the credential header were checked before the body was read
   * (webhook-route.hooks); the body arrives here as raw bytes.
   */
  @Post()
  @RouteConfig({ [WEBHOOK_INGEST]: true })
  async ingest(@Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    if (!this.auth.bodyOk(req.headers, raw)) {
      setWebhookOutcome(req, 'unauthorized');
      void reply.code(401).send({ error: 'invalid signature' });
      return;
    }
    const answer = await this.webhooks.handle(raw);
    setWebhookOutcome(req, answer.outcome);
    switch (answer.status) {
      case 200:
        void reply.code(200).type('text/plain').send('OK');
        return;
      case 400:
        void reply.code(400).send({ error: 'body is not a JSON object' });
        return;
      case 503:
        void reply.code(503).header('Retry-After', '5').send({ error: 'temporarily unavailable' });
        return;
    }
  }
}
