import Module from 'node:module';

/**
 * Measurement aid: makes `require('fastify')` resolve to another fastify installed outside the
 * checkout, to measure a version before pinning it (what an npm `overrides` entry would give
 * @nestjs/platform-fastify). Nothing in node_modules changes. Example, fastify 5.12.8:
 *
 *   mkdir -p /tmp/f512 && (cd /tmp/f512 && npm init -y >/dev/null && npm install fastify@5.12.8)
 *   BENCH_FASTIFY_FROM=/tmp/f512 \
 *   BENCH_NODE_FLAGS="-r ts-node/register/transpile-only -r ./bench/fastify-override.preload.ts" \
 *     npm run bench:ingest
 */
const from = process.env.BENCH_FASTIFY_FROM;
if (from) {
  const target = require.resolve('fastify', { paths: [from] });
  type Resolve = (request: string, ...rest: unknown[]) => string;
  const loader = Module as unknown as { _resolveFilename: Resolve };
  const resolve = loader._resolveFilename;
  loader._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]): string {
    return request === 'fastify' ? target : resolve.call(this, request, ...rest);
  };
}
