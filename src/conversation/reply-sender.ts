import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { BspClient } from '../bsp/bsp.client';
import { BspSendError } from '../bsp/bsp-send.error';
import { pairRateDelayMs } from '../bsp/bsp-error-taxonomy';
import { MetricsService } from '../metrics/metrics.service';
import { ConversationStore } from './conversation.store';
import { OutboundRecords } from './outbound-records';
import { type Lease, leaseUsable, type StoredReply, type TurnMeta } from './turn.types';
import { exponentialMs, withJitter } from '../time/backoff';
import { Clock } from '../time/clock';
import { serviceWindow } from './service-window';
/** A BSP outage of up to an hour is waited out; longer ones dead-letter. */
export const SEND_GIVE_UP_MS = 60 * 60 * 1000;

export type SendStep =
  { kind: 'done' } | { kind: 'lost' } | { kind: 'defer'; at: number } | { kind: 'failed'; error: BspSendError };

/** Part keys go out as biz_opaque_callback_data and come back in statuses; no `:` (job-id safe). */
export const partKey = (turnId: string, index: number): string => `t.${turnId}.${index}`;
export const isPartKey = (value: unknown): value is string =>
  typeof value === 'string' && /^t\.[\w-]+\.\d+$/.test(value);

/**
 * Sends the stored reply part by part without ever sending a confirmed part twice:
 * - the reply is stored (locked into the turn) before the first send;
 * - before each send the part is marked `sending` under the fencing token, so a worker that lost
 *   its lease sends nothing, and a crash leaves a visible "outcome unknown";
 * - an unknown outcome is settled by the part's ack (its send answer, or a status carrying the part
 *   key); only when none arrives within SEND_UNKNOWN_WAIT_MS is the part resent, and that possible
 *   duplicate is counted.
 */
@Injectable()
export class ReplySender {
  constructor(
    private readonly bsp: BspClient,
    private readonly store: ConversationStore,
    private readonly records: OutboundRecords,
    private readonly metrics: MetricsService,
    private readonly clock: Clock,
    private readonly config: AppConfig,
  ) {}

  async sendParts(lease: Lease, turn: TurnMeta, to: string): Promise<SendStep> {
    const reply = turn.reply;
    if (!reply) return { kind: 'done' };
    for (let i = 0; i < reply.parts.length; i++) {
      if (reply.sent[i]) continue;
      const key = partKey(turn.id, i);
      const started = reply.sending[i];
      if (started) {
        const acked = await this.records.ackOf(key, lease.lane);
        if (acked) {
          reply.sent[i] = acked;
          reply.sending[i] = null;
          if (!(await this.store.saveTurn(lease, turn, true))) return { kind: 'lost' };
          continue;
        }
        const settleBy = started + this.config.env.SEND_UNKNOWN_WAIT_MS;
        if (Date.now() < settleBy) return { kind: 'defer', at: settleBy };
        this.metrics.possibleDuplicateSends.inc();
      }
      if (!leaseUsable(lease)) return { kind: 'lost' };
      reply.sending[i] = Date.now();
      // The fenced write right before the send: a stale worker stops here, and one that stalled
      // after it (past its own deadline) does not write the request either.
      if (!(await this.store.saveTurn(lease, turn, true)) || !leaseUsable(lease)) return { kind: 'lost' };
      const step = await this.sendOne(lease, turn, i, key, to);
      if (step) return step;
    }
    return { kind: 'done' };
  }

  /**
   * A canned notice outside the turn's stored reply: the holding message, the apology for a turn
   * given up. Best effort and never repeated (the caller has decided, under its fence, that this is
   * the one attempt); free-form, so only inside the window; recorded and costed like a reply part,
   * so its statuses are not orphans. Throws when the send failed; false when it was not attempted.
   */
  async sendNotice(lease: Lease, notice: Notice): Promise<boolean> {
    if (!leaseUsable(lease)) return false;
    if (!serviceWindow(notice.lastInboundTs, this.clock.now()).open) {
      this.metrics.windowClosed.inc({ source: 'notice' });
      return false;
    }
    const labels = { mode: 'free_form', category: 'service' } as const;
    try {
      const { wamid } = await this.bsp.sendText({ to: notice.to, body: notice.body, callbackData: notice.key });
      this.metrics.sends.inc({ ...labels, outcome: 'ok' });
      await this.records.sent({
        wamid,
        lane: lease.lane,
        turnId: notice.turnId,
        partKey: notice.key,
        to: notice.to,
        ...labels,
        inWindow: true,
        origin: 'notice',
      });
      return true;
    } catch (err) {
      this.metrics.sends.inc({ ...labels, outcome: 'failed' });
      throw err;
    }
  }

