import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { type AppConfig } from '../config/app-config';

export type RedisClient = Redis | Cluster;

/** Credentials and TLS from REDIS_URL, reused for cluster nodes (REDIS_CLUSTER_NODES). */
function urlOptions(url: string): RedisOptions {
  const u = new URL(url);
  const options: RedisOptions = {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
  };
  if (u.username) options.username = decodeURIComponent(u.username);
  if (u.password) options.password = decodeURIComponent(u.password);
  const db = u.pathname.replace('/', '');
  if (db) options.db = Number(db);
  if (u.protocol === 'rediss:') options.tls = {};
  return options;
}

/** Reconnect quickly: readiness must turn green again soon after Redis returns. */
const retryStrategy = (times: number): number => Math.min(50 * 2 ** Math.min(times, 5), 1000);

/**
 * The kinds of connection (docs/operations.md §1, Connections), each configured for its job:
 * - `ingest` and `health`: fail fast. No offline queue, a command timeout, and no resend of
 *   commands whose reply was lost (a resent ingest script would run twice).
 * - `producer` for BullMQ adds: no offline queue, so an outage is a fast error, not a pile-up.
 * - `worker` for BullMQ consumers: `maxRetriesPerRequest: null`, as BullMQ requires.
 * Never `keyPrefix`: keys are built with the hash-tagged prefix (RedisKeys) and passed in KEYS[].
 */
export type ConnectionKind = 'ingest' | 'health' | 'producer' | 'worker';

export function kindOptions(kind: ConnectionKind, config: AppConfig): RedisOptions {
  const name = `tawasul-${kind}`;
  switch (kind) {
    case 'ingest':
      return {
        connectionName: name,
        enableOfflineQueue: false,
        commandTimeout: config.env.INGEST_TIMEOUT_MS,
        connectTimeout: Math.max(500, config.env.INGEST_TIMEOUT_MS),
        autoResendUnfulfilledCommands: false,
        maxRetriesPerRequest: 0,
        retryStrategy,
      };
    case 'health':
      return {
        connectionName: name,
        enableOfflineQueue: false,
        commandTimeout: 1000,
        connectTimeout: 1000,
        autoResendUnfulfilledCommands: false,
        maxRetriesPerRequest: 0,
        retryStrategy,
      };
    case 'producer':
      return { connectionName: name, enableOfflineQueue: false, connectTimeout: 2000, retryStrategy };
    case 'worker':
      return { connectionName: name, maxRetriesPerRequest: null, retryStrategy };
  }
}

export function createRedisClient(kind: ConnectionKind, config: AppConfig): RedisClient {
  const base = urlOptions(config.env.REDIS_URL);
  const options = { ...base, ...kindOptions(kind, config), lazyConnect: false };
  const nodes = config.clusterNodes;
  if (nodes.length === 0) return new Redis(options);
  // The node connections keep ioredis' own offline queue and retry settings: they open lazily on
  // their first command, so without that queue the first command sent to each node fails, and a
  // lost node is found again through a slots refresh rather than by redialling it.
  const { host: _h, port: _p, db: _db, enableOfflineQueue = true, retryStrategy: _r, ...redisOptions } = options;
  const clusterOptions: ClusterOptions = {
    redisOptions,
    enableOfflineQueue,
    // The ready check sends CLUSTER INFO to a random node; without the cluster's offline queue a
    // node still connecting refuses it, and the client reconnects and rolls again — seconds with
    // one seed node, once over 30 s. Readiness is ours to judge anyway: /health/ready pings.
    enableReadyCheck: enableOfflineQueue,
    clusterRetryStrategy: retryStrategy,
    slotsRefreshTimeout: 2000,
    ...(base.tls ? { dnsLookup: (address, callback) => callback(null, address) } : {}),
  };
  return new Cluster(nodes, clusterOptions);
}

/** Resolves true once the client is ready, false after `timeoutMs` (never rejects). */
export function waitReady(client: RedisClient, timeoutMs: number): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      resolve(false);
    }, timeoutMs);
    const onReady = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    client.once('ready', onReady);
  });
}

/** Errors that say "Redis is not reachable right now" rather than "this command is wrong". */
const CONNECTION_ERROR =
  /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|Connection is closed|Command timed out|Stream isn't writeable|Cluster isn't ready|max retries per request|Failed to refresh slots cache|None of startup nodes is available/i;

export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code ?? '';
  return CONNECTION_ERROR.test(`${code} ${err.message} ${err.name}`);
}
