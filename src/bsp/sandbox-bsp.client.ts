import { randomBytes } from 'node:crypto';
import { type Logger } from 'pino';
import { type AppLogger } from '../logging/app-logger';
import { type RedisClient, waitReady } from '../redis/redis-client';
import { type RedisKeys } from '../redis/redis-keys';
import {
  BspClient,
  type MarkReadInput,
  type SendReceipt,
  type SendTemplateInput,
  type SendTextInput,
} from './bsp.client';
import { type BspOperation } from './bsp.metrics';
import { BspSendError } from './bsp-send.error';
import { type CloudApiBody, markReadBody, templateBody, textBody } from './cloud-api-payloads';

const READY_WAIT_MS = 1000;

/** How many sends the sandbox outbox keeps (newest first). */
export const SANDBOX_OUTBOX_CAP = 1000;

/** The sandbox outbox list: `{prefix}:sandbox:outbox`, newest entry first, capped. */
export function sandboxOutboxKey(keys: RedisKeys): string {
  return `${keys.root}:sandbox:outbox`;
}

/**
 * The channel every outbox entry is also published on, as it is recorded: the /sandbox page's
 * stream may be served by another process than the worker that sent.
 */
export function sandboxEventsChannel(keys: RedisKeys): string {
  return `${keys.root}:sandbox:events`;
}

/** One JSON entry of the sandbox outbox (read by the /sandbox page). */
export interface SandboxOutboxEntry {
  /** The generated wamid; null for mark-read. */
  id: string | null;
  operation: BspOperation;
  /** Epoch milliseconds. */
  at: number;
  /** Exactly the Cloud API body a real adapter would have POSTed. */
  payload: CloudApiBody;
}

/**
 * BSP_PROVIDER=sandbox: no network. Every send (and mark-read) is recorded as JSON in a capped
 * Redis list, on the producer connection, and answered with a generated wamid, so the one-machine
 * default runs end to end; each entry is published too, so the /sandbox page shows the
 * replies as they are sent.
 */
export class SandboxBspClient extends BspClient {
  readonly provider = 'sandbox' as const;
  private readonly key: string;
  private readonly channel: string;
  private readonly logger: Logger;

  constructor(
    private readonly redis: RedisClient,
    keys: RedisKeys,
    appLogger: AppLogger,
    private readonly cap = SANDBOX_OUTBOX_CAP,
  ) {
    super();
    this.key = sandboxOutboxKey(keys);
    this.channel = sandboxEventsChannel(keys);
    this.logger = appLogger.child('bsp');
  }

  async sendText(input: SendTextInput): Promise<SendReceipt> {
    return this.record('text', textBody(input));
  }

  async sendTemplate(input: SendTemplateInput): Promise<SendReceipt> {
    return this.record('template', templateBody(input));
  }

  async markRead(input: MarkReadInput): Promise<void> {
    try {
      await waitReady(this.redis, READY_WAIT_MS);
      await this.push({ id: null, operation: 'read', at: Date.now(), payload: markReadBody(input) });
    } catch (err) {
      this.logger.debug({ provider: this.provider, err }, 'mark-read failed');
    }
  }

  private async record(operation: BspOperation, payload: CloudApiBody): Promise<SendReceipt> {
    const wamid = `wamid.SANDBOX_${randomBytes(12).toString('hex')}`;
    // The producer connection has no offline queue: when it is not ready the command fails at once
    // and nothing was written; a failure after that may or may not have been applied. Give a
    // connection that is still being established (the first send after start-up) a moment.
    const ready = await waitReady(this.redis, READY_WAIT_MS);
    try {
      await this.push({ id: wamid, operation, at: Date.now(), payload });
    } catch (err) {
      throw new BspSendError(
        'EREDIS',
        'retry',
        ready ? 'unknown' : 'not_sent',
        `sandbox outbox write failed: ${(err as Error).message}`,
      );
    }
    return { wamid };
  }

  private async push(entry: SandboxOutboxEntry): Promise<void> {
    const json = JSON.stringify(entry);
    const results = await this.redis
      .multi()
      .lpush(this.key, json)
      .ltrim(this.key, 0, this.cap - 1)
      .publish(this.channel, json)
      .exec();
    const failed = results?.find(([err]) => err);
    if (!results || failed) throw failed?.[0] ?? new Error('transaction aborted');
  }
}
