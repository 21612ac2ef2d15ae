import { type ChatLane } from '../queue/lanes';
import { type IngestItem } from '../dedup/ingest-item';
import {
  type ChatState,
  type Handoff,
  type FinishResult,
  type HistoryEntry,
  type LaneSnapshot,
  type Lease,
  type TurnMeta,
} from './turn.types';

export interface TurnCommit {
  /** Entries appended to the chat's history (trimmed to HISTORY_MAX_MESSAGES). */
  history: HistoryEntry[];
  /** Chat state fields to set (others kept). */
  state: Partial<ChatState>;
  /** Steps queued on the chat's desk lane in the same atomic commit (JSON items). */
  desk?: { lane: string; items: string[] };
  /** How long the patient waited for this turn, kept with the chat's last turns (/sandbox shows them). */
  timing?: TurnTiming;
}

/** One turn's timing: from the first of its messages reaching the receiver to the commit. */
export interface TurnTiming {
  /** Commit time, ms since epoch. */
  at: number;
  /** Received → committed (the reply sent), ms. */
  ms: number;
  outcome: string;
}

export const TURN_TIMINGS_KEPT = 10;

/** What the desk lane knows of a chat's Chatwoot side. */
export interface DeskRecord {
  contactId?: string;
  conversationId?: string;
  /** The source_id of a post in flight whose outcome is unknown. */
  posting?: string;
}

/**
 * Port: per-chat state and the per-lane turn protocol (RedisConversationStore; the in-memory one
 * in test/utils runs the same contract suite). Every method taking a Lease is fenced: it changes
 * nothing and reports so when the lease was lost.
 */
/** A hand-over lasts until resolved, renewed by agent activity, at most 7 days (docs/handover.md). */
export const HANDOFF_MAX_SECONDS = 7 * 86400;

export abstract class ConversationStore {
  /** Takes the lane's lease whatever its not-before time (a freed LLM slot); undefined when held. */
  abstract acquire(lane: string): Promise<Lease | undefined>;
  /**
   * Takes the lease of a lane that is due: a number (its not-before time) when it is parked until
   * later, undefined when another worker holds it. One atomic step, so nothing parks in between.
   */
  abstract acquireDue(lane: string): Promise<Lease | number | undefined>;
  /** Milliseconds left on the lane's lease (0 or less: none). */
  abstract leaseTtl(lane: string): Promise<number>;
  /** Extends the lease; false when it was lost. */
  abstract renew(lease: Lease): Promise<boolean>;
  /**
   * Admits a new turn of the chat if fewer than `max` started within the current `windowMs`:
   * 0 when admitted (and counted), else the time (ms) it may start; -1 when the lease was lost.
   */
  abstract admitTurn(lease: Lease, windowMs: number, max: number): Promise<number>;
  /**
   * The turn in flight threw unexpectedly: counts it (the count lives until the turn finishes)
   * and returns how many times it has; -1 when the lease was lost.
   */
  abstract countFailure(lease: Lease): Promise<number>;
  /** Lets the lease go, nothing else. */
  abstract release(lease: Lease): Promise<void>;
  /** Moves waiting inbox items into the turn in flight; undefined when the lease was lost. */
  abstract join(lease: Lease): Promise<LaneSnapshot | undefined>;
  /** Saves the turn in flight; `lock` keeps new messages out of it (its reply is decided). */
  abstract saveTurn(lease: Lease, turn: TurnMeta, lock?: boolean): Promise<boolean>;
  /** Sets chat state fields under the lease (e.g. the holding flag before the holding message). */
  abstract saveChat(lease: Lease, chat: ChatLane, state: Partial<ChatState>): Promise<boolean>;
  /**
   * Parks the turn until `notBefore` and lets the lease go. `keepItems` replaces the turn's items
   * (statuses still unresolved); omitted keeps them.
   */
  abstract defer(lease: Lease, notBefore: number, turn?: TurnMeta, keepItems?: readonly string[]): Promise<boolean>;
  /** Commits the turn: history, chat state, and the lane idles or reports more waiting. */
  abstract finish(lease: Lease, chat: ChatLane | undefined, commit?: TurnCommit): Promise<FinishResult>;
  /** Moves a chat's history and state to another chat id (number change); false when not moved. */
  abstract moveChat(lease: Lease, from: ChatLane, to: ChatLane): Promise<boolean>;
  /**
   * Hands the chat to a human for `ttlSeconds` (at most HANDOFF_MAX_SECONDS: docs/operations.md, Retention), or
   * back to the bot with state 'bot'. Fenced like every turn write.
   */
  abstract setHandoff(lease: Lease, chat: ChatLane, handoff: Handoff, ttlSeconds: number): Promise<boolean>;
  /** The desk record of a chat (desk lanes only write it). */
  abstract readDesk(chat: ChatLane): Promise<DeskRecord>;
  /** Marks a desk post in flight before it is made (fenced). */
  abstract markDeskPosting(lease: Lease, chat: ChatLane, sourceId: string): Promise<boolean>;
  /**
   * The desk lane's head step is done: drops it, clears the in-flight mark, sets `record` fields
   * (an empty string clears one), and remembers `ownMessageId` as a Chatwoot message we created.
   */
  abstract shiftDesk(
    lease: Lease,
    chat: ChatLane,
    record: Partial<DeskRecord>,
    ownMessageId?: string,
  ): Promise<boolean>;
  /** Which of these Chatwoot message ids this app created. */
  abstract ownDeskMessages(ids: readonly string[]): Promise<Set<string>>;
  /** Desk steps waiting across all chats. */
  abstract deskBacklog(): Promise<number>;
  abstract readChat(chat: ChatLane): Promise<{ state: ChatState; history: HistoryEntry[]; handoff: Handoff }>;
  /**
   * The newest timestamp (s) of the patient's messages still waiting on the chat's lane (inbox and
   * turn in flight), 0 when none: they opened the window already, before any turn committed them.
   * A stamp counts no later than a minute past the message's arrival in business time
   * (trustedInboundTs, service-window.ts).
   */
  abstract waitingInboundTs(chat: ChatLane): Promise<number>;
  /**
   * The items of the lane's turn in flight as stored, for a dead letter of a turn that failed before
   * it could say which. Entries that cannot be read are left out (a re-run would fail on them again).
   */
  abstract turnItems(lane: string): Promise<IngestItem[]>;
  /**
   * Hands a paused chat back to the bot now (POST /v1/conversations/:waId/resume). Not fenced: it
   * is the operator's word, and the next turn reads it. False when no hand-over was in place.
   */
  abstract resume(chat: ChatLane): Promise<boolean>;
  /**
   * Erases a chat (a data-subject request): history, state, hand-over, desk record, its running
   * cost and turn timings, and the work waiting on its chat and desk lanes (patients' texts). The
   * leases go too, so a worker in the middle of a turn loses its fence and writes nothing back.
   * The fence counters stay (they must only grow), as do outbound records and the cost ledger,
   * which hold no text. False when there was nothing to erase.
   */
  abstract erase(chat: ChatLane): Promise<boolean>;
}
