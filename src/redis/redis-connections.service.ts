import { Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { REDIS_QUIT_LIMIT_MS, settlesWithin } from '../health/shutdown-limits';
import { AppLogger } from '../logging/app-logger';
import { OutageLog } from '../logging/outage-log';
import { createRedisClient, type ConnectionKind, type RedisClient } from './redis-client';

/**
 * Owns the process's Redis connections, created on first use (a worker never opens an ingest
 * connection) and closed last on shutdown.
 */
@Injectable()
export class RedisConnections implements OnApplicationShutdown {
  private readonly clients = new Map<ConnectionKind, RedisClient>();
  private readonly logger: Logger;
  /**
   * One account of outages for the whole process: every connection reaches the same Redis, so
   * they fail and recover together, and an outage is one "lost" line, not one per connection and
   * reconnect attempt. Others that see connection errors (BullMQ) report them here too.
   */
  readonly outage: OutageLog;

  constructor(
    private readonly config: AppConfig,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('redis');
    this.outage = new OutageLog(this.logger, 'redis', () =>
      [...this.clients.values()].every((client) => client.status === 'ready'),
    );
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
      // Without an 'error' listener ioredis prints every failed reconnect attempt with its stack.
      client.on('error', (err: Error) => this.outage.failed(kind, err));
      client.on('ready', () => this.outage.check());
      this.clients.set(kind, client);
    }
    return client;
  }

  async onApplicationShutdown(): Promise<void> {
    this.outage.close();
    const dropped: string[] = [];
    await Promise.all(
      [...this.clients].map(async ([kind, client]) => {
        // QUIT waits for Redis' answer: for a reconnect that may never come when Redis is down,
        // for ever when it is frozen (the socket stays open). Bounded, then the socket is dropped.
        if (client.status === 'ready') {
          const quit = client.quit().then(
            () => true,
            () => false,
          );
          if ((await settlesWithin(quit, REDIS_QUIT_LIMIT_MS)) && (await quit)) return;
        }
        dropped.push(`${kind} (${client.status})`);
        client.disconnect();
      }),
    );
    this.clients.clear();
    if (dropped.length > 0) {
      this.logger.warn({ connections: dropped }, 'shutdown: redis connections dropped without a clean QUIT');
    }
  }
}
