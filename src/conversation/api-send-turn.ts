import { Injectable } from '@nestjs/common';
import { type Logger } from 'pino';
import { splitMessage } from '../bsp/split-message';
import { AppLogger } from '../logging/app-logger';
import { LogHasher } from '../logging/log-hasher';
import { MetricsService } from '../metrics/metrics.service';
import { Clock } from '../time/clock';
import { type ApiMessage } from './api-message';
import { ConversationStore } from './conversation.store';
import { apiItemOf, DeadLetters } from './dead-letters';
import { replaceUnsentWithTemplate, templateReply } from './reengagement';
import { ReplySender } from './reply-sender';
import { serviceWindow } from './service-window';
import { deferredOrLost, finished, LOST, type RunOutcome } from './turn-outcome';
import { type LaneSnapshot, type Lease, type ReplyTemplate, type StoredReply, type TurnMeta } from './turn.types';

/**
 * A message from /v1/messages, sent as a turn of the chat's own lane: it never interleaves with a
 * bot or agent reply, it is stored before it is sent (each part once, like every reply), and it
 * joins the chat's history as the assistant's. Free-form only while the window is open; the
 * template otherwise (docs/window.md).
 */
@Injectable()
export class ApiSendTurn {
  private readonly logger: Logger;

  constructor(
    private readonly store: ConversationStore,
    private readonly sender: ReplySender,
    private readonly deadLetters: DeadLetters,
    private readonly clock: Clock,
    private readonly metrics: MetricsService,
    private readonly hasher: LogHasher,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('api-send');
  }

  async run(lease: Lease, snapshot: LaneSnapshot): Promise<RunOutcome> {
    const message = snapshot.items[0].raw as ApiMessage;
    const turn: TurnMeta = snapshot.turn ?? {
      id: message.id,
      startedAt: Date.now(),
      attempts: 0,
      sendFailures: 0,
      pairRateFailures: 0,
    };
    if (!turn.reply) {
      const { state } = await this.store.readChat(lease.lane);
      const open = serviceWindow(state.lastInboundTs, this.clock.now()).open;
      const reply = this.replyFor(message, open);
      if (!reply) return this.giveUp(lease, turn, message, 'window_closed');
      turn.reply = reply;
      if (!(await this.store.saveTurn(lease, turn, true))) return LOST;
    }
    return this.deliver(lease, turn, message);
  }

  /** Free-form when chosen and still possible; the template when chosen or when it no longer is. */
  private replyFor(message: ApiMessage, open: boolean): StoredReply | undefined {
    if (message.mode === 'free_form' && message.text && open) {
      const parts = splitMessage(message.text);
      return { kind: 'api', text: message.text, parts, sent: parts.map(() => null), sending: parts.map(() => null) };
    }
    if (message.template) return templateReply('api', this.template(message, open));
    this.metrics.windowClosed.inc({ source: 'api' });
    return undefined;
  }

  private template(message: ApiMessage, open: boolean): ReplyTemplate {
    return { ...message.template!, inWindow: open, purpose: 'api' };
  }

  private async deliver(lease: Lease, turn: TurnMeta, message: ApiMessage): Promise<RunOutcome> {
    const step = await this.sender.sendParts(lease, turn, message.to);
    switch (step.kind) {
      case 'lost':
        return LOST;
      case 'defer':
        return deferredOrLost(await this.store.defer(lease, step.at, turn), step.at);
      case 'failed': {
        const closed = step.error.kind === 'window_closed';
        if (closed && message.template && !turn.reply?.templates) {
          turn.reply = replaceUnsentWithTemplate(turn.reply!, this.template(message, false));
          if (!(await this.store.saveTurn(lease, turn, true))) return LOST;
          return this.deliver(lease, turn, message);
        }
        return this.giveUp(lease, turn, message, closed ? 'window_closed' : 'send_permanent', step.error.code);
      }
      case 'done':
        return this.commit(lease, turn, message, 'sent');
    }
  }

  private async giveUp(
    lease: Lease,
    turn: TurnMeta,
    message: ApiMessage,
    reason: 'window_closed' | 'send_permanent',
    code?: string | number,
  ): Promise<RunOutcome> {
    // Still the holder? An erase (DELETE /v1/conversations) in the meantime took the lease with the
    // chat's state: the window then looks closed, and the message is gone by the patient's wish.
    if (!(await this.store.renew(lease))) return LOST;
    await this.deadLetters.record(reason, lease.lane, { api: message.id, code }, [apiItemOf(lease.lane, message)]);
    return this.commit(lease, turn, message, 'failed');
  }

  private async commit(lease: Lease, turn: TurnMeta, message: ApiMessage, outcome: string): Promise<RunOutcome> {
    const reply = turn.reply;
    const text = reply?.parts.filter((_, i) => reply.sent[i]).join('\n');
    const history = text ? [{ role: 'assistant' as const, text, at: this.clock.now(), ids: [message.id] }] : [];
    const result = await this.store.finish(lease, lease.lane, { history, state: {} });
    if (result !== 'lost') {
      const mode = reply?.templates ? 'template' : 'free_form';
      this.logger.info(
        { chat: this.hasher.hash(lease.lane), id: message.id, mode, outcome },
        'api message turn finished',
      );
    }
    return finished(result);
  }
}
