import { createHmac } from 'node:crypto';
import { type RecordedRequest } from '../../test/fakes/fake-graph.server';
import { postChatwootWebhook } from '../../test/fakes/fake-chatwoot.server';
import { envelope } from '../../test/utils/meta-payloads';
import { type PlannedMessage, waIdOf } from './plan';
import { type Prng } from './prng';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const nowSeconds = (): string => String(Math.floor(Date.now() / 1000));

export interface MessageRecord {
  planned: PlannedMessage;
  firstPostAt?: number;
  /** When a POST of it first got 200: from then on Meta considers it delivered. */
  acceptedAt?: number;
  attempts: number;
  redelivery?: 'accepted' | 'refused';
}

export interface SenderStats {
  posts: number;
  /** Non-200 answers by status; 0 is a connection refused, reset or timed out. */
  refused: Map<number, number>;
  redeliveries: number;
  statuses: number;
  statusRedeliveries: number;
  chatwootWebhooks: number;
  gaveUp: number;
}

/**
 * Plays Meta's side of the webhooks: every chat's messages in the order the patient wrote them
 * (the next one once the previous got its 200), signed with X-Hub-Signature-256 over the exact
 * bytes, to a receiver picked at random as a load balancer would; every non-200 (or no answer) is
 * retried with backoff, with the same body; some messages and statuses are delivered twice; and
 * every message the fake Graph API accepted gets its `sent` status (some a `delivered` too),
 * carrying the part key the app put in biz_opaque_callback_data.
 */
export class MetaSender {
  readonly records = new Map<string, MessageRecord>();
  readonly stats: SenderStats = {
    posts: 0,
    refused: new Map(),
    redeliveries: 0,
    statuses: 0,
    statusRedeliveries: 0,
    chatwootWebhooks: 0,
    gaveUp: 0,
  };
  /** When the first `sent` status of a part key was accepted (to explain a duplicate send). */
  readonly statusAcceptedAt = new Map<string, number>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private stopAt = Number.POSITIVE_INFINITY;

  constructor(
    private readonly receivers: readonly string[],
    private readonly secret: string,
    private readonly phoneNumberId: string,
    private readonly rng: Prng,
  ) {}

  /** Retries stop at this time (the run's end); what is still unaccepted then counts as given up. */
  stopRetryingAt(at: number): void {
    this.stopAt = at;
  }

  /** Nothing in flight: no message, redelivery, status or Chatwoot webhook waiting for its 200. */
  idle(): boolean {
    return this.inFlight.size === 0;
  }

  /** Sends every chat's messages on schedule; resolves once each got its 200 (or was given up). */
  async sendAll(byChat: PlannedMessage[][], startedAt: number): Promise<void> {
    for (const list of byChat) for (const m of list) this.records.set(m.wamid, { planned: m, attempts: 0 });
    await Promise.all(byChat.map((list) => this.sendChat(list, startedAt)));
  }

  /** The fake Graph API accepted a message: Meta tells the app with statuses, a moment later. */
  onGraphSend(request: RecordedRequest): void {
    if (request.type !== 'send' || !request.wamid) return;
    const key = request.body?.biz_opaque_callback_data as string | undefined;
    const to = String(request.body?.to ?? '');
    const wamid = request.wamid;
    this.track(
      (async () => {
        await sleep(this.rng.between(100, 800));
        const sent = await this.deliver(this.statusBody(wamid, 'sent', to, key));
        if (sent && key && !this.statusAcceptedAt.has(key)) this.statusAcceptedAt.set(key, Date.now());
        this.stats.statuses++;
        if (this.rng.chance(0.05)) {
          this.stats.statusRedeliveries++;
          await this.deliver(this.statusBody(wamid, 'sent', to, key));
        }
        if (this.rng.chance(0.3)) {
          await sleep(this.rng.between(200, 2000));
          await this.deliver(this.statusBody(wamid, 'delivered', to, key));
          this.stats.statuses++;
        }
      })(),
    );
  }

  /** Chatwoot calling the receivers' POST /chatwoot/webhook, retried like Meta's (Chatwoot gives up sooner). */
  async postChatwoot(payload: unknown, token: string): Promise<boolean> {
    const work = (async () => {
      for (let attempt = 1; Date.now() < this.stopAt; attempt++) {
        this.stats.chatwootWebhooks++;
        const url = `${this.rng.pick(this.receivers)}/chatwoot/webhook`;
        const status = await postChatwootWebhook(url, payload, { token, timeoutMs: 5000 }).then(
          async (res) => {
            await res.arrayBuffer();
            return res.status;
          },
          () => 0,
        );
        if (status === 200) return true;
        this.count(status);
        await sleep(this.backoff(attempt));
      }
      return false;
    })();
    this.track(work);
    return work;
  }

  private async sendChat(list: PlannedMessage[], startedAt: number): Promise<void> {
    for (const m of list) {
      await sleep(startedAt + m.at - Date.now());
      const record = this.records.get(m.wamid)!;
      record.firstPostAt = Date.now();
      // Meta retries the very same payload: same wamid, same timestamp, same signature.
      const raw = JSON.stringify(this.messageBody(m));
      const accepted = await this.deliver(raw, record);
      if (!accepted) {
        this.stats.gaveUp++;
        return;
      }
      record.acceptedAt = Date.now();
      if (m.redeliverAfterMs !== undefined) {
        this.track(
          (async () => {
            await sleep(m.redeliverAfterMs!);
            this.stats.redeliveries++;
            record.redelivery = (await this.deliver(raw)) ? 'accepted' : 'refused';
          })(),
        );
      }
    }
  }

  /** POSTs until a 200, or until the run stops retrying. */
  private async deliver(raw: string, record?: MessageRecord): Promise<boolean> {
    const signature = `sha256=${createHmac('sha256', this.secret).update(raw).digest('hex')}`;
    for (let attempt = 1; Date.now() < this.stopAt; attempt++) {
      if (record) record.attempts++;
      this.stats.posts++;
      const status = await this.postOnce(raw, signature);
      if (status === 200) return true;
      this.count(status);
      await sleep(this.backoff(attempt));
    }
    return false;
  }

  private async postOnce(raw: string, signature: string): Promise<number> {
    try {
      const res = await fetch(`${this.rng.pick(this.receivers)}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature },
        body: raw,
        signal: AbortSignal.timeout(5000),
      });
      await res.arrayBuffer();
      return res.status;
    } catch {
      return 0;
    }
  }

  /** Meta's backoff, compressed from minutes to seconds so that a run of minutes sees many retries. */
  private backoff(attempt: number): number {
    return Math.min(200 * 2 ** (attempt - 1), 2000) * this.rng.between(0.5, 1.5);
  }

  private count(status: number): void {
    this.stats.refused.set(status, (this.stats.refused.get(status) ?? 0) + 1);
  }

  private track(work: Promise<unknown>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  private messageBody(m: PlannedMessage): Record<string, unknown> {
    const from = waIdOf(m.chat);
    return envelope(
      {
        contacts: [{ profile: { name: `Patient ${m.chat}` }, wa_id: from }],
        messages: [{ from, id: m.wamid, timestamp: nowSeconds(), type: 'text', text: { body: m.text } }],
      },
      this.phoneNumberId,
    );
  }

  private statusBody(wamid: string, status: string, to: string, key?: string): string {
    const entry: Record<string, unknown> = { id: wamid, status, timestamp: nowSeconds(), recipient_id: to };
    if (key) entry.biz_opaque_callback_data = key;
    return JSON.stringify(envelope({ statuses: [entry] }, this.phoneNumberId));
  }
}
