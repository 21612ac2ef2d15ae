import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { type Logger } from 'pino';
import { type BspSendError } from '../bsp/bsp-send.error';
import { splitMessage } from '../bsp/split-message';
import { type ChatwootEvent } from '../escalation/chatwoot-event';
import { AppLogger } from '../logging/app-logger';
import { LogHasher } from '../logging/log-hasher';
import { MetricsService } from '../metrics/metrics.service';
import { laneParts } from '../queue/lanes';
import { ConversationStore, HANDOFF_MAX_SECONDS } from './conversation.store';
import { deskItems, type DeskStep } from './desk-steps';
import { Clock } from '../time/clock';
import { HandoverPlanner } from './handover-planner';
import { Reengagement, replaceUnsentWithTemplate } from './reengagement';
import { serviceWindow } from './service-window';
import { deferredOrLost, finished, LOST, type RunOutcome } from './turn-outcome';
import {
  type AgentMessage,
  type ChatState,
  type Handoff,
  type HistoryEntry,
  type LaneSnapshot,
  type Lease,
  type TurnMeta,
} from './turn.types';

/**
 * A chat turn made of Chatwoot events (an agent's replies, the conversation resolved), run on the
 * chat's own lane so they keep their order with the patient's messages. Agent replies go out with
 * the same guarantees as the bot's (stored before sending, each part sent once) and join the
 * history as role `agent`; one that cannot reach the patient gets a private note in Chatwoot saying
 * why. Messages this app posted into Chatwoot itself are never relayed back.
 */
@Injectable()
export class AgentTurnService {
  private readonly logger: Logger;

  constructor(
    private readonly store: ConversationStore,
    private readonly planner: HandoverPlanner,
    private readonly reengagement: Reengagement,
    private readonly clock: Clock,
    private readonly metrics: MetricsService,
    private readonly hasher: LogHasher,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('agent-turn');
  }

  /** Decides the relayed reply (stored, locked) when the turn has none yet; undefined when the lease was lost. */
  async prepare(lease: Lease, snapshot: LaneSnapshot): Promise<{ turn: TurnMeta } | undefined> {
    const turn: TurnMeta = snapshot.turn ?? {
      id: randomUUID(),
      startedAt: Date.now(),
      attempts: 0,
      sendFailures: 0,
      pairRateFailures: 0,
    };
    if (turn.reply) return { turn };
    const events = eventsOf(snapshot);
    const { state } = await this.store.readChat(lease.lane);
    const messages = events.filter((e) => e.event === 'agent_message');
    const own = await this.store.ownDeskMessages(messages.map((m) => m.messageId));
    const closed = this.windowClosedReason(state);
    const parts: string[] = [];
    turn.agentMessages = [];
    for (const m of messages) {
      if (own.has(m.messageId)) continue;
      const text = m.content.trim();
      const unsent = !text ? 'only attachments, which are not relayed to WhatsApp: please write the text' : closed;
      const split = unsent ? [] : splitMessage(text);
      turn.agentMessages.push({
        id: m.messageId,
        conversationId: m.conversationId,
        text,
        first: parts.length,
        count: split.length,
        unsent,
      });
      parts.push(...split);
    }
    turn.reply = {
      kind: 'agent',
      text: parts.join('\n'),
      parts,
      sent: parts.map(() => null),
      sending: parts.map(() => null),
    };
    // An agent writing into a closed window: the re-engagement template lets the patient reopen it.
    const template = closed && turn.agentMessages.length > 0 ? this.reengagement.templateFor(state) : undefined;
    if (template) {
      turn.reply = replaceUnsentWithTemplate(turn.reply, template);
      turn.reengagement = true;
      for (const m of turn.agentMessages) if (m.unsent === closed) m.unsent = `${closed}${REENGAGED}`;
    }
    return (await this.store.saveTurn(lease, turn, true)) ? { turn } : undefined;
  }

