import { Injectable } from '@nestjs/common';
import { type Logger } from 'pino';
import { BspClient } from '../bsp/bsp.client';
import { AppConfig } from '../config/app-config';
import { CannedMessages } from '../llm/canned-messages';
import { WakeUpService } from '../dedup/wake-up.service';
import { LlmConcurrencyLimiter, SLOT_RECHECK_MS, type SlotWaiter } from '../llm/llm-concurrency.limiter';
import { LlmError, LlmClient, type LlmRequest } from '../llm/llm.client';
import { buildLlmRequest, halveHistory } from '../llm/llm-request.builder';
import { SystemPromptLoader } from '../llm/system-prompt.loader';
import { AppLogger } from '../logging/app-logger';
import { LogHasher } from '../logging/log-hasher';
import { MetricsService } from '../metrics/metrics.service';
import { ConversationStore } from './conversation.store';
import { DeadLetters } from './dead-letters';
import { ReplySender } from './reply-sender';
import { deferredOrLost, LOST, type RunOutcome } from './turn-outcome';
import { ActionRounds } from './action-rounds';
import { leaseUsable, type TurnContext, type TurnEscalation, type TurnMeta } from './turn.types';
import { exponentialMs, withJitter } from '../time/backoff';

export type LlmStepResult =
  /** `escalation`: an action of unknown outcome; the reply goes out, then a person takes over. */
  | { kind: 'reply'; text: string; escalation?: TurnEscalation }
  /** LLM attempts exhausted: the apology text, used when no human desk takes the chat over. */
  | { kind: 'exhausted'; text: string }
  | { kind: 'outcome'; outcome: RunOutcome };

/** Wake-ups of chats whose turn waits for an LLM slot: they run before the parked time. */
export const SLOT_WAKE_TAG = 'q';

/** First retry after an LLM configuration error (401/404). */
const CONFIG_RETRY_MS = 30_000;

/**
 * The LLM part of a turn and its failure policy (docs/architecture.md §6): a slot under the global
 * cap, the request (buildLlmRequest), and on failure the holding message (once per chat until a
 * real reply), backoff with jitter, one trimmed retry for context-too-long, config errors alerted
 * but not counted, and after LLM_MAX_ATTEMPTS (or an hour) a hand-over with Chatwoot, else the
 * apology plus a dead letter.
 */
@Injectable()
export class LlmStep {
  private readonly logger: Logger;

  constructor(
    private readonly llm: LlmClient,
    private readonly limiter: LlmConcurrencyLimiter,
    private readonly wakeUps: WakeUpService,
    private readonly prompt: SystemPromptLoader,
    private readonly canned: CannedMessages,
    private readonly bsp: BspClient,
    private readonly store: ConversationStore,
    private readonly deadLetters: DeadLetters,
    private readonly sender: ReplySender,
    private readonly metrics: MetricsService,
    private readonly hasher: LogHasher,
    private readonly config: AppConfig,
    appLogger: AppLogger,
    private readonly actions: ActionRounds,
  ) {
    this.logger = appLogger.child('llm-step');
  }

  async run(ctx: TurnContext): Promise<LlmStepResult> {
    const { lease, turn } = ctx;
    // The fence makes the holder unique to this worker's attempt: a taken-over turn holds its own.
    const holder = `${turn.id}.${lease.fence}`;
    // The slot is held for LLM calls only: a clinic's system may take seconds to answer, and the
    // GPU would sit idle for every chat in line meanwhile. Taking it again before each call also
    // renews it, so a turn of several rounds never outlives the slot's TTL.
    let holding = false;
    try {
      this.actions.countReused(turn);
      let request = this.request(ctx);
      for (;;) {
        // A renewal found the lease gone (or this worker stalled past it): someone else has the chat.
        if (!leaseUsable(lease)) return { kind: 'outcome', outcome: LOST };
        // Calls stored but not run yet (this answer's, or a crashed attempt's) run before the LLM
        // sees their results; results stored earlier are reused, never called again.
        if (this.actions.pending(turn)) {
          if (holding) await this.releaseSlot(holder);
          holding = false;
          const settled = await this.actions.settle(lease, turn);
          if (settled === 'lost') return { kind: 'outcome', outcome: LOST };
          if (settled === 'down') {
            return await this.onFailure(ctx, new LlmError('error', "the clinic's system cannot be reached"));
          }
        }
        if (!(await this.limiter.tryAcquire(holder, lease.lane))) {
          // In line for a slot: a released slot wakes this chat; the recheck only covers a lost wake.
          turn.inLine = true;
          const at = Date.now() + SLOT_RECHECK_MS + Math.floor(Math.random() * 1000);
          return { kind: 'outcome', outcome: deferredOrLost(await this.store.defer(lease, at, turn), at) };
        }
        if (!holding && turn.attempts === 0 && !turn.toolRounds?.length) this.markRead(ctx);
        holding = true;
        turn.inLine = false;
        try {
          const tools = this.actions.tools(turn);
          const reply = await this.llm.complete({
            ...request,
            messages: [...request.messages, ...this.actions.messages(turn)],
            ...(tools && { tools }),
          });
          if (tools && reply.toolCalls?.length) {
            if (!(await this.actions.begin(lease, turn, reply))) return { kind: 'outcome', outcome: LOST };
            continue;
          }
          // Out of rounds, the model was asked without tools; calls alone are no answer.
          if (reply.content === '') throw new LlmError('empty', 'LLM answered with calls only after its last round');
          return { kind: 'reply', text: reply.content, escalation: this.actions.escalation(turn) };
        } catch (err) {
          if (!(err instanceof LlmError)) throw err;
          const trimmed = err.kind === 'context' && !turn.trimmed ? halveHistory(request) : null;
          if (!trimmed) return await this.onFailure(ctx, err);
          turn.trimmed = true;
          request = trimmed;
        }
      }
    } finally {
      if (holding) await this.releaseSlot(holder);
    }
  }

