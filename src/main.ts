import 'reflect-metadata';
import { existsSync } from 'node:fs';
import { type NestFastifyApplication } from '@nestjs/platform-fastify';
import { type FastifyInstance } from 'fastify';
import { AppRole, readRoleFlag } from './app-role';
import { AppConfig } from './config/app-config';
import { ConfigError, validateEnv } from './config/validate-env';
import { HealthState } from './health/health-state';
import { SHUTDOWN_CLOSE_LIMIT_MS } from './health/shutdown-limits';
import { createApp } from './http/create-app';
import { AppLogger, routeConsoleToLog } from './logging/app-logger';
import { startManagementServer, stopManagementServer } from './metrics/management-server';
import { isConnectionError } from './redis/redis-client';
import { RedisConnections } from './redis/redis-connections.service';

/** Reads the environment (plus .env when present), or exits 1 with one line per bad variable. */
function loadConfig(): AppConfig {
  if (existsSync('.env')) process.loadEnvFile('.env');
  const role = readRoleFlag(process.env, process.argv.slice(2));
  try {
    return new AppConfig(validateEnv({ ...process.env, APP_ROLE: role }));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const line of err.lines) console.error(`config error: ${line}`);
    process.exit(1);
  }
}

/**
 * SIGTERM: readiness turns 503 at once; the receiver keeps serving through a short drain so the
 * load balancer stops sending; then Nest closes (HTTP server, BullMQ workers finish their job in
 * flight, Redis last) and the process exits 0 — within SHUTDOWN_CLOSE_LIMIT_MS after the drain
 * whatever Redis does, so that an outage never makes a rollout wait out the whole grace period.
 */
function handleShutdown(app: NestFastifyApplication, config: AppConfig, management?: FastifyInstance): void {
  const logger = app.get(AppLogger).child('lifecycle');
  let stopping = false;
  const close = async (): Promise<void> => {
    const started = Date.now();
    // Each wait inside is bounded on its own; this is for whatever is not (a hook that hangs).
    setTimeout(() => {
      logger.warn({ limitMs: SHUTDOWN_CLOSE_LIMIT_MS }, 'shutdown: closing did not finish within the limit; exiting');
      process.exit(0);
    }, SHUTDOWN_CLOSE_LIMIT_MS);
    try {
      await Promise.all([management && stopManagementServer(management), app.close()]);
    } catch (err) {
      // A Redis that went away is no reason for a failed exit: what it cut short is logged already.
      const failed = !isConnectionError(err);
      logger[failed ? 'error' : 'warn']({ err }, 'shutdown: closing failed');
      process.exit(failed ? 1 : 0);
    }
    logger.info({ closeMs: Date.now() - started }, 'stopped');
    process.exit(0);
  };
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    app.get(HealthState).beginShutdown();
    const drainMs = config.role === AppRole.Worker ? 0 : config.env.SHUTDOWN_DRAIN_MS;
    logger.info({ signal, drainMs, closeLimitMs: SHUTDOWN_CLOSE_LIMIT_MS }, 'shutting down');
    setTimeout(() => void close(), drainMs);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/**
 * Only JSON log lines reach stdout and stderr: what libraries print (BullMQ falls back to
 * console.error for an 'error' event nobody listens to) and rejections nobody handled go through
 * pino as well. Connection errors among the latter are the outage the Redis connections report.
 */
function logProcessFaults(app: NestFastifyApplication): void {
  const appLogger = app.get(AppLogger);
  const logger = appLogger.child('process');
  const outage = app.get(RedisConnections).outage;
  routeConsoleToLog(appLogger.child('console'));
  process.on('unhandledRejection', (reason) => {
    if (isConnectionError(reason)) outage.seen('unhandled-rejection', reason as Error);
    else logger.error({ err: reason }, 'unhandled promise rejection');
  });
  // Node prints its own warnings (MaxListenersExceededWarning…) on stderr from a listener of its own.
  process.removeAllListeners('warning');
  process.on('warning', (warning) => logger.warn({ warning: warning.name, err: warning.message }, 'node warning'));
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });
}

async function bootstrap(): Promise<void> {
  const config = loadConfig();
  const app = await createApp(config);
  logProcessFaults(app);
  const logger = app.get(AppLogger).child('lifecycle');
  await app.listen({ port: config.env.PORT, host: config.env.HOST });
  const managementPort = config.env.MANAGEMENT_PORT;
  const management = managementPort !== undefined ? await startManagementServer(managementPort, app) : undefined;
  handleShutdown(app, config, management);
  // Also what `npm start` builds its banner from: where to reach the app and where its data lives.
  logger.info(
    {
      role: config.role,
      host: config.env.HOST,
      port: config.env.PORT,
      managementPort,
      bsp: config.env.BSP_PROVIDER,
      llm: config.env.LLM_PROVIDER,
      receptionistFile: config.env.LLM_PROVIDER === 'offline' ? config.env.RECEPTIONIST_FILE : undefined,
      // Credentials stay out of logs; a cluster is named by its nodes.
      redis: config.env.REDIS_CLUSTER_NODES ?? config.env.REDIS_URL.replace(/\/\/[^/@]*@/, '//'),
      redisPrefix: config.env.REDIS_PREFIX,
    },
    'tawasul started',
  );
}

bootstrap().catch((err: Error) => {
  // Setup errors carry one problem per line (every bad entry of a file at once).
  for (const line of err.message.split('\n')) console.error(`tawasul failed to start: ${line}`);
  process.exit(1);
});
