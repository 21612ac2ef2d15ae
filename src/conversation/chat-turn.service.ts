import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { type Logger } from 'pino';
import { splitMessage } from '../bsp/split-message';
import { AppConfig } from '../config/app-config';
import { type IngestItem } from '../dedup/ingest-item';
import { chatLane, laneParts } from '../queue/lanes';
import { CannedMessages, type CannedKey } from '../llm/canned-messages';
import { type Language, pickLanguage } from '../llm/language';
import { AppLogger } from '../logging/app-logger';
import { LogHasher } from '../logging/log-hasher';
import { MetricsService } from '../metrics/metrics.service';
import { ConversationStore } from './conversation.store';
import { EscalationTriggers, interactiveIdsOf } from '../escalation/escalation-triggers';
import { Clock } from '../time/clock';
import { AgentTurnService } from './agent-turn.service';
import { ApiSendTurn } from './api-send-turn';
import { DeadLetters } from './dead-letters';
import { deskItems, type DeskStep } from './desk-steps';
import { HandoverPlanner } from './handover-planner';
import { interpretMessage, planTurn } from './inbound-content';
import { LlmStep } from './llm-step';
import { type ReengageRequest, Reengagement, replaceUnsentWithTemplate, templateReply } from './reengagement';
import { ReplySender } from './reply-sender';
import { serviceWindow } from './service-window';
import { deferredOrLost, finished, LOST, type RunOutcome } from './turn-outcome';
import {
  type ChatState,
  type HistoryEntry,
  type LaneSnapshot,
  type Lease,
  type StoredReply,
  type TurnContext,
  type TurnEscalation,
  type TurnMeta,
} from './turn.types';

/** At most this many turns per chat per window: a patient typing fast still gets every answer. */
export const MAX_TURNS_PER_WINDOW = 10;
export const TURN_RATE_WINDOW_MS = 60_000;

type CommitOutcome = 'replied' | 'skipped' | 'dead_lettered' | 'escalated' | 'reengaged';

/**
 * One chat turn: the lane's waiting messages become one turn, answered by the LLM
 * (or a canned text), or handed to a human; stored, sent part by part, and committed to the chat's
 * history — each step under the lane's fencing token. Every wait parks the turn with a "not
 * before" time. Other turns go by their first item: Chatwoot events to AgentTurnService, a /v1
 * message to ApiSendTurn, a re-engagement to the closed-window path.
 */
@Injectable()
export class ChatTurnService {
  private readonly logger: Logger;

  constructor(
    private readonly store: ConversationStore,
    private readonly llmStep: LlmStep,
    private readonly sender: ReplySender,
    private readonly canned: CannedMessages,
    private readonly deadLetters: DeadLetters,
    private readonly triggers: EscalationTriggers,
    private readonly planner: HandoverPlanner,
    private readonly agentTurns: AgentTurnService,
    private readonly apiSends: ApiSendTurn,
    private readonly reengagement: Reengagement,
    private readonly clock: Clock,
    private readonly metrics: MetricsService,
    private readonly hasher: LogHasher,
    private readonly config: AppConfig,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('turn');
  }