  /** Sends part i; undefined when it went out, else what the turn does next. */
  private async sendOne(
    lease: Lease,
    turn: TurnMeta,
    i: number,
    key: string,
    to: string,
  ): Promise<SendStep | undefined> {
    const reply = turn.reply!;
    const template = reply.templates?.[String(i)];
    const labels = sendLabels(reply, i);
    try {
      const { wamid } = template
        ? await this.bsp.sendTemplate({ ...template, to, callbackData: key })
        : await this.bsp.sendText({ to, body: reply.parts[i], callbackData: key });
      reply.sent[i] = wamid;
      reply.sending[i] = null;
      turn.sendFailures = 0;
      turn.pairRateFailures = 0;
      this.metrics.sends.inc({ ...labels, outcome: 'ok' });
      if (template) this.metrics.templatesSent.inc({ purpose: template.purpose });
      await this.records.sent({
        wamid,
        lane: lease.lane,
        turnId: turn.id,
        partKey: key,
        to,
        ...labels,
        inWindow: template ? template.inWindow : true,
        origin: reply.kind === 'api' ? 'api' : 'reply',
      });
      // Even if this write finds the lease lost, the part is acked: the next holder will not resend.
      return (await this.store.saveTurn(lease, turn, true)) ? undefined : { kind: 'lost' };
    } catch (err) {
      if (!(err instanceof BspSendError)) throw err;
      if (err.outcome === 'not_sent') reply.sending[i] = null;
      return this.onSendError(turn, err, labels);
    }
  }

  private onSendError(turn: TurnMeta, err: BspSendError, labels: SendLabels): SendStep {
    const now = Date.now();
    const expired = now - turn.startedAt > SEND_GIVE_UP_MS;
    switch (err.kind) {
      case 'retry':
      case 'config': {
        if (expired || (err.retryLimit !== undefined && turn.sendFailures >= err.retryLimit)) {
          this.metrics.sends.inc({ ...labels, outcome: 'failed' });
          return { kind: 'failed', error: err };
        }
        turn.sendFailures++;
        this.metrics.sends.inc({ ...labels, outcome: 'retried' });
        // Configuration errors need a human: retry slowly until fixed (the alert gauge is raised).
        const base = err.kind === 'config' ? 30_000 : 1000;
        return { kind: 'defer', at: now + withJitter(exponentialMs(base, turn.sendFailures, 5 * 60_000)) };
      }
      case 'pair_rate':
        // 131056: only this recipient waits, 4^n seconds (n = consecutive failures, from 0, the
        // wait capped at 4^5 s), and, like any other retry, not past the turn's give-up time.
        if (expired) {
          this.metrics.sends.inc({ ...labels, outcome: 'failed' });
          return { kind: 'failed', error: err };
        }
        this.metrics.sends.inc({ ...labels, outcome: 'retried' });
        return { kind: 'defer', at: now + pairRateDelayMs(Math.min(turn.pairRateFailures++, 5)) };
      case 'window_closed':
        this.metrics.windowClosed.inc({ source: 'send' });
        this.metrics.sends.inc({ ...labels, outcome: 'failed' });
        return { kind: 'failed', error: err };
      case 'permanent':
        this.metrics.sends.inc({ ...labels, outcome: 'failed' });
        return { kind: 'failed', error: err };
    }
  }
}

export interface Notice {
  to: string;
  body: string;
  /** Its part key: the callback data its statuses come back with. */
  key: string;
  turnId: string;
  /** The patient's newest message (s): the window the notice must fit in. */
  lastInboundTs?: number;
}

interface SendLabels {
  mode: 'free_form' | 'template';
  category: string;
}

/** Free-form messages are Meta's `service` category; a template's category is its own. */
function sendLabels(reply: StoredReply, i: number): SendLabels {
  const template = reply.templates?.[String(i)];
  return template ? { mode: 'template', category: template.category } : { mode: 'free_form', category: 'service' };
}