  /** Frees the slot and wakes the chats first in line for it (their `q` wake-ups run at once). */
  private async releaseSlot(holder: string): Promise<void> {
    await this.wakeFirstInLine(await this.limiter.release(holder));
  }

  /**
   * A turn that waited in line for a slot ends without it: out of the line, and wake who is next.
   * Without the turn (it could not be read), the chat leaves the line in any case.
   */
  async leaveLine(lane: string, turn?: TurnMeta): Promise<void> {
    if (turn && !turn.inLine) return;
    if (turn) turn.inLine = false;
    await this.wakeFirstInLine(await this.limiter.leaveLine(lane));
  }

  private async wakeFirstInLine(next: SlotWaiter[]): Promise<void> {
    if (next.length === 0) return;
    await this.wakeUps
      .wake(next.map((waiter) => ({ lane: waiter.chat, tag: `${SLOT_WAKE_TAG}${waiter.since}` })))
      .catch((err: Error) => this.logger.warn({ err }, 'could not wake chats waiting for a slot'));
  }

  private request(ctx: TurnContext): LlmRequest {
    const request = buildLlmRequest({
      systemPrompt: this.prompt.prompt,
      // An agent's words are the clinic's side of the conversation: the LLM sees them as assistant.
      history: ctx.history.map((h) => ({
        role: h.role === 'user' ? ('user' as const) : ('assistant' as const),
        text: h.text,
      })),
      turnMessages: ctx.plan.texts.map((t) => t.text),
      user: this.hasher.hash(ctx.lease.lane),
    });
    return ctx.turn.trimmed ? (halveHistory(request) ?? request) : request;
  }

  private async onFailure(ctx: TurnContext, err: LlmError): Promise<LlmStepResult> {
    const { lease, turn } = ctx;
    const chat = this.hasher.hash(lease.lane);
    // 401/404: a deployment mistake. Alerted by the LLM metrics; not an attempt, so a fix in time
    // still answers the patient. The turn is not parked forever: see the age check below.
    if (err.kind !== 'config') turn.attempts++;
    this.logger.warn({ chat, turn: turn.id, kind: err.kind, attempts: turn.attempts }, 'llm failed');
    if (!(await this.sendHoldingOnce(ctx))) return { kind: 'outcome', outcome: LOST };
    const tooOld = Date.now() - turn.startedAt > 60 * 60 * 1000;
    if (turn.attempts >= this.config.env.LLM_MAX_ATTEMPTS || tooOld) {
      // With Chatwoot a human takes the turn over; without, the apology goes out and the turn is
      // given up visibly (docs/handover.md).
      if (!this.config.chatwootEnabled) {
        await this.deadLetters.record(
          'llm_exhausted',
          lease.lane,
          { turn: turn.id, kind: err.kind, attempts: turn.attempts },
          ctx.items,
        );
      }
      turn.attempts = Math.max(turn.attempts, this.config.env.LLM_MAX_ATTEMPTS);
      return { kind: 'exhausted', text: this.canned.text('apology', ctx.language) };
    }
    const at = Date.now() + withJitter(this.backoffMs(turn, err));
    return { kind: 'outcome', outcome: deferredOrLost(await this.store.defer(lease, at, turn), at) };
  }

  /** Exponential from LLM_BACKOFF_MS; configuration errors wait for a human, from 30 s up to 5 min. */
  private backoffMs(turn: TurnMeta, err: LlmError): number {
    if (err.kind === 'config') {
      turn.configFailures = (turn.configFailures ?? 0) + 1;
      return exponentialMs(CONFIG_RETRY_MS, turn.configFailures, 5 * 60_000);
    }
    return exponentialMs(this.config.env.LLM_BACKOFF_MS, turn.attempts);
  }

  /**
   * The holding message, at most once per chat until a real reply goes out. The flag is written
   * (fenced) before the send: a crash in between loses one holding message rather than doubling it.
   * As for reply parts, no send request once this worker's own lease deadline has passed.
   * Returns false when the lease was lost.
   */
  private async sendHoldingOnce(ctx: TurnContext): Promise<boolean> {
    if (ctx.state.holding) return true;
    if (!leaseUsable(ctx.lease)) return false;
    if (!(await this.store.saveChat(ctx.lease, ctx.lease.lane, { holding: true })) || !leaseUsable(ctx.lease)) {
      return false;
    }
    ctx.state.holding = true;
    try {
      const lastInboundTs = Math.max(ctx.state.lastInboundTs ?? 0, ctx.plan.lastTimestamp);
      const body = this.canned.text('holding', ctx.language);
      const key = `h.${ctx.turn.id}`;
      if (await this.sender.sendNotice(ctx.lease, { to: ctx.to, body, key, turnId: ctx.turn.id, lastInboundTs })) {
        this.metrics.holdingMessages.inc();
      }
    } catch (err) {
      this.logger.warn({ chat: this.hasher.hash(ctx.lease.lane), err }, 'holding message not sent');
    }
    return true;
  }

  private markRead(ctx: TurnContext): void {
    if (!this.config.env.MARK_READ) return;
    const last = ctx.items[ctx.items.length - 1]?.raw as { id?: string } | undefined;
    if (last?.id) void this.bsp.markRead({ messageId: last.id, typing: true });
  }
}
