import { type INestApplicationContext } from '@nestjs/common';
import Fastify, { type FastifyInstance } from 'fastify';
import { dashboardEnabled, QueueDashboard } from '../admin/queue-dashboard';
import { AppConfig } from '../config/app-config';
import { MetricsService } from './metrics.service';

/** GET /metrics, the one way it is served: on the app's own Fastify, or on the management server. */
export function serveMetrics(fastify: FastifyInstance, metrics: MetricsService): void {
  fastify.get('/metrics', async (_req, reply) => {
    const text = await metrics.render();
    return reply.type(metrics.registry.contentType).send(text);
  });
}

/**
 * With MANAGEMENT_PORT set, /metrics and /admin/queues (receivers with ADMIN_PASSWORD) move off the
 * public port onto this small Fastify server, which a NetworkPolicy can keep cluster-internal.
 */
export async function startManagementServer(port: number, app: INestApplicationContext): Promise<FastifyInstance> {
  const config = app.get(AppConfig);
  const server = Fastify({
    logger: false,
    // Shutdown must not wait for a dashboard request stuck on a frozen Redis, nor for a scraper's
    // idle keep-alive connection: every connection is closed with the server.
    forceCloseConnections: true,
    requestTimeout: config.env.HTTP_REQUEST_TIMEOUT_MS,
  });
  serveMetrics(server, app.get(MetricsService));
  if (dashboardEnabled(config.role, config)) await server.register(app.get(QueueDashboard).plugin());
  await server.listen({ port, host: '0.0.0.0' });
  return server;
}

export async function stopManagementServer(server: FastifyInstance): Promise<void> {
  await server.close();
}
