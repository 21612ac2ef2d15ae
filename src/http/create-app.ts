import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import { apiEnabled, OPENAPI_PATH, openApiDocument } from '../api/api.module';
import { AppModule } from '../app.module';
import { servesHttpApi } from '../app-role';
import { type AppConfig, DEFAULT_BODY_LIMIT } from '../config/app-config';
import { AppLogger, NestPinoLogger } from '../logging/app-logger';
import { MetricsService } from '../metrics/metrics.service';
import { WebhookAuth } from '../webhook/webhook-auth';
import { API_ROUTE, type ApiAccess, installApiFallback, installHttpHooks } from './http-hooks';

/**
 * Builds the app for `config.role` on Fastify (chosen by measurement: see README, "Why Fastify").
 * Used by main.ts and by the e2e tests, so tests run exactly the production wiring.
 */
export async function createApp(config: AppConfig): Promise<NestFastifyApplication> {
  const requestTimeout = config.env.HTTP_REQUEST_TIMEOUT_MS;
  const adapter = new FastifyAdapter({
    bodyLimit: Math.max(config.env.WEBHOOK_BODY_LIMIT, DEFAULT_BODY_LIMIT),
    // Behind a load balancer idle keep-alive sockets must outlive the balancer's own timeout.
    // Node gives idle keep-alive sockets this timeout instead of the two below.
    keepAliveTimeout: 65_000,
    // Fastify turns Node's own limit off: without one, a client trickling a byte a second into a
    // 3 MB body holds its socket and buffer for ever. Meta posts a whole webhook in well under a second.
    requestTimeout,
    // A socket silent for longer than a whole request plus the longest wait on Redis is dead.
    connectionTimeout: requestTimeout + config.env.INGEST_TIMEOUT_MS,
    // Node looks for late requests only every 30 s by default; a tenth of the limit keeps the cut near it.
    http: { requestTimeout, connectionsCheckingInterval: Math.min(30_000, Math.floor(requestTimeout / 10)) },
    return503OnClosing: false,
    // A URL the router cannot read (bad percent-encoding, a path parameter over its length limit)
    // reaches no route and no route's error handler: /v1 still answers in its one error shape.
    frameworkErrors: (err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
      if (apiEnabled(config.role, config) && req.url.startsWith('/v1/')) {
        void reply.code(400).send({ error: 'invalid_path', message: 'the path is not a valid URL' });
        return;
      }
      const statusCode = err.statusCode ?? 400;
      void reply.code(statusCode).send({ error: 'Bad Request', code: err.code, message: err.message, statusCode });
    },
  });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRole(config.role, config), adapter, {
    bodyParser: false,
    bufferLogs: true,
    // Nest would print a start-up failure (a bad ACTIONS_FILE, say) with its stack on the console
    // logger; main.ts prints it as plain lines instead, like a bad variable.
    autoFlushLogs: false,
    abortOnError: false,
  });
  app.useLogger(new NestPinoLogger(app.get(AppLogger).child('nest')));
  app.flushLogs();
  const webhookAuth = servesHttpApi(config.role) ? app.get(WebhookAuth, { strict: false }) : undefined;
  installHttpHooks(adapter.getInstance(), config, app.get(MetricsService), webhookAuth);
  if (apiEnabled(config.role, config)) {
    const document = openApiDocument(app);
    const open = { [API_ROUTE]: 'open' satisfies ApiAccess };
    adapter.getInstance().get(OPENAPI_PATH, { config: open }, (_req, reply) => reply.send(document));
    installApiFallback(adapter.getInstance());
  }
  return app;
}
