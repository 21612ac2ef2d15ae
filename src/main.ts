import 'reflect-metadata';
import { existsSync } from 'node:fs';
import { type Server } from 'node:http';
import { type NestFastifyApplication } from '@nestjs/platform-fastify';
import { AppRole, readRoleFlag } from './app-role';
import { AppConfig } from './config/app-config';
import { ConfigError, validateEnv } from './config/validate-env';
import { HealthState } from './health/health-state';
import { createApp } from './http/create-app';
import { AppLogger } from './logging/app-logger';
import { startManagementServer } from './metrics/management-server';
import { MetricsService } from './metrics/metrics.service';

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
 * flight, Redis last) and the process exits 0.
 */
function handleShutdown(app: NestFastifyApplication, config: AppConfig, management?: Server): void {
  const logger = app.get(AppLogger).child('lifecycle');
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    app.get(HealthState).beginShutdown();
    const drainMs = config.role === AppRole.Worker ? 0 : config.env.SHUTDOWN_DRAIN_MS;
    logger.info({ signal, drainMs }, 'shutting down');
    setTimeout(() => {
      management?.close();
      app.close().then(
        () => {
          logger.info('stopped');
          process.exit(0);
        },
        (err: Error) => {
          logger.error({ err: err.message }, 'shutdown failed');
          process.exit(1);
        },
      );
    }, drainMs);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function bootstrap(): Promise<void> {
  const config = loadConfig();
  const app = await createApp(config);
  const logger = app.get(AppLogger).child('lifecycle');
  await app.listen({ port: config.env.PORT, host: '0.0.0.0' });
  const managementPort = config.env.MANAGEMENT_PORT;
  const management =
    managementPort !== undefined ? await startManagementServer(managementPort, app.get(MetricsService)) : undefined;
  handleShutdown(app, config, management);
  logger.info(
    {
      role: config.role,
      port: config.env.PORT,
      managementPort,
      bsp: config.env.BSP_PROVIDER,
      llm: config.env.LLM_PROVIDER,
    },
    'tawasul started',
  );
}

bootstrap().catch((err: Error) => {
  console.error(`tawasul failed to start: ${err.message}`);
  process.exit(1);
});
