import { Module } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { AppLogger } from '../logging/app-logger';
import { RedisConnections } from '../redis/redis-connections.service';
import { RedisKeys } from '../redis/redis-keys';
import { BspClient } from './bsp.client';
import { BspMetrics } from './bsp.metrics';
import { Dialog360BspClient } from './dialog360-bsp.client';
import { MetaBspClient } from './meta-bsp.client';
import { SandboxBspClient } from './sandbox-bsp.client';

export function createBspClient(
  config: AppConfig,
  metrics: BspMetrics,
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
 * The WhatsApp send side: `BspClient` bound to the adapter BSP_PROVIDER names, and the one
 * `BspMetrics` (bsp.metrics.ts says why one). Needs the global config, logging, metrics and Redis
 * modules. Adapters close their keep-alive sockets on application shutdown.
 */
@Module({
  providers: [
    BspMetrics,
    {
      provide: BspClient,
      inject: [AppConfig, BspMetrics, AppLogger, RedisConnections, RedisKeys],
      useFactory: createBspClient,
    },
  ],
  exports: [BspClient, BspMetrics],
})
export class BspModule {}
