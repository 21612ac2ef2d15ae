import { createHmac, timingSafeEqual } from 'node:crypto';
import { Queue } from 'bullmq';
import { AppConfig } from '../src/config/app-config';
import { validateEnv } from '../src/config/validate-env';
import { INGEST_SCRIPT } from '../src/queue/ingest.script';
import { TURNS_QUEUE, TurnJob, WAKE_JOB_OPTIONS, type WakeJobData } from '../src/queue/queue.constants';
import { chatLane } from '../src/queue/lanes';
import { createRedisClient, type RedisClient } from '../src/redis/redis-client';
import { RedisKeys } from '../src/redis/redis-keys';

/**
 * "The same Redis work as our design, without Nest": the baseline the ingest benchmark and the
 * adapter probe compare against. Shared by the bare node:http server and the Nest adapter probe so
 * that, between them, only the HTTP layer differs.
 *
 * - `full`: signature, JSON.parse, the same item JSON, the same Lua script with the same key layout
 *   (RedisKeys), then the same BullMQ wake-up add.
 * - `wake-only`: signature, JSON.parse and the wake-up add, no Lua (the shape of the earlier probe).
 */
export type BenchWork = 'full' | 'wake-only';

export interface BareIngestOptions {
  redisUrl: string;
  prefix: string;
  appSecret: string;
  phoneNumberId: string;
  work: BenchWork;
}

type IngestCommand = (numKeys: number, ...keysAndArgs: (string | number)[]) => Promise<[number, string][]>;
type Json = Record<string, any>;

const SIGNATURE = /^sha256=[0-9a-fA-F]{64}$/;
const UNHANDLED_CAP = 1000;

export class BareIngestWork {
  readonly keys: RedisKeys;
  private readonly ingestClient: RedisClient & { benchIngest?: IngestCommand };
  private readonly producer: RedisClient;
  private readonly queue: Queue<WakeJobData>;
  private readonly ttlSeconds: number;

  constructor(private readonly options: BareIngestOptions) {
    // The receiver's own connection options (timeouts, no offline queue), so that client-side
    // settings are not part of the difference being measured.
    const config = new AppConfig(
      validateEnv({
        APP_ROLE: 'receiver',
        REDIS_URL: options.redisUrl,
        REDIS_PREFIX: options.prefix,
        BSP_PROVIDER: 'meta',
        WHATSAPP_VERIFY_TOKEN: 'bench',
        WHATSAPP_APP_SECRET: options.appSecret,
        WHATSAPP_PHONE_NUMBER_ID: options.phoneNumberId,
      }),
    );
    this.keys = new RedisKeys(config.redisKeyRoot);
    this.ttlSeconds = config.env.DEDUP_TTL_SECONDS;
    this.ingestClient = createRedisClient('ingest', config);
    this.ingestClient.defineCommand('benchIngest', { lua: INGEST_SCRIPT });
    this.producer = createRedisClient('producer', config);
    this.queue = new Queue<WakeJobData>(TURNS_QUEUE, { connection: this.producer, prefix: config.redisKeyRoot });
  }

  /** Header check that needs no body: refuse before reading it, as the receiver does. */
  headerOk(signature: string | undefined): boolean {
    return typeof signature === 'string' && SIGNATURE.test(signature);
  }

  /** HMAC-SHA256 over the exact bytes, compared in constant time (lengths checked first). */
  signatureOk(signature: string | undefined, raw: Buffer): boolean {
    if (!this.headerOk(signature)) return false;
    const given = Buffer.from(signature!.slice('sha256='.length), 'hex');
    const expected = createHmac('sha256', this.options.appSecret).update(raw).digest();
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  /** Returns the HTTP status to answer: 200, 400 (not a JSON object) or 503 (Redis failed). */
  async ingest(raw: Buffer): Promise<200 | 400 | 503> {
    let body: Json;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      return 400;
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return 400;
    const items = this.items(body, Date.now());
    if (items.length === 0) return 200;
    // As the receiver: the script decides 200 or 503; then one wake-up per new (or still pending)
    // item, id `<lane>.<episode>`, best effort.
    const wakes = new Map<string, string>(); // job id -> lane
    if (this.options.work === 'full') {
      let results: [number, string][];
      try {
        results = await this.runScript(items);
      } catch {
        return 503;
      }
      results.forEach(([outcome, episode], i) => {
        if (outcome !== 0) wakes.set(`${items[i].lane}.${episode}`, items[i].lane);
      });
    } else {
      for (const item of items) wakes.set(item.lane, item.lane);
    }
    const adds = [...wakes].map(([jobId, lane]) =>
      this.queue.add(TurnJob.Wake, { lane }, { ...WAKE_JOB_OPTIONS, jobId, delay: 0 }),
    );
    await Promise.allSettled(adds);
    return 200;
  }

  async close(): Promise<void> {
    await this.queue.close();
    await Promise.allSettled([this.ingestClient.quit(), this.producer.quit()]);
  }

  /** The same item JSON as parseWebhook for text messages (field order included), nothing more. */
  private items(body: Json, receivedAt: number): { dedupKey: string; lane: string; json: string }[] {
    const out: { dedupKey: string; lane: string; json: string }[] = [];
    if (body.object !== 'whatsapp_business_account' || !Array.isArray(body.entry)) return out;
    for (const entry of body.entry as Json[]) {
      for (const change of (entry?.changes ?? []) as Json[]) {
        const value = change?.value as Json | undefined;
        const phoneNumberId = value?.metadata?.phone_number_id as string | undefined;
        if (change?.field !== 'messages' || phoneNumberId !== this.options.phoneNumberId) continue;
        const contacts = (value?.contacts ?? []) as Json[];
        for (const message of (value?.messages ?? []) as Json[]) {
          const sender = message.from as string;
          const profile = contacts.find((c) => c.wa_id === sender) ?? contacts[0];
          const item = {
            key: `m:${message.id}`,
            lane: chatLane(phoneNumberId, sender),
            kind: 'message',
            receivedAt,
            phoneNumberId,
            raw: message,
            contact: profile
              ? { name: profile.profile?.name, waId: profile.wa_id, userId: profile.user_id }
              : undefined,
          };
          out.push({ dedupKey: this.keys.dedup(item.key), lane: item.lane, json: JSON.stringify(item) });
        }
      }
    }
    return out;
  }

  private async runScript(items: { dedupKey: string; lane: string; json: string }[]): Promise<[number, string][]> {
    const keys: string[] = [this.keys.pending, this.keys.unhandled];
    const args: (string | number)[] = [Date.now(), this.ttlSeconds, UNHANDLED_CAP, 0];
    for (const item of items) {
      keys.push(item.dedupKey, this.keys.inbox(item.lane));
      args.push(item.lane, item.json);
    }
    return (this.ingestClient.benchIngest as IngestCommand).call(this.ingestClient, keys.length, ...keys, ...args);
  }
}
