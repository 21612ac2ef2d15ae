import { type FastifyReply, type FastifyRequest, type onRequestHookHandler, type onResponseHookHandler } from 'fastify';
import { type MetricsService, type WebhookOutcome } from '../metrics/metrics.service';
import { type WebhookAuth } from './webhook-auth';

const OUTCOME = Symbol('webhookOutcome');
type WithOutcome = FastifyRequest & { [OUTCOME]?: WebhookOutcome };

export const setWebhookOutcome = (req: FastifyRequest, outcome: WebhookOutcome): void => {
  (req as WithOutcome)[OUTCOME] = outcome;
};

export const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

function refuse(req: FastifyRequest, reply: FastifyReply, code: number, outcome: WebhookOutcome, error: string): void {
  setWebhookOutcome(req, outcome);
  // The body was never read: close the connection rather than drain up to WEBHOOK_BODY_LIMIT bytes
  // we will not use.
  void reply.code(code).header('Connection', 'close').send({ error });
}

/**
 * Runs before Fastify reads the body of POST /webhook: a wrong content type (415), a declared size
 * over WEBHOOK_BODY_LIMIT (413) or a missing/malformed credential header (401) is refused at once.
 */
export function webhookPreBodyHook(auth: WebhookAuth, bodyLimit: number): onRequestHookHandler {
  return (req, reply, done) => {
    if (!JSON_TYPE.test(req.headers['content-type'] ?? '')) {
      refuse(req, reply, 415, 'invalid', 'content type must be application/json');
      return;
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > bodyLimit) {
      refuse(req, reply, 413, 'invalid', 'payload too large');
      return;
    }
    if (!auth.headerOk(req.headers)) {
      refuse(req, reply, 401, 'unauthorized', 'missing or malformed signature');
      return;
    }
    done();
  };
}

/** One place records every webhook answer, including Fastify's own 413/400 from the body reader. */
export function webhookMetricsHook(metrics: MetricsService): onResponseHookHandler {
  return (req, reply, done) => {
    const outcome = (req as WithOutcome)[OUTCOME] ?? outcomeOfStatus(reply.statusCode);
    metrics.webhookRequests.inc({ outcome });
    metrics.webhookAck.observe(reply.elapsedTime / 1000);
    done();
  };
}

function outcomeOfStatus(status: number): WebhookOutcome {
  if (status === 401 || status === 403) return 'unauthorized';
  if (status === 503) return 'unavailable';
  if (status >= 400) return 'invalid';
  return 'accepted';
}