  async run(lease: Lease): Promise<RunOutcome> {
    const snapshot = await this.store.join(lease);
    if (!snapshot) return LOST;
    switch (snapshot.items[0]?.kind) {
      case 'chatwoot':
        return this.runAgentTurn(lease, snapshot);
      case 'api':
        return this.apiSends.run(lease, snapshot);
      case 'reengage':
        return this.runReengage(lease, snapshot);
      case 'message':
      case 'status':
      case 'desk':
      case undefined:
        break;
    }
    const items = snapshot.items.filter((item) => item.kind === 'message');
    if (items.length === 0) return finished(await this.store.finish(lease, lease.lane));
    const turn = snapshot.turn ?? newTurn();
    if (!turn.reply) {
      const due = this.debounceDue(items);
      if (due > Date.now()) return deferredOrLost(await this.store.defer(lease, due, turn), due);
    }
    if (!turn.reply && !turn.admitted) {
      // A flood of messages is answered in fewer, bigger turns: the next one waits for the window
      // and takes every message that arrives meanwhile.
      const at = await this.store.admitTurn(lease, TURN_RATE_WINDOW_MS, MAX_TURNS_PER_WINDOW);
      if (at < 0) return LOST;
      if (at > 0) {
        this.metrics.turnsRateLimited.inc();
        return deferredOrLost(await this.store.defer(lease, at, turn), at);
      }
      turn.admitted = true;
    }
    const plan = planTurn(items.map((item) => interpretMessage(item.raw, this.clock.businessTimeOf(item.receivedAt))));
    const { state, history, handoff } = await this.store.readChat(lease.lane);
    const language = pickLanguage(
      plan.texts.map((t) => t.text),
      state.language ?? 'en',
    );
    const ctx: TurnContext = { lease, turn, items, plan, state, history, handoff, language, to: recipientOf(items) };
    if (!turn.reply) {
      const decided = await this.decideReply(ctx);
      if (decided) return decided;
    }
    return this.deliver(ctx);
  }

  /**
   * TURN_DEBOUNCE_MS: the turn starts once the chat has been quiet that long, but a patient who
   * keeps typing is answered after at most four windows.
   */
  private debounceDue(items: IngestItem[]): number {
    const debounce = this.config.env.TURN_DEBOUNCE_MS;
    if (debounce <= 0) return 0;
    const times = items.map((item) => item.receivedAt);
    return Math.min(Math.max(...times) + debounce, Math.min(...times) + 4 * debounce);
  }

  /** Puts the reply into the turn (stored before any send), or returns how the turn ends or waits. */
  private async decideReply(ctx: TurnContext): Promise<RunOutcome | undefined> {
    const { lease, turn, plan } = ctx;
    const lastInbound = Math.max(ctx.state.lastInboundTs ?? 0, plan.lastTimestamp);
    // A human has the chat: the bot stays quiet, keeps the history and mirrors the messages.
    if (ctx.handoff.state === 'human') return this.commit(ctx, undefined, 'skipped', {}, true);
    const answerable = plan.texts.length > 0 || plan.onlyMedia || plan.onlyResend;
    if (!answerable) return this.commit(ctx, undefined, 'skipped');
    if (!serviceWindow(lastInbound, this.clock.now()).open) {
      // Late messages (Meta redelivered them, or we were down for a day): a free-form answer
      // would fail with 131047, so the LLM is not asked at all.
      this.metrics.windowClosed.inc({ source: 'turn' });
      return this.closedWindow(ctx);
    }
    // Checked before any LLM call: a triggering message never reaches the LLM.
    const match = this.triggers.check(
      plan.texts.map((t) => t.text),
      ctx.items.flatMap((item) => interactiveIdsOf(item.raw)),
    );
    if (match) return this.escalate(ctx, { trigger: match.trigger, matched: match.matched, pause: true });
    let reply: StoredReply;
    if (plan.texts.length > 0) {
      const step = await this.llmStep.run(ctx);
      if (step.kind === 'outcome') return step.outcome;
      if (step.kind === 'exhausted') {
        if (this.config.chatwootEnabled) return this.escalate(ctx, { trigger: 'exhausted', pause: true });
        turn.escalation = { trigger: 'exhausted', pause: false };
        reply = this.replyOf('canned', step.text);
      } else if (step.escalation) {
        // An action of unknown outcome: what the LLM told the patient goes out before the handoff text.
        const rest = step.text.split(this.config.env.LLM_HANDOFF_MARKER).join('').trim();
        return this.escalate(ctx, step.escalation, rest);
      } else if (step.text.includes(this.config.env.LLM_HANDOFF_MARKER)) {
        // The marker is never sent; what the LLM said besides it goes out before the handoff text.
        const rest = step.text.split(this.config.env.LLM_HANDOFF_MARKER).join('').trim();
        return this.escalate(ctx, { trigger: 'marker', pause: true }, rest);
      } else {
        reply = this.replyOf('llm', step.text);
      }
    } else {
      reply = this.replyOf(
        'canned',
        this.cannedText(plan.onlyMedia ? 'unsupported_media' : 'resend_as_text', ctx.language),
      );
    }
    turn.reply = reply;
    return (await this.store.saveTurn(lease, turn, true)) ? undefined : LOST;
  }

