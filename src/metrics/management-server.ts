import { createServer, type Server } from 'node:http';
import { type MetricsService } from './metrics.service';

/**
 * With MANAGEMENT_PORT set, /metrics moves off the public port onto this small server, which a
 * NetworkPolicy can keep cluster-internal.
 */
export function startManagementServer(port: number, metrics: MetricsService): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    metrics.render().then(
      (text) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '0.0.0.0', () => resolve(server));
  });
}

/** Stops the management server; idle keep-alive connections (a scraper's) are closed with it. */
export function stopManagementServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
