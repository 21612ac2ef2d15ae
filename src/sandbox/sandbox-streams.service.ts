import { type ServerResponse } from 'node:http';
import { type BeforeApplicationShutdown, Injectable } from '@nestjs/common';
import { type FastifyReply } from 'fastify';
import { Cluster, type RedisOptions } from 'ioredis';
import { type Logger } from 'pino';
import { sandboxEventsChannel, type SandboxOutboxEntry } from '../bsp/sandbox-bsp.client';
import { Pricing } from '../costs/pricing';
import { AppLogger } from '../logging/app-logger';
import { RedisConnections } from '../redis/redis-connections.service';
import { type RedisClient } from '../redis/redis-client';
import { RedisKeys } from '../redis/redis-keys';
import { Clock } from '../time/clock';
import { pageEventOf, type PriceOf } from './sandbox-events';

/** Proxies and the socket's own timeout see a live stream; a dead client is found within this. */
export const HEARTBEAT_MS = 15_000;
/** The sandbox has no authentication: a bound on open streams keeps a runaway tab from piling up sockets. */
export const MAX_STREAMS = 64;
/** How long a new stream waits for the subscription before it is closed (the browser retries). */
const SUBSCRIBE_WAIT_MS = 5_000;
/** A client that reads nothing is dropped before its backlog grows without bound. */
const MAX_BACKLOG_BYTES = 1 << 20;
/** The browser's reconnection delay after a dropped stream. */
const RETRY_MS = 2_000;

interface Stream {
  waId: string;
  res: ServerResponse;
  heartbeat: NodeJS.Timeout;
}

/**
 * GET /sandbox/api/events: a server-sent event stream per page, carrying the bot's messages and
 * mark-reads for one number as the sandbox BSP records them. The worker that sends may be another
 * process, so every send is published on a Redis channel; one subscriber connection per process,
 * opened with the first stream, fans the events out to the streams of their number.
 */
@Injectable()
export class SandboxStreams implements BeforeApplicationShutdown {
  private readonly streams = new Set<Stream>();
  private readonly channel: string;
  private readonly logger: Logger;
  private readonly priceOf: PriceOf;
  private subscriber?: RedisClient;
  private subscribing?: Promise<void>;
  private closing = false;

  constructor(
    private readonly connections: RedisConnections,
    keys: RedisKeys,
    pricing: Pricing,
    clock: Clock,
    appLogger: AppLogger,
  ) {
    this.channel = sandboxEventsChannel(keys);
    this.logger = appLogger.child('sandbox');
    this.priceOf = (to, category, inWindow) => pricing.estimate({ to, category, at: clock.now(), inWindow });
  }

  /** Answers the request with the stream of `waId`'s events; `ready` once nothing can be missed. */
  async serve(reply: FastifyReply, waId: string): Promise<void> {
    if (this.closing || this.streams.size >= MAX_STREAMS) {
      void reply
        .code(503)
        .header('retry-after', '5')
        .send({ error: 'unavailable', message: 'too many open sandbox streams' });
      return;
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-content-type-options': 'nosniff',
      // Proxies that buffer responses would hold the events back.
      'x-accel-buffering': 'no',
    });
    // The server's socket timeout is meant for requests that stall; this one is long by design
    // and the heartbeat finds a dead client.
    res.socket?.setTimeout(0);
    res.socket?.setNoDelay(true);
    const stream: Stream = {
      waId,
      res,
      heartbeat: setInterval(() => this.write(stream, ': ping\n\n'), HEARTBEAT_MS),
    };
    this.streams.add(stream);
    res.on('close', () => this.drop(stream));
    this.write(stream, `retry: ${RETRY_MS}\n\n`);
    if (!(await this.subscribed())) {
      this.end(stream);
      return;
    }
    this.send(stream, 'ready', { waId });
  }

  beforeApplicationShutdown(): void {
    // Open streams would keep the HTTP server from closing; the browser reconnects elsewhere.
    this.closing = true;
    for (const stream of [...this.streams]) this.end(stream);
    this.subscriber?.disconnect();
    this.subscriber = undefined;
  }

  /** True once the channel is subscribed; false when Redis did not answer in time. */
  private async subscribed(): Promise<boolean> {
    this.subscribing ??= this.subscribe().catch((err: Error) => {
      this.subscribing = undefined;
      throw err;
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), SUBSCRIBE_WAIT_MS);
    });
    try {
      return await Promise.race([this.subscribing.then(() => true), timeout]);
    } catch (err) {
      this.logger.warn({ err }, 'sandbox event subscription failed');
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  private async subscribe(): Promise<void> {
    const subscriber = this.newSubscriber();
    subscriber.on('error', (err: Error) => this.logger.debug({ err }, 'sandbox subscriber error'));
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.channel) this.dispatch(message);
    });
    this.subscriber = subscriber;
    await subscriber.subscribe(this.channel);
  }

  /**
   * Its own connection: one in subscriber mode can run nothing else. Modelled on the ingest
   * connection (same Redis, credentials, TLS), but it waits out an outage and resubscribes after.
   */
  private newSubscriber(): RedisClient {
    const base = this.connections.ingest;
    const options: Partial<RedisOptions> = {
      connectionName: 'tawasul-sandbox-events',
      enableOfflineQueue: true,
      commandTimeout: undefined,
      maxRetriesPerRequest: null,
      autoResendUnfulfilledCommands: true,
      autoResubscribe: true,
    };
    if (base instanceof Cluster) {
      return base.duplicate(undefined, {
        enableOfflineQueue: true,
        redisOptions: { ...base.options.redisOptions, ...options },
      });
    }
    return base.duplicate(options);
  }

  private dispatch(message: string): void {
    let entry: SandboxOutboxEntry;
    try {
      entry = JSON.parse(message) as SandboxOutboxEntry;
    } catch {
      return;
    }
    for (const stream of this.streams) {
      const event = pageEventOf(entry, stream.waId, this.priceOf);
      if (event) this.send(stream, event.type, event);
    }
  }

  /** JSON never holds a raw line break, so one `data:` line carries the whole event. */
  private send(stream: Stream, event: string, data: unknown): void {
    this.write(stream, `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private write(stream: Stream, chunk: string): void {
    if (stream.res.writableEnded || stream.res.destroyed) return;
    if (stream.res.writableLength > MAX_BACKLOG_BYTES) {
      stream.res.destroy();
      return;
    }
    stream.res.write(chunk);
  }

  private end(stream: Stream): void {
    this.drop(stream);
    if (!stream.res.writableEnded) stream.res.end();
  }

  private drop(stream: Stream): void {
    clearInterval(stream.heartbeat);
    this.streams.delete(stream);
  }
}