  /** The turn hands the chat over: its reply is the handoff message (after `preface`, if any). */
  private async escalate(ctx: TurnContext, escalation: TurnEscalation, preface = ''): Promise<RunOutcome | undefined> {
    const handoff = this.cannedText('handoff', ctx.language);
    ctx.turn.escalation = escalation;
    ctx.turn.reply = this.replyOf('canned', preface ? `${preface}\n\n${handoff}` : handoff);
    return (await this.store.saveTurn(ctx.lease, ctx.turn, true)) ? undefined : LOST;
  }

  /**
   * A reply meets a closed window (docs/window.md): the re-engagement template, once per
   * closed window, after whatever already went out; once it went out, only the flag. Without a
   * template, a hand-over without a message to the patient (none can reach them), or, when a human
   * has the chat already, only the flag.
   * Undefined: the turn's reply was replaced and is stored; deliver it.
   */
  private async closedWindow(ctx: TurnContext): Promise<RunOutcome | undefined> {
    const { lease, turn } = ctx;
    const windowTs = Math.max(ctx.state.lastInboundTs ?? 0, ctx.plan.lastTimestamp);
    const template = turn.reengagement
      ? undefined
      : this.reengagement.templateFor({ ...ctx.state, lastInboundTs: windowTs });
    if (template) {
      turn.reengagement = true;
      turn.reply = turn.reply ? replaceUnsentWithTemplate(turn.reply, template) : templateReply('canned', template);
    } else {
      turn.reply = sentPartsOnly(turn.reply);
      // Configured, yet no template: it went out already for this closed window (the patient has
      // their way back), so no hand-over either.
      const reengaged = this.reengagement.configured;
      if (reengaged || ctx.handoff.state === 'human' || turn.escalation?.pause) {
        return this.commit(ctx, turn.reply, turn.escalation ? 'escalated' : 'skipped', { windowClosed: true });
      }
      turn.escalation = { trigger: 'window_closed', pause: true };
    }
    return (await this.store.saveTurn(lease, turn, true)) ? undefined : LOST;
  }

  /** A reply that WhatsApp refused later (a `failed` status with 131047) comes back here. */
  private async runReengage(lease: Lease, snapshot: LaneSnapshot): Promise<RunOutcome> {
    const turn = snapshot.turn ?? newTurn();
    const { state, history, handoff } = await this.store.readChat(lease.lane);
    const ctx: TurnContext = {
      lease,
      turn,
      items: [],
      plan: planTurn([]),
      state,
      history,
      handoff,
      language: state.language ?? 'en',
      to: laneParts(lease.lane).sender,
    };
    if (!turn.reply) {
      // The patient wrote after the refused reply went out: a new window is open and their message
      // gets a real answer. (Meta's word beats our clock: without a later message, re-engage.)
      const { sentAt } = snapshot.items[0].raw as ReengageRequest;
      const newest = Math.max(state.lastInboundTs ?? 0, await this.store.waitingInboundTs(lease.lane));
      const wroteSince = sentAt ? newest * 1000 > sentAt : serviceWindow(newest, this.clock.now()).open;
      if (wroteSince) return this.commit(ctx, undefined, 'skipped');
      const decided = await this.closedWindow(ctx);
      if (decided) return decided;
    }
    return this.deliver(ctx);
  }

