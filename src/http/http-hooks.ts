import { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { toApiError } from '../api/api-error.filter';
import { type AppConfig, DEFAULT_BODY_LIMIT } from '../config/app-config';
import { type MetricsService } from '../metrics/metrics.service';
import { type WebhookAuth } from '../webhook/webhook-auth';
import { parseUntrustedJson } from '../webhook/webhook-payload';
import { JSON_TYPE, webhookMetricsHook, webhookPreBodyHook } from '../webhook/webhook-route.hooks';

/** Body limit of the /v1 routes. */
export const API_BODY_LIMIT = 16384;

/** Route config flag (`@RouteConfig({ [RAW_BODY]: true })`): the handler gets the JSON body as raw bytes. */
export const RAW_BODY = 'rawJsonBody';
/**
 * Route config flag of Meta's ingest route (`@RouteConfig({ [WEBHOOK_INGEST]: true })`): its raw
 * body, limit and pre-body checks follow the handler, so moving or renaming the route cannot
 * silently drop the bytes the signature is computed over.
 */
export const WEBHOOK_INGEST = 'webhookIngest';
const isWebhookIngest = (config: unknown): boolean =>
  (config as Record<string, unknown> | undefined)?.[WEBHOOK_INGEST] === true;

/**
 * Fastify-level wiring that Nest decorators cannot express. Must run after NestFactory.create and
 * before app.init(), when Nest registers its routes:
 * - route-level body limits: WEBHOOK_BODY_LIMIT for POST /webhook, 16 KB for /v1, 100 KB elsewhere;
 * - POST /webhook keeps its body as raw bytes (the HMAC needs them) and gets its pre-body checks;
 * - every other JSON body is parsed, a parse error being a 400;
 * - request metrics labelled by route template, never by the raw URL.
 */
export function installHttpHooks(
  fastify: FastifyInstance,
  config: AppConfig,
  metrics: MetricsService,
  webhookAuth: WebhookAuth | undefined,
): void {
  fastify.addHook('onRoute', (route) => {
    if (isWebhookIngest(route.config) && webhookAuth) {
      route.bodyLimit = config.env.WEBHOOK_BODY_LIMIT;
      route.config = { ...(route.config as object), [RAW_BODY]: true };
      route.onRequest = [webhookPreBodyHook(webhookAuth, config.env.WEBHOOK_BODY_LIMIT)];
      route.onResponse = [webhookMetricsHook(metrics)];
      route.errorHandler = receiverErrorHandler;
    } else if (route.url.startsWith('/v1/')) {
      // A message is at most 4096 characters of text plus a template: 16 KB is plenty.
      route.bodyLimit = API_BODY_LIMIT;
      route.onRequest = [apiJsonOnly];
      // Errors raised before a controller runs (body not JSON, too large) keep the /v1 error shape.
      route.errorHandler = (err, _req, reply) => {
        const { status, body } = toApiError(err);
        void reply.status(status).send(body);
      };
    } else {
      route.bodyLimit ??= DEFAULT_BODY_LIMIT;
      if (route.url === CHATWOOT_WEBHOOK_PATH) route.errorHandler = receiverErrorHandler;
    }
  });

  fastify.removeContentTypeParser('application/json');
  fastify.addContentTypeParser(/^application\/([\w.+-]+\+)?json/i, { parseAs: 'buffer' }, (req, body, done) => {
    const raw = body as Buffer;
    if ((req.routeOptions.config as unknown as Record<string, unknown> | undefined)?.[RAW_BODY]) return done(null, raw);
    if (raw.length === 0) return done(null, undefined);
    try {
      // Refuses `__proto__` keys too, as Fastify's own parser would (this one replaces it).
      done(null, parseUntrustedJson(raw));
    } catch {
      done(Object.assign(new Error('body is not valid JSON'), { statusCode: 400 }), undefined);
    }
  });

  fastify.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.httpRequests.inc({ route, method: req.method, status: String(reply.statusCode) });
    done();
  });
}

const CHATWOOT_WEBHOOK_PATH = '/chatwoot/webhook';

/**
 * The webhook receivers answer every refusal as `{ error }`, also the ones Fastify raises before
 * the handler runs: a content type it has no parser for (415), a chunked body over the limit (413).
 */
function receiverErrorHandler(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
  const error =
    status === 415
      ? 'content type must be application/json'
      : status === 413
        ? 'payload too large'
        : status === 500
          ? 'internal error'
          : 'invalid request';
  void reply.status(status).send({ error });
}

/** /v1 takes JSON bodies only; a request without a body (resume) needs no content type. */
function apiJsonOnly(req: FastifyRequest, reply: FastifyReply, done: () => void): void {
  const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  if (hasBody && !JSON_TYPE.test(req.headers['content-type'] ?? '')) {
    void reply.status(415).send({ error: 'unsupported_media_type', message: 'content type must be application/json' });
    return;
  }
  done();
}
