import { Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { AppLogger } from '../logging/app-logger';
import { RedisConnections } from './redis-connections.service';
import { type RedisClient, waitReady } from './redis-client';

export class UnsafeRedisError extends Error {}

type PolicyReading = { policy: string } | { unknown: string };

/** Reads maxmemory-policy; CONFIG may be renamed or disabled on managed Redis, which is tolerated. */
export async function readEvictionPolicy(client: RedisClient): Promise<PolicyReading> {
  try {
    const reply = (await client.call('CONFIG', 'GET', 'maxmemory-policy')) as string[];
    if (Array.isArray(reply) && reply.length >= 2) return { policy: String(reply[1]) };
    return { unknown: 'CONFIG GET returned nothing' };
  } catch (err) {
    return { unknown: (err as Error).message };
  }
}

/**
 * Any eviction policy can drop dedup or queue keys, i.e. lose acknowledged messages.
 * Production refuses to start on such a Redis; elsewhere the app warns loudly. When Redis is not
 * reachable at boot, the check runs as soon as it is.
 */
@Injectable()
export class RedisPolicyCheck implements OnApplicationBootstrap {
  private readonly logger: Logger;

  constructor(
    private readonly connections: RedisConnections,
    private readonly config: AppConfig,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('redis');
  }

  async onApplicationBootstrap(): Promise<void> {
    const client = this.connections.health;
    const ready = await waitReady(client, 3000);
    if (ready) return this.check(client);
    this.logger.warn('redis not reachable at start-up; eviction policy will be checked when it is');
    client.once('ready', () => {
      this.check(client).catch((err: Error) => {
        this.logger.fatal({ err }, 'refusing to run on this redis');
        process.exit(1);
      });
    });
  }

  private async check(client: RedisClient): Promise<void> {
    const reading = await readEvictionPolicy(client);
    if ('unknown' in reading) {
      this.logger.warn({ reason: reading.unknown }, 'could not read maxmemory-policy; make sure it is noeviction');
      return;
    }
    if (reading.policy === 'noeviction') return;
    const message = `redis maxmemory-policy is ${reading.policy}: evictions can drop dedup and queue keys and lose acknowledged messages; set it to noeviction`;
    if (this.config.isProduction) throw new UnsafeRedisError(message);
    this.logger.warn({ policy: reading.policy }, message);
  }
}
