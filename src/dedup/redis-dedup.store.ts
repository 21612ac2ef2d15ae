import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { ENQUEUE_ONCE_SCRIPT, INGEST_SCRIPT } from '../queue/ingest.script';
import { RedisConnections } from '../redis/redis-connections.service';
import { RedisKeys } from '../redis/redis-keys';
import { type RedisClient, waitReady } from '../redis/redis-client';
import { DedupStore } from './dedup.store';
import { type IngestItem, type IngestResult } from './ingest-item';

const UNHANDLED_CAP = 1000;

type IngestCommand = (numKeys: number, ...keysAndArgs: (string | number)[]) => Promise<[number, string][]>;
type EnqueueOnceCommand = (...keysAndArgs: (string | number)[]) => Promise<[number, string, string]>;

/** DedupStore on Redis: each call one Lua script (EVALSHA, EVAL on NOSCRIPT) on the ingest connection. */
@Injectable()
export class RedisDedupStore extends DedupStore {
  private readonly client: RedisClient & { tawasulIngest?: IngestCommand; tawasulEnqueueOnce?: EnqueueOnceCommand };

  constructor(
    connections: RedisConnections,
    private readonly keys: RedisKeys,
    private readonly config: AppConfig,
  ) {
    super();
    this.client = connections.ingest;
    if (!this.client.tawasulIngest) this.client.defineCommand('tawasulIngest', { lua: INGEST_SCRIPT });
    if (!this.client.tawasulEnqueueOnce) {
      this.client.defineCommand('tawasulEnqueueOnce', { numberOfKeys: 3, lua: ENQUEUE_ONCE_SCRIPT });
    }
  }

  async ingest(items: readonly IngestItem[], unhandled: readonly string[]): Promise<IngestResult[]> {
    if (items.length === 0 && unhandled.length === 0) return [];
    const keys: string[] = [this.keys.pending, this.keys.unhandled];
    const args: (string | number)[] = [Date.now(), this.config.env.DEDUP_TTL_SECONDS, UNHANDLED_CAP, unhandled.length];
    args.push(...unhandled);
    for (const item of items) {
      keys.push(this.keys.dedup(item.key), this.keys.inbox(item.lane));
      args.push(item.lane, JSON.stringify(item));
    }
    await this.ready();
    const run = this.client.tawasulIngest as IngestCommand;
    const result = await run.call(this.client, keys.length, ...keys, ...args);
    return result.map(([outcome, episode]) => ({ outcome, episode: String(episode) }));
  }

  async enqueueOnce(request: {
    onceKey: string;
    answer: string;
    ttlSeconds: number;
    item?: IngestItem;
  }): Promise<{ first: boolean; answer: string; episode?: string }> {
    const { onceKey, answer, ttlSeconds, item } = request;
    const lane = item?.lane ?? '';
    await this.ready();
    const [first, stored, episode] = await this.client.tawasulEnqueueOnce!(
      onceKey,
      this.keys.inbox(lane || 'none'),
      this.keys.pending,
      answer,
      ttlSeconds,
      item ? JSON.stringify(item) : '',
      lane,
      Date.now(),
    );
    return { first: first === 1, answer: stored, episode: episode ? String(episode) : undefined };
  }

  /**
   * Right after start-up (or a reconnect) the connection may still be handshaking; without an
   * offline queue a command would fail at once. Wait for it within the ingest budget instead.
   */
  private async ready(): Promise<void> {
    if (['connecting', 'connect', 'reconnecting', 'wait'].includes(this.client.status)) {
      await waitReady(this.client, this.config.env.INGEST_TIMEOUT_MS);
    }
  }
}