  /**
   * WhatsApp said 131047 on an agent's reply: the re-engagement template replaces what did not go
   * out, once per closed window. False when none is configured or it already went out.
   */
  async switchToTemplate(lease: Lease, turn: TurnMeta): Promise<boolean | 'lost'> {
    if (turn.reengagement || !turn.reply) return false;
    const { state } = await this.store.readChat(lease.lane);
    const template = this.reengagement.templateFor(state);
    if (!template) return false;
    turn.reply = replaceUnsentWithTemplate(turn.reply, template);
    turn.reengagement = true;
    for (const m of turn.agentMessages ?? []) if (m.unsent) m.unsent += REENGAGED;
    return (await this.store.saveTurn(lease, turn, true)) ? true : 'lost';
  }

  /** After the sends: the messages a permanent error stopped. */
  markUnsent(turn: TurnMeta, error: BspSendError): void {
    const why =
      error.kind === 'window_closed'
        ? 'the 24-hour window is closed (WhatsApp error 131047); the patient must write first'
        : `WhatsApp refused it (error ${error.code})`;
    for (const m of turn.agentMessages ?? []) {
      const delivered = turn.reply!.sent.slice(m.first, m.first + m.count).every(Boolean);
      if (!m.unsent && !delivered) m.unsent = why;
    }
  }

  /** History, hand-over state and notes, committed under the lease. */
  async commit(
    lease: Lease,
    turn: TurnMeta,
    snapshot: LaneSnapshot,
    handoff: Handoff,
    chatState: ChatState,
  ): Promise<RunOutcome> {
    const now = Date.now();
    const history: HistoryEntry[] = [];
    const steps: DeskStep[] = [];
    for (const m of turn.agentMessages ?? []) {
      if (m.unsent) {
        steps.push(this.planner.unsentNote(turn.id, m.id, m.conversationId, m.unsent));
        this.metrics.agentReplies.inc({ outcome: 'not_sent' });
        continue;
      }
      history.push({ role: 'agent', text: m.text, at: now, ids: [`cw.${m.id}`] });
      this.metrics.agentReplies.inc({ outcome: 'relayed' });
    }
    const next = nextHandoff(eventsOf(snapshot), turn.agentMessages ?? [], steps);
    if (next && !(await this.store.setHandoff(lease, lease.lane, next, HANDOFF_MAX_SECONDS))) return LOST;
    const desk = deskItems(lease.lane, steps);
    const templateSent = turn.reengagement && turn.reply?.sent.at(-1);
    const state = templateSent ? this.reengagement.sentState(chatState) : {};
    const result = await this.store.finish(lease, lease.lane, { history, state, desk });
    if (result !== 'lost') {
      const held = next?.state ?? handoff.state;
      this.logger.info({ chat: this.hasher.hash(lease.lane), turn: turn.id, handoff: held }, 'agent turn finished');
    }
    return finished(result, desk?.lane);
  }

  recipient(lease: Lease): string {
    return laneParts(lease.lane).sender;
  }

  defer(lease: Lease, turn: TurnMeta, at: number): Promise<RunOutcome> {
    return this.store.defer(lease, at, turn).then((ok) => deferredOrLost(ok, at));
  }

  private windowClosedReason(state: ChatState): string | undefined {
    const window = serviceWindow(state.lastInboundTs, this.clock.now());
    if (window.open) return undefined;
    const since = window.closesAt ? ` (it closed at ${new Date(window.closesAt).toISOString()})` : '';
    return `the 24-hour window is closed${since}; the patient must write first`;
  }
}

const REENGAGED =
  '. The re-engagement template went out so that the patient can answer; send your message again when they do';

function eventsOf(snapshot: LaneSnapshot): ChatwootEvent[] {
  return snapshot.items.filter((item) => item.kind === 'chatwoot').map((item) => item.raw as ChatwootEvent);
}

/**
 * The chat's hand-over after these events, in order: an agent writing has (or renews) the chat, a
 * resolved conversation gives it back to the bot — and the desk lane forgets that conversation.
 */
function nextHandoff(events: ChatwootEvent[], relayed: AgentMessage[], steps: DeskStep[]): Handoff | undefined {
  const agentIds = new Set(relayed.map((m) => m.id));
  let next: Handoff | undefined;
  for (const e of events) {
    if (e.event === 'agent_message' && agentIds.has(e.messageId)) {
      next = { state: 'human', conversationId: e.conversationId, since: Date.now() };
    } else if (e.event === 'resolved') {
      next = { state: 'bot' };
      steps.push({ op: 'forget', conversationId: e.conversationId });
    }
  }
  return next;
}