  private async runAgentTurn(lease: Lease, snapshot: LaneSnapshot): Promise<RunOutcome> {
    const prepared = await this.agentTurns.prepare(lease, snapshot);
    if (!prepared) return LOST;
    const { turn } = prepared;
    for (;;) {
      const step = await this.sender.sendParts(lease, turn, this.agentTurns.recipient(lease));
      if (step.kind === 'lost') return LOST;
      if (step.kind === 'defer') return this.agentTurns.defer(lease, turn, step.at);
      if (step.kind === 'failed') {
        this.agentTurns.markUnsent(turn, step.error);
        if (step.error.kind === 'window_closed') {
          const switched = await this.agentTurns.switchToTemplate(lease, turn);
          if (switched === 'lost') return LOST;
          if (switched) continue;
        }
      }
      break;
    }
    const { handoff, state } = await this.store.readChat(lease.lane);
    return this.agentTurns.commit(lease, turn, snapshot, handoff, state);
  }

  private async deliver(ctx: TurnContext): Promise<RunOutcome> {
    const { lease, turn } = ctx;
    const step = await this.sender.sendParts(lease, turn, ctx.to);
    switch (step.kind) {
      case 'lost':
        return LOST;
      case 'defer':
        return deferredOrLost(await this.store.defer(lease, step.at, turn), step.at);
      case 'failed': {
        const closed = step.error.kind === 'window_closed';
        if (closed && !turn.reengagement && turn.escalation?.trigger !== 'window_closed') {
          return (await this.closedWindow(ctx)) ?? this.deliver(ctx);
        }
        await this.deadLetters.record(
          closed ? 'window_closed' : 'send_permanent',
          lease.lane,
          { code: step.error.code, turn: turn.id },
          ctx.items,
        );
        return this.commit(ctx, turn.reply, 'dead_lettered', closed ? { windowClosed: true } : {});
      }
      case 'done': {
        const state: Partial<ChatState> = {};
        if (turn.reply?.kind === 'llm') Object.assign(state, { holding: false, windowClosed: false });
        if (turn.escalation?.trigger === 'window_closed') state.windowClosed = true;
        if (turn.reengagement) {
          const windowTs = Math.max(ctx.state.lastInboundTs ?? 0, ctx.plan.lastTimestamp);
          Object.assign(state, this.reengagement.sentState({ lastInboundTs: windowTs }));
        }
        const outcome: CommitOutcome = turn.escalation?.pause
          ? 'escalated'
          : turn.reengagement
            ? 'reengaged'
            : turn.attempts >= this.config.env.LLM_MAX_ATTEMPTS
              ? 'dead_lettered'
              : 'replied';
        return this.commit(ctx, turn.reply, outcome, state);
      }
    }
  }

  private async commit(
    ctx: TurnContext,
    reply: StoredReply | undefined,
    outcome: CommitOutcome,
    extraState: Partial<ChatState> = {},
    mirror = false,
  ): Promise<RunOutcome> {
    await this.llmStep.leaveLine(ctx.lease.lane, ctx.turn);
    const now = Date.now();
    const history: HistoryEntry[] = [];
    if (ctx.plan.texts.length > 0) {
      history.push({
        role: 'user',
        text: ctx.plan.texts.map((t) => t.text).join('\n'),
        at: now,
        ids: ctx.plan.texts.map((t) => t.id),
      });
    }
    const sentText = reply?.parts.filter((_, i) => reply.sent[i]).join('\n');
    if (sentText) history.push({ role: 'assistant', text: sentText, at: now, ids: [ctx.turn.id] });
    const state: Partial<ChatState> = { language: ctx.language, ...extraState };
    // Collected facts: the WhatsApp profile name Meta sent with the newest message.
    const name = [...ctx.items].reverse().find((item) => item.contact?.name)?.contact?.name;
    if (name) state.name = name;
    if (ctx.plan.lastTimestamp > (ctx.state.lastInboundTs ?? 0)) state.lastInboundTs = ctx.plan.lastTimestamp;
    const steps = await this.handoverSteps(ctx, history, name ?? ctx.state.name, mirror);
    if (!steps) return LOST;
    const desk = deskItems(ctx.lease.lane, steps);
    const chat = ctx.plan.numberChange ? await this.moveChat(ctx, ctx.plan.numberChange) : ctx.lease.lane;
    // What the patient waited: from the first message reaching the receiver, debounce included.
    const committing = Date.now();
    const timing =
      ctx.items.length > 0
        ? { at: committing, ms: committing - Math.min(...ctx.items.map((item) => item.receivedAt)), outcome }
        : undefined;
    const result = await this.store.finish(ctx.lease, chat, { history, state, desk, timing });
    if (result !== 'lost') {
      this.metrics.turns.inc({ outcome });
      if (ctx.turn.escalation) this.metrics.escalations.inc({ trigger: ctx.turn.escalation.trigger });
      this.logger.info(
        {
          chat: this.hasher.hash(ctx.lease.lane),
          turn: ctx.turn.id,
          outcome,
          attempts: ctx.turn.attempts,
          trigger: ctx.turn.escalation?.trigger,
        },
        'turn finished',
      );
    }
    return finished(result, desk?.lane);
  }

