import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { apiEnabled, OPENAPI_PATH, openApiDocument } from '../api/api.module';
import { AppModule } from '../app.module';
import { servesHttpApi } from '../app-role';
import { type AppConfig } from '../config/app-config';
import { AppLogger, NestPinoLogger } from '../logging/app-logger';
import { MetricsService } from '../metrics/metrics.service';
import { WebhookAuth } from '../webhook/webhook-auth';
import { installHttpHooks } from './http-hooks';

/**
 * Builds the app for `config.role` on Fastify (chosen by measurement: see README, "Why Fastify").
 * Used by main.ts and by the e2e tests, so tests run exactly the production wiring.
 */
export async function createApp(config: AppConfig): Promise<NestFastifyApplication> {
  const adapter = new FastifyAdapter({
    bodyLimit: Math.max(config.env.WEBHOOK_BODY_LIMIT, 102400),
    // Behind a load balancer idle keep-alive sockets must outlive the balancer's own timeout.
    keepAliveTimeout: 65_000,
    return503OnClosing: false,
  });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRole(config.role, config), adapter, {
    bodyParser: false,
    bufferLogs: true,
    abortOnError: false,
  });
  app.useLogger(new NestPinoLogger(app.get(AppLogger).child('nest')));
  const webhookAuth = servesHttpApi(config.role) ? app.get(WebhookAuth, { strict: false }) : undefined;
  installHttpHooks(adapter.getInstance(), config, app.get(MetricsService), webhookAuth);
  if (apiEnabled(config.role, config)) {
    const document = openApiDocument(app);
    adapter.getInstance().get(OPENAPI_PATH, (_req, reply) => reply.send(document));
  }
  return app;
}
