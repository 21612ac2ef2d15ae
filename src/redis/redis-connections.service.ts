import { Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { AppLogger } from '../logging/app-logger';
import { createRedisClient, type ConnectionKind, type RedisClient } from './redis-connections';

/**
 * Owns the process's Redis connections, created on first use (a worker never opens an ingest
 * connection) and closed last on shutdown.
 */
@Injectable()
export class RedisConnections implements OnApplicationShutdown {
  private readonly clients = new Map<ConnectionKind, RedisClient>();
  private readonly logger: Logger;

  constructor(
    private readonly config: AppConfig,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('redis');
  }

  get ingest(): RedisClient {
    return this.get('ingest');
  }

  get health(): RedisClient {
    return this.get('health');
  }

  get producer(): RedisClient {
    return this.get('producer');
  }

  get worker(): RedisClient {
    return this.get('worker');
  }

  private get(kind: ConnectionKind): RedisClient {
    let client = this.clients.get(kind);
    if (!client) {
      client = createRedisClient(kind, this.config);
      // Without a listener ioredis prints unhandled 'error' events; outages are reported once per
      // state change by the health check, so connection errors are debug noise here.
      client.on('error', (err: Error) => this.logger.debug({ kind, err: err.message }, 'redis connection error'));
      this.clients.set(kind, client);
    }
    return client;
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all(
      [...this.clients.values()].map(async (client) => {
        // quit() on a connection that is down would wait for a reconnect; just drop it then.
        if (client.status !== 'ready') return client.disconnect();
        try {
          await client.quit();
        } catch {
          client.disconnect();
        }
      }),
    );
    this.clients.clear();
  }
}