  /**
   * A hand-over pauses the bot (fenced) and queues its desk steps; a paused chat's messages are
   * mirrored. Undefined when the lease was lost.
   */
  private async handoverSteps(
    ctx: TurnContext,
    entries: HistoryEntry[],
    name: string | undefined,
    mirror: boolean,
  ): Promise<DeskStep[] | undefined> {
    const { lease, turn } = ctx;
    if (mirror) return this.planner.mirrorSteps(ctx.items);
    const escalation = turn.escalation;
    if (!escalation) return [];
    if (escalation.pause) {
      const since = Date.now();
      const paused = await this.store.setHandoff(
        lease,
        lease.lane,
        { state: 'human', since },
        this.planner.pauseSeconds,
      );
      if (!paused) return undefined;
    }
    return this.planner.handoverSteps(lease.lane, turn.id, escalation, [...ctx.history, ...entries], name);
  }

  private replyOf(kind: StoredReply['kind'], text: string): StoredReply {
    const parts = splitMessage(text);
    return { kind, text, parts, sent: parts.map(() => null), sending: parts.map(() => null) };
  }

  /**
   * A user_changed_number system message moves the chat's history and state to the new number,
   * inside the turn that learnt it (fenced), so this turn's own entries are committed to the new
   * chat. Returns the chat to commit to.
   */
  private async moveChat(ctx: TurnContext, newWaId: string): Promise<string> {
    const to = chatLane(laneParts(ctx.lease.lane).phoneNumberId, newWaId);
    const moved = await this.store.moveChat(ctx.lease, ctx.lease.lane, to);
    this.logger.info(
      { chat: this.hasher.hash(ctx.lease.lane), to: this.hasher.hash(to), moved },
      'patient changed number',
    );
    // Refused (the new number has a chat of its own) or the lease was lost: FINISH tells which.
    return moved ? to : ctx.lease.lane;
  }

  private cannedText(key: CannedKey, language: Language): string {
    return this.canned.text(key, language);
  }
}

function newTurn(): TurnMeta {
  return { id: randomUUID(), startedAt: Date.now(), attempts: 0, sendFailures: 0, pairRateFailures: 0 };
}

/** The reply cut to what already went out (nothing more can reach a patient whose window closed). */
function sentPartsOnly(reply: StoredReply | undefined): StoredReply {
  const keep = reply ? reply.sent.filter(Boolean).length : 0;
  const parts = reply?.parts.slice(0, keep) ?? [];
  return {
    kind: reply?.kind ?? 'canned',
    text: parts.join('\n'),
    parts,
    sent: reply?.sent.slice(0, keep) ?? [],
    sending: parts.map(() => null),
    templates: reply?.templates,
  };
}

/** The chat's WhatsApp address: `from`, else the business-scoped user id. */
function recipientOf(items: IngestItem[]): string {
  for (const item of items) {
    const raw = item.raw as { from?: string; from_user_id?: string };
    if (raw.from) return raw.from;
    if (raw.from_user_id) return raw.from_user_id;
  }
  return '';
}
