import { type FastifyInstance } from 'fastify';
import { type AppConfig, DEFAULT_BODY_LIMIT } from '../config/app-config';
import { type MetricsService } from '../metrics/metrics.service';
import { type WebhookAuth } from '../webhook/webhook-auth';
import { webhookMetricsHook, webhookPreBodyHook } from '../webhook/webhook-route.hooks';

/** Route config flag (`@RouteConfig({ [RAW_BODY]: true })`): the handler gets the JSON body as raw bytes. */
export const RAW_BODY = 'rawJsonBody';
const isWebhookIngest = (method: string | string[], url: string): boolean =>
  url === '/webhook' && (method === 'POST' || (Array.isArray(method) && method.includes('POST')));

/**
 * Fastify-level wiring that Nest decorators cannot express. Must run after NestFactory.create and
 * before app.init(), when Nest registers its routes:
 * - route-level body limits: WEBHOOK_BODY_LIMIT for POST /webhook, 100 KB everywhere else;
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
    if (isWebhookIngest(route.method, route.url) && webhookAuth) {
      route.bodyLimit = config.env.WEBHOOK_BODY_LIMIT;
      route.config = { ...(route.config as object), [RAW_BODY]: true };
      route.onRequest = [webhookPreBodyHook(webhookAuth, config.env.WEBHOOK_BODY_LIMIT)];
      route.onResponse = [webhookMetricsHook(metrics)];
    } else {
      route.bodyLimit ??= DEFAULT_BODY_LIMIT;
    }
  });

  fastify.removeContentTypeParser('application/json');
  fastify.addContentTypeParser(/^application\/([\w.+-]+\+)?json/i, { parseAs: 'buffer' }, (req, body, done) => {
    const raw = body as Buffer;
    if ((req.routeOptions.config as unknown as Record<string, unknown> | undefined)?.[RAW_BODY]) return done(null, raw);
    if (raw.length === 0) return done(null, undefined);
    try {
      done(null, JSON.parse(raw.toString('utf8')));
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
