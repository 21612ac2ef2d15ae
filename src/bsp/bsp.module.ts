import { Module } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { AppLogger } from '../logging/app-logger';
import { MetricsService } from '../metrics/metrics.service';
import { RedisConnections } from '../redis/redis-connections.service';
import { RedisKeys } from '../redis/redis-keys';
import { BspClient } from './bsp.client';
import { BspMetrics } from './bsp.metrics';
import { Dialog360BspClient } from './dialog360-bsp.client';
import { MetaBspClient } from './meta-bsp.client';
import { SandboxBspClient } from './sandbox-bsp.client';

/** Builds the adapter BSP_PROVIDER names. */
export function createBspClient(
  config: AppConfig,
  metrics: MetricsService,
  appLogger: AppLogger,
  connections: RedisConnections,
  keys: RedisKeys,
): BspClient {
  const provider = config.env.BSP_PROVIDER;
  switch (provider) {
    case 'meta':
      return new MetaBspClient(config, metrics, appLogger);
    case '360dialog':
      return new Dialog360BspClient(config, metrics, appLogger);
    case 'sandbox':
      // Resolved here, not injected: only the sandbox opens the producer connection for the BSP.
      return new SandboxBspClient(connections.producer, keys, appLogger);
  }
}

/**
 * The WhatsApp send side: `BspClient` bound to the adapter chosen by BSP_PROVIDER, and the BSP
 * metrics. Needs the global config, logging, metrics and Redis modules. Adapters close their
 * keep-alive sockets on application shutdown.
 */
@Module({
  providers: [
    { provide: BspMetrics, inject: [MetricsService], useFactory: (m: MetricsService) => BspMetrics.for(m) },
    {
      provide: BspClient,
      inject: [AppConfig, MetricsService, AppLogger, RedisConnections, RedisKeys],
      useFactory: createBspClient,
    },
  ],
  exports: [BspClient, BspMetrics],
})
export class BspModule {}
