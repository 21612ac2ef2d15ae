import {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type HTTPMethods,
  type onRequestHookHandler,
} from 'fastify';
import { apiKeyRefusal, apiKeys } from '../api/api-auth';
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
 * Route config flag of every /v1 route (`@RouteConfig({ [API_ROUTE]: 'key' })`): its body limit,
 * error shape and, for 'key', the API key check before the body is read follow the handler. 'open'
 * is for the OpenAPI document alone. A /v1 route without the flag stops the app at start-up: it
 * would answer without a key.
 */
export const API_ROUTE = 'apiRoute';
export type ApiAccess = 'key' | 'open';
const apiAccessOf = (config: unknown): ApiAccess | undefined => {
  const access = (config as Record<string, unknown> | undefined)?.[API_ROUTE];
  return access === 'key' || access === 'open' ? access : undefined;
};
const API_ROOT = '/v1';
const isApiPath = (url: string): boolean => url === API_ROOT || url.startsWith(`${API_ROOT}/`);

/**
 * Fastify-level wiring that Nest decorators cannot express. Must run after NestFactory.create and
 * before app.init(), when Nest registers its routes:
 * - route-level body limits: WEBHOOK_BODY_LIMIT for POST /webhook, 16 KB for /v1, 100 KB elsewhere;
 * - POST /webhook keeps its body as raw bytes (the HMAC needs them) and gets its pre-body checks;
 * - /v1 routes check the API key before the body is read, and answer every error in one shape;
 * - every other JSON body is parsed, a parse error being a 400;
 * - request metrics labelled by route template, never by the raw URL.
 */
export function installHttpHooks(
  fastify: FastifyInstance,
  config: AppConfig,
  metrics: MetricsService,
  webhookAuth: WebhookAuth | undefined,
): void {
  const keys = apiKeys(config.env.API_KEYS);
  fastify.addHook('onRoute', (route) => {
    if (isWebhookIngest(route.config) && webhookAuth) {
      route.bodyLimit = config.env.WEBHOOK_BODY_LIMIT;
      route.config = { ...(route.config as object), [RAW_BODY]: true };
      route.onRequest = [webhookPreBodyHook(webhookAuth, config.env.WEBHOOK_BODY_LIMIT)];
      route.onResponse = [webhookMetricsHook(metrics)];
      route.errorHandler = receiverErrorHandler;
    } else if (apiAccessOf(route.config)) {
      // A message is at most 4096 characters of text plus a template: 16 KB is plenty.
      route.bodyLimit = API_BODY_LIMIT;
      // onRequest runs before Fastify reads the body: a caller without a key learns nothing from
      // how its body is judged, and costs us no body read.
      route.onRequest = apiAccessOf(route.config) === 'key' ? [apiKeyHook(keys), apiJsonOnly] : [apiJsonOnly];
      // Errors raised before a controller runs (body not JSON, too large) keep the /v1 error shape.
      route.errorHandler = (err, _req, reply) => {
        const { status, body } = toApiError(err);
        void reply.status(status).send(body);
      };
    } else if (isApiPath(route.url)) {
      throw new Error(`${String(route.method)} ${route.url}: a /v1 route needs the ${API_ROUTE} route config flag`);
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

/** `Authorization: Bearer <API key>` (docs/http-api.md), checked before the body is read. */
function apiKeyHook(keys: readonly string[]): onRequestHookHandler {
  return (req, reply, done) => {
    const refusal = apiKeyRefusal(req.headers.authorization, keys);
    if (!refusal) {
      done();
      return;
    }
    void reply.status(401).header('www-authenticate', 'Bearer');
    // The body was never read: close the connection rather than drain one we will not use.
    if (hasBody(req)) void reply.header('connection', 'close');
    void reply.send(refusal);
  };
}

const hasBody = (req: FastifyRequest): boolean =>
  Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;

/** /v1 takes JSON bodies only; a request without a body (resume) needs no content type. */
function apiJsonOnly(req: FastifyRequest, reply: FastifyReply, done: () => void): void {
  if (hasBody(req) && !JSON_TYPE.test(req.headers['content-type'] ?? '')) {
    void reply.status(415).send({ error: 'unsupported_media_type', message: 'content type must be application/json' });
    return;
  }
  done();
}

/**
 * Registers the answer, in the /v1 error shape, to every path and method under /v1 that no route
 * serves (Nest's own 404 body otherwise): 405 with `Allow` when other methods serve the path, else
 * 404. Keyed like the routes, so a caller without a key cannot map them. Only where /v1 is served.
 */
export function installApiFallback(fastify: FastifyInstance): void {
  const config = { [API_ROUTE]: 'key' satisfies ApiAccess };
  fastify.all(API_ROOT, { config }, apiNoRoute);
  fastify.all(`${API_ROOT}/*`, { config }, apiNoRoute);
}

function apiNoRoute(req: FastifyRequest, reply: FastifyReply): void {
  const url = req.url.split('?', 1)[0];
  // No route serves /v1 itself; its fallback has no `*` to tell it from one.
  const allow =
    url === API_ROOT ? [] : req.server.supportedMethods.filter((method) => servedBy(req, method, url)).sort();
  if (allow.length === 0) {
    void reply.status(404).send({ error: 'not_found', message: 'no /v1 route serves this path' });
    return;
  }
  void reply
    .status(405)
    .header('allow', allow.join(', '))
    .send({ error: 'method_not_allowed', message: `${req.method} is not served here; allowed: ${allow.join(', ')}` });
}

/** Whether a route other than the fallback (the one whose `*` matched) serves `method` on `url`. */
function servedBy(req: FastifyRequest, method: HTTPMethods, url: string): boolean {
  const route = req.server.findRoute({ method, url });
  return route !== null && !('*' in route.params);
}
