import { type TemplateContent } from '../bsp/bsp.client';
import { type IngestItem } from '../dedup/ingest-item';
import { type Language } from '../llm/language';
import { type TurnPlan } from './inbound-content';

/** A held lane lease: every write and send of the turn carries its fencing token. */
export interface Lease {
  lane: string;
  /**
   * The fencing token: the lane's counter and a random part (`17.9f2c01ab77e3`). Unique, not only
   * increasing: if Redis loses its last writes (an AOF crash, a failover to a lagging replica) the
   * counter can repeat, and two workers must still never pass the same check. Compared whole.
   */
  fence: string;
  /**
   * This worker's own deadline for acting under the lease, on its monotonic clock
   * (performance.now()): computed from when the acquire or renewal was sent, so it ends before
   * Redis lets the lease go. A stalled worker that wakes past it writes no send request.
   */
  validUntil: number;
  /** A renewal found the lease gone: stop before the next side effect. */
  lost?: boolean;
}

/** Whether the holder may still start a side effect (an LLM call, a send, a post). */
export function leaseUsable(lease: Lease): boolean {
  return !lease.lost && performance.now() < lease.validUntil;
}

/** One entry of a chat's history, as kept in Redis and shown by /v1/conversations. */
export interface HistoryEntry {
  role: 'user' | 'assistant' | 'agent';
  text: string;
  /** ms since epoch */
  at: number;
  /** Inbound message ids (user) or the turn id (assistant). */
  ids?: string[];
}

export type TemplateCategory = 'marketing' | 'utility' | 'authentication';

/** A reply part that goes out as an approved template (docs/window.md). */
export interface ReplyTemplate extends TemplateContent {
  /** Meta's category of the template: it decides the price. */
  category: TemplateCategory;
  /** Whether the window was open when it was decided (some tables price templates inside it at 0). */
  inWindow: boolean;
  /** Why it is sent: the re-engagement template, or a business-initiated message from /v1. */
  purpose: 'reengagement' | 'api';
}

/** The reply of the turn in flight, stored before anything is sent. */
export interface StoredReply {
  /** `agent`: agents' replies relayed from Chatwoot; `api`: a message from /v1/messages. */
  kind: 'llm' | 'canned' | 'agent' | 'api';
  text: string;
  /** Texts of the parts; a template part holds what the history shows of it. */
  parts: string[];
  /** Parts sent as templates, by part index; every other part is free-form text. */
  templates?: Record<string, ReplyTemplate>;
  /** wamid per part once Meta confirmed it. */
  sent: (string | null)[];
  /** When a part's send started and its outcome is not known yet (ms), per part. */
  sending: (number | null)[];
}

/** The turn in flight: everything a worker that takes the lane over needs to continue it. */
export interface TurnMeta {
  id: string;
  startedAt: number;
  /** Counted LLM attempts. */
  attempts: number;
  /** LLM configuration failures (401/404): not attempts, but they slow the retries down. */
  configFailures?: number;
  /** Context-too-long retry used. */
  trimmed?: boolean;
  /**
   * Parked in line for an LLM slot. A turn that ends without asking again (handed over, erased
   * messages, dead-lettered) leaves the line at its commit, or it would hold the head of the line.
   */
  inLine?: boolean;
  /** Send failures of the current part, for backoff. */
  sendFailures: number;
  /** 131056 failures, for the 4^n pair-rate delay. */
  pairRateFailures: number;
  reply?: StoredReply;
  /** The turn hands the chat over (decided with its reply, so a retried turn does the same). */
  escalation?: TurnEscalation;
  /** Counted against the chat's turn rate (a parked turn is not counted twice). */
  admitted?: boolean;
  /** The reply became (or ends with) the re-engagement template: the window was closed. */
  reengagement?: boolean;
  /** An agent turn: which parts of the reply carry which agent message. */
  agentMessages?: AgentMessage[];
  /**
   * The clinic actions the LLM called in this turn, one entry per round, stored before any of them
   * runs: a retried turn replays these rounds to the LLM instead of asking for them again.
   */
  toolRounds?: ToolRound[];
  /**
   * Each call's result, keyed `<round>.<call index>`, stored (fenced) before the turn goes on: a
   * retried turn reuses it and never calls again (docs/actions.md).
   */
  toolResults?: Record<string, ToolResult>;
}

/** One answer of the LLM that called actions: what it said alongside (never sent) and the calls. */
export interface ToolRound {
  content: string;
  calls: { id: string; name: string; arguments: string }[];
}

/**
 * - ok: the clinic answered 2xx; error: it answered otherwise (or unusably);
 * - invalid: the arguments broke the action's schema (or it does not exist): no request made;
 * - timeout: no answer in time from a call without side effects;
 * - unavailable: the clinic could not be reached (or said 502/503/504);
 * - unknown: a side-effecting call got no answer after it was written: never repeated.
 */
export type ToolOutcome = 'ok' | 'error' | 'invalid' | 'timeout' | 'unavailable' | 'unknown';

export interface ToolResult {
  outcome: ToolOutcome;
  /** What the LLM reads as the tool message (JSON text). Patient data: never logged. */
  content: string;
  status?: number;
}

export type EscalationTriggerKind =
  'keyword' | 'human_request' | 'marker' | 'exhausted' | 'window_closed' | 'action_unknown';

export interface TurnEscalation {
  trigger: EscalationTriggerKind;
  /** What matched (keywords, phrase), for the agents' private note only. */
  matched?: string[];
  /** False when nothing pauses the bot (LLM exhaustion without Chatwoot: apology, notice only). */
  pause: boolean;
}

export interface AgentMessage {
  /** Chatwoot's message id and conversation (display id). */
  id: string;
  conversationId: string;
  text: string;
  /** Its parts in the reply: [first, first + count). */
  first: number;
  count: number;
  /** Why it was not sent, when it was not (window closed, a permanent Meta error). */
  unsent?: string;
}

export interface ChatState {
  /** Seconds since epoch of the newest inbound message: the 24-hour window runs from it. */
  lastInboundTs?: number;
  language?: 'ar' | 'en';
  /** A holding message went out and no real reply since: no second one until there is. */
  holding?: boolean;
  /** A reply met a closed window (found before sending, or WhatsApp said 131047). */
  windowClosed?: boolean;
  /**
   * The lastInboundTs of the closed window whose re-engagement template went out: it goes out once
   * per closed window, however many replies meet it.
   */
  reengagedFor?: number;
  name?: string;
}

/** Who answers the chat: the bot, or a human since a hand-over. */
export interface Handoff {
  state: 'bot' | 'human';
  /** The Chatwoot conversation (display id) when Chatwoot has the chat. */
  conversationId?: string;
  /** ms since epoch */
  since?: number;
}

export interface LaneSnapshot {
  turn?: TurnMeta;
  items: IngestItem[];
}

export type FinishResult = 'lost' | 'idle' | 'more';

/** What a chat turn's steps (the turn service, the LLM step) share while the turn runs. */
export interface TurnContext {
  lease: Lease;
  turn: TurnMeta;
  items: IngestItem[];
  plan: TurnPlan;
  state: ChatState;
  history: HistoryEntry[];
  handoff: Handoff;
  language: Language;
  to: string;
}
