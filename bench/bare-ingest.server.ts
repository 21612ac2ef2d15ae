import 'reflect-metadata';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { BareIngestWork, type BenchWork } from './bare-ingest.work';

/**
 * The honest baseline of `npm run bench:ingest`: node:http + ioredis doing the receiver's Redis
 * work (bare-ingest.work.ts) and nothing else. Started as its own process by the benchmarks:
 *
 *   PORT=… REDIS_PREFIX=… BENCH_APP_SECRET=… BENCH_PHONE_NUMBER_ID=… \
 *     node -r ts-node/register/transpile-only bench/bare-ingest.server.ts
 *
 * Answers GET /health (readiness for the harness) and POST /webhook; SIGTERM closes it.
 */
const env = process.env;
const work = new BareIngestWork({
  redisUrl: env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  prefix: env.REDIS_PREFIX ?? 'bench_bare',
  appSecret: env.BENCH_APP_SECRET ?? '',
  phoneNumberId: env.BENCH_PHONE_NUMBER_ID ?? '',
  work: (env.BENCH_WORK as BenchWork | undefined) ?? 'full',
});

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

function answer(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  if (req.method === 'GET' && req.url === '/health') return answer(res, 200, 'ok');
  if (req.method !== 'POST' || req.url !== '/webhook') return answer(res, 404, 'not found');
  if (!JSON_TYPE.test(req.headers['content-type'] ?? '')) return answer(res, 415, 'unsupported media type');
  const signature = req.headers['x-hub-signature-256'];
  if (typeof signature !== 'string' || !work.headerOk(signature)) return answer(res, 401, 'unauthorized');
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const raw = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    if (!work.signatureOk(signature, raw)) return answer(res, 401, 'unauthorized');
    work.ingest(raw).then(
      (status) => answer(res, status, status === 200 ? 'OK' : 'error'),
      () => answer(res, 503, 'error'),
    );
  });
}

const server = createServer(handle);
// As the receiver: keep-alive sockets outlive a load balancer's idle timeout.
server.keepAliveTimeout = 65_000;
server.listen(Number(env.PORT ?? 3100), '127.0.0.1');

process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  void work.close().finally(() => process.exit(0));
});
