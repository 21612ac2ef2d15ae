import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { type AppConfig } from '../../src/config/app-config';
import { type IngestItem, readableItems } from '../../src/dedup/ingest-item';
import {
  ConversationStore,
  type DeskRecord,
  HANDOFF_MAX_SECONDS,
  type TurnCommit,
  TURN_TIMINGS_KEPT,
} from '../../src/conversation/conversation.store';
import { chatStateFields, handoffFields, parseChatState, parseHandoff } from '../../src/conversation/chat-fields';
import { interpretMessage } from '../../src/conversation/inbound-content';
import {
  type ChatState,
  type FinishResult,
  type Handoff,
  type HistoryEntry,
  type LaneSnapshot,
  type Lease,
  type TurnMeta,
} from '../../src/conversation/turn.types';
import { deskLaneOf, type ChatLane } from '../../src/queue/lanes';
import { RedisKeys } from '../../src/redis/redis-keys';
import { Clock } from '../../src/time/clock';

const DAY_MS = 86_400_000;
/** The lifetimes RedisConversationStore gives its keys: the contract suite holds both to them. */
const LANE_TTL_MS = 30 * DAY_MS;
const DESK_RECORD_TTL_MS = 30 * DAY_MS;
const DESK_OWN_TTL_MS = 30 * DAY_MS;
const LEASE_MARGIN_MS = 100;

interface Entry {
  value: string | string[] | Record<string, string>;
  /** On the keyspace's clock; none: the key lives until deleted. */
  expiresAt?: number;
}

/**
 * Keys with Redis' lifetimes: a key past its expiry is gone, an empty list or hash does not exist,
 * writing a field or an element keeps the key's TTL, and setting a string replaces it. Values are
 * what Redis would hold (strings, lists of strings, hashes of strings), so what the fakes store is
 * what the Redis adapters store, JSON and all.
 */
export class MemoryKeyspace {
  private readonly entries = new Map<string, Entry>();

  constructor(readonly clock: Clock) {}

  private entry(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry?.expiresAt !== undefined && entry.expiresAt <= this.clock.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  exists(key: string): boolean {
    return this.entry(key) !== undefined;
  }

  /** Like PTTL: ms left, -1 without expiry, -2 without the key. */
  ttl(key: string): number {
    const entry = this.entry(key);
    if (!entry) return -2;
    return entry.expiresAt === undefined ? -1 : entry.expiresAt - this.clock.now();
  }

  expire(key: string, ms: number): void {
    const entry = this.entry(key);
    if (entry) entry.expiresAt = this.clock.now() + ms;
  }

  del(...keys: string[]): number {
    let removed = 0;
    for (const key of keys) if (this.entry(key) && this.entries.delete(key)) removed++;
    return removed;
  }

  rename(from: string, to: string): void {
    const entry = this.entry(from);
    if (!entry) return;
    this.entries.delete(from);
    this.entries.set(to, entry);
  }

  string(key: string): string | undefined {
    const value = this.entry(key)?.value;
    return typeof value === 'string' ? value : undefined;
  }

  /** SET: the value and its TTL (none when `ms` is undefined) replace whatever was there. */
  setString(key: string, value: string, ms?: number): void {
    this.entries.set(key, { value, expiresAt: ms === undefined ? undefined : this.clock.now() + ms });
  }

  list(key: string): string[] {
    const value = this.entry(key)?.value;
    return Array.isArray(value) ? [...value] : [];
  }

  setList(key: string, items: readonly string[]): void {
    this.keepTtl(key, items.length > 0 ? [...items] : undefined);
  }

  hash(key: string): Record<string, string> {
    const value = this.entry(key)?.value;
    return typeof value === 'object' && !Array.isArray(value) ? { ...value } : {};
  }

  /** HSET: fields added to the hash, its TTL kept. */
  setFields(key: string, fields: Record<string, string>): void {
    this.keepTtl(key, { ...this.hash(key), ...fields });
  }

  /** HDEL. */
  dropFields(key: string, ...names: string[]): void {
    const hash = this.hash(key);
    for (const name of names) delete hash[name];
    this.keepTtl(key, Object.keys(hash).length > 0 ? hash : undefined);
  }

  private keepTtl(key: string, value: Entry['value'] | undefined): void {
    if (value === undefined) {
      this.entries.delete(key);
      return;
    }
    this.entries.set(key, { value, expiresAt: this.entry(key)?.expiresAt });
  }
}

/**
 * ConversationStore in memory, for tests that run the turn logic without Redis (test/middle). It
 * keeps the port's contract as RedisConversationStore does, and the same contract suite runs
 * against both (test/utils/conversation-store-contract.ts), so it cannot drift unnoticed: leases
 * lapse after TURN_LEASE_MS, fences are unique, every fenced write refuses (writing nothing) once
 * the lease is not the caller's, and TTLs run as in Redis.
 *
 * Time is its own Clock, not the app's business clock: moving it lapses leases, wakes parked
 * turns and expires keys, which moving business time must never do (src/time/clock.ts). Leave it
 * alone and it follows Date.now(), as Redis does. The lanes' bookkeeping sets (pending, inflight,
 * parked) are left out: only the sweeper and the runner's wake-ups read them, never through this port.
 */
export class InMemoryConversationStore extends ConversationStore {
  readonly data: MemoryKeyspace;
  /** Key names as Redis has them, so the fakes share one keyspace the way the adapters share Redis. */
  readonly keys = new RedisKeys('{memory}');

  /**
   * @param business the app's business clock, as RedisConversationStore is given it (a message's
   *   arrival in business time caps the timestamp it may claim)
   * @param clock the store's own time, Redis' in the adapter
   */
  constructor(
    private readonly config: AppConfig,
    private readonly business: Clock = new Clock(),
    readonly clock: Clock = new Clock(),
  ) {
    super();
    this.data = new MemoryKeyspace(clock);
  }

  /** What ingest does for a lane: its items join the inbox, in order. */
  enqueue(lane: string, ...items: IngestItem[]): void {
    this.data.setList(this.keys.inbox(lane), [
      ...this.data.list(this.keys.inbox(lane)),
      ...items.map((item) => JSON.stringify(item)),
    ]);
  }

  /** Lets `ms` pass for leases, not-before times and TTLs. */
  elapse(ms: number): void {
    this.clock.advance(ms);
  }

  /** Whether `lease` is still the lane's: every fenced write checks this first. */
  holds(lease: Lease): boolean {
    return this.data.string(this.keys.lease(lease.lane)) === lease.fence;
  }

  private get leaseMs(): number {
    return this.config.env.TURN_LEASE_MS;
  }

  acquire(lane: string): Promise<Lease | undefined> {
    const taken = this.take(lane, false);
    return Promise.resolve(typeof taken === 'object' ? taken : undefined);
  }

  acquireDue(lane: string): Promise<Lease | number | undefined> {
    return Promise.resolve(this.take(lane, true));
  }

  private take(lane: string, respectNotBefore: boolean): Lease | number | undefined {
    const sent = performance.now();
    if (this.data.exists(this.keys.lease(lane))) return undefined;
    const laneKey = this.keys.lane(lane);
    const hash = this.data.hash(laneKey);
    const nb = Number(hash.nb ?? 0);
    if (respectNotBefore && nb > this.clock.now()) return nb;
    const fence = `${Number(hash.fence ?? 0) + 1}.${randomBytes(6).toString('hex')}`;
    this.data.setFields(laneKey, { fence: fence.split('.')[0] });
    this.data.expire(laneKey, LANE_TTL_MS);
    this.data.setString(this.keys.lease(lane), fence, this.leaseMs);
    return { lane, fence, validUntil: sent + this.leaseMs - LEASE_MARGIN_MS };
  }

  leaseTtl(lane: string): Promise<number> {
    return Promise.resolve(this.data.ttl(this.keys.lease(lane)));
  }

  renew(lease: Lease): Promise<boolean> {
    const sent = performance.now();
    const ok = this.holds(lease);
    if (ok) {
      this.data.expire(this.keys.lease(lease.lane), this.leaseMs);
      lease.validUntil = Math.max(lease.validUntil, sent + this.leaseMs - LEASE_MARGIN_MS);
    } else {
      lease.lost = true;
    }
    return Promise.resolve(ok);
  }

  admitTurn(lease: Lease, windowMs: number, max: number): Promise<number> {
    if (!this.holds(lease)) return Promise.resolve(-1);
    const laneKey = this.keys.lane(lease.lane);
    const hash = this.data.hash(laneKey);
    const now = this.clock.now();
    let start = Number(hash.rateStart ?? 0);
    let count = Number(hash.rateCount ?? 0);
    if (now - start >= windowMs) {
      start = now;
      count = 0;
    }
    if (count >= max) return Promise.resolve(start + windowMs);
    this.data.setFields(laneKey, { rateStart: String(start), rateCount: String(count + 1) });
    return Promise.resolve(0);
  }

  countFailure(lease: Lease): Promise<number> {
    if (!this.holds(lease)) return Promise.resolve(-1);
    const laneKey = this.keys.lane(lease.lane);
    const failures = Number(this.data.hash(laneKey).failures ?? 0) + 1;
    this.data.setFields(laneKey, { failures: String(failures) });
    return Promise.resolve(failures);
  }

  release(lease: Lease): Promise<void> {
    if (this.holds(lease)) this.data.del(this.keys.lease(lease.lane));
    return Promise.resolve();
  }

  join(lease: Lease): Promise<LaneSnapshot | undefined> {
    if (!this.holds(lease)) return Promise.resolve(undefined);
    const { lane } = lease;
    const laneHash = this.data.hash(this.keys.lane(lane));
    const inboxKey = this.keys.inbox(lane);
    const turnKey = this.keys.turnItems(lane);
    if (!laneHash.locked) {
      const inbox = this.data.list(inboxKey);
      const inTurn = this.data.list(turnKey);
      const head = inTurn[0] ?? inbox[0];
      if (head !== undefined) {
        const cls = joinClass(head);
        let take = 0;
        for (const raw of inbox) {
          if (joinClass(raw) !== cls || (cls === 'one' && (inTurn.length > 0 || take > 0))) break;
          take++;
        }
        this.data.setList(turnKey, [...inTurn, ...inbox.slice(0, take)]);
        this.data.setList(inboxKey, inbox.slice(take));
      }
    }
    return Promise.resolve({
      turn: laneHash.turn ? (JSON.parse(laneHash.turn) as TurnMeta) : undefined,
      items: this.data.list(turnKey).map((raw) => JSON.parse(raw) as IngestItem),
    });
  }

  saveTurn(lease: Lease, turn: TurnMeta, lock = false): Promise<boolean> {
    if (!this.holds(lease)) return Promise.resolve(false);
    this.data.setFields(this.keys.lane(lease.lane), { turn: JSON.stringify(turn), ...(lock && { locked: '1' }) });
    return Promise.resolve(true);
  }

  saveChat(lease: Lease, chat: ChatLane, state: Partial<ChatState>): Promise<boolean> {
    const fields = chatStateFields(state);
    if (Object.keys(fields).length === 0) return Promise.resolve(true);
    if (!this.holds(lease)) return Promise.resolve(false);
    this.data.setFields(this.keys.chat(chat), fields);
    return Promise.resolve(true);
  }

  defer(lease: Lease, notBefore: number, turn?: TurnMeta, keepItems?: readonly string[]): Promise<boolean> {
    if (!this.holds(lease)) return Promise.resolve(false);
    const { lane } = lease;
    if (keepItems) this.data.setList(this.keys.turnItems(lane), keepItems);
    this.data.setFields(this.keys.lane(lane), {
      nb: String(Math.ceil(notBefore)),
      ...(turn && { turn: JSON.stringify(turn) }),
    });
    this.data.del(this.keys.lease(lane));
    return Promise.resolve(true);
  }

  finish(lease: Lease, chat: ChatLane | undefined, commit?: TurnCommit): Promise<FinishResult> {
    if (!this.holds(lease)) return Promise.resolve('lost');
    const { lane } = lease;
    const chatKey = chat ?? lane;
    const { HISTORY_MAX_MESSAGES, CONVERSATION_TTL_SECONDS } = this.config.env;
    const historyTtlMs = CONVERSATION_TTL_SECONDS * 1000;
    const history = (commit?.history ?? []).map((entry) => JSON.stringify(entry));
    if (history.length > 0) {
      const key = this.keys.history(chatKey);
      this.data.setList(key, [...this.data.list(key), ...history].slice(-HISTORY_MAX_MESSAGES));
      this.data.expire(key, historyTtlMs);
    }
    const desk = commit?.desk?.items ?? [];
    if (desk.length > 0) {
      const key = this.keys.inbox(commit!.desk!.lane);
      this.data.setList(key, [...this.data.list(key), ...desk]);
      this.addBacklog(desk.length);
    }
    if (commit?.timing) {
      const key = this.keys.chatTurns(chatKey);
      this.data.setList(key, [JSON.stringify(commit.timing), ...this.data.list(key)].slice(0, TURN_TIMINGS_KEPT));
      this.data.expire(key, historyTtlMs);
    }
    const fields = chatStateFields(commit?.state ?? {});
    if (Object.keys(fields).length > 0) {
      const key = this.keys.chat(chatKey);
      this.data.setFields(key, fields);
      // The window needs the last inbound time for at least 24 h, whatever the history retention.
      this.data.expire(key, Math.max(historyTtlMs, DAY_MS + 3_600_000));
    }
    this.data.del(this.keys.turnItems(lane), this.keys.lease(lane));
    this.data.dropFields(this.keys.lane(lane), 'turn', 'locked', 'nb', 'failures');
    return Promise.resolve(this.data.list(this.keys.inbox(lane)).length > 0 ? 'more' : 'idle');
  }

  moveChat(lease: Lease, from: ChatLane, to: ChatLane): Promise<boolean> {
    if (!this.holds(lease)) return Promise.resolve(false);
    if (this.data.exists(this.keys.history(to)) || this.data.exists(this.keys.chat(to))) return Promise.resolve(false);
    this.data.rename(this.keys.history(from), this.keys.history(to));
    this.data.rename(this.keys.chat(from), this.keys.chat(to));
    return Promise.resolve(true);
  }

  setHandoff(lease: Lease, chat: ChatLane, handoff: Handoff, ttlSeconds: number): Promise<boolean> {
    if (!this.holds(lease)) return Promise.resolve(false);
    const key = this.keys.handoff(chat);
    const ttl = handoff.state === 'bot' ? 0 : Math.min(Math.ceil(ttlSeconds), HANDOFF_MAX_SECONDS);
    this.data.del(key);
    if (ttl > 0) {
      this.data.setFields(key, handoffFields(handoff));
      this.data.expire(key, ttl * 1000);
    }
    return Promise.resolve(true);
  }

  readDesk(chat: ChatLane): Promise<DeskRecord> {
    const fields = this.data.hash(this.keys.desk(chat));
    return Promise.resolve({
      contactId: fields.contactId || undefined,
      conversationId: fields.conversationId || undefined,
      posting: fields.posting || undefined,
    });
  }

  markDeskPosting(lease: Lease, chat: ChatLane, sourceId: string): Promise<boolean> {
    if (!this.holds(lease)) return Promise.resolve(false);
    const key = this.keys.desk(chat);
    this.data.setFields(key, { posting: sourceId });
    this.data.expire(key, DESK_RECORD_TTL_MS);
    return Promise.resolve(true);
  }

  shiftDesk(lease: Lease, chat: ChatLane, record: Partial<DeskRecord>, ownMessageId?: string): Promise<boolean> {
    if (!this.holds(lease)) return Promise.resolve(false);
    const turnKey = this.keys.turnItems(lease.lane);
    const steps = this.data.list(turnKey);
    if (steps.length === 0) return Promise.resolve(true);
    this.data.setList(turnKey, steps.slice(1));
    const key = this.keys.desk(chat);
    this.data.dropFields(key, 'posting');
    const fields: Record<string, string> = {};
    for (const [name, value] of Object.entries(record)) if (value !== undefined) fields[name] = value;
    if (Object.keys(fields).length > 0) this.data.setFields(key, fields);
    this.data.expire(key, DESK_RECORD_TTL_MS);
    this.addBacklog(-1);
    if (ownMessageId) this.data.setString(this.keys.deskOwn(ownMessageId), '1', DESK_OWN_TTL_MS);
    return Promise.resolve(true);
  }

  private addBacklog(by: number): void {
    const now = Number(this.data.string(this.keys.deskBacklog) ?? 0) + by;
    this.data.setString(this.keys.deskBacklog, String(Math.max(now, 0)));
  }

  ownDeskMessages(ids: readonly string[]): Promise<Set<string>> {
    return Promise.resolve(new Set(ids.filter((id) => this.data.exists(this.keys.deskOwn(id)))));
  }

  deskBacklog(): Promise<number> {
    return Promise.resolve(Number(this.data.string(this.keys.deskBacklog)) || 0);
  }

  readChat(chat: ChatLane): Promise<{ state: ChatState; history: HistoryEntry[]; handoff: Handoff }> {
    const handoff = this.data.hash(this.keys.handoff(chat));
    return Promise.resolve({
      state: parseChatState(this.data.hash(this.keys.chat(chat))),
      history: this.data.list(this.keys.history(chat)).map((raw) => JSON.parse(raw) as HistoryEntry),
      handoff: parseHandoff(handoff),
    });
  }

  waitingInboundTs(chat: ChatLane): Promise<number> {
    let newest = 0;
    for (const item of readableItems([
      ...this.data.list(this.keys.turnItems(chat)),
      ...this.data.list(this.keys.inbox(chat)),
    ])) {
      if (item.kind !== 'message') continue;
      newest = Math.max(newest, interpretMessage(item.raw, this.business.businessTimeOf(item.receivedAt)).timestamp);
    }
    return Promise.resolve(newest);
  }

  turnItems(lane: string): Promise<IngestItem[]> {
    return Promise.resolve(readableItems(this.data.list(this.keys.turnItems(lane))));
  }

  resume(chat: ChatLane): Promise<boolean> {
    return Promise.resolve(this.data.del(this.keys.handoff(chat)) > 0);
  }

  erase(chat: ChatLane): Promise<boolean> {
    const desk = deskLaneOf(chat);
    const k = this.keys;
    // What counts as "something to erase"; the leases, cost and timings go too, but alone are nothing.
    const content = [
      k.inbox(chat),
      k.turnItems(chat),
      k.history(chat),
      k.chat(chat),
      k.handoff(chat),
      k.desk(chat),
      k.inbox(desk),
      k.turnItems(desk),
    ];
    const found = content.some((key) => this.data.exists(key));
    const steps = this.data.list(k.inbox(desk)).length + this.data.list(k.turnItems(desk)).length;
    if (steps > 0) this.addBacklog(-steps);
    this.data.del(...content, k.lease(chat), k.lease(desk), k.chatCost(chat), k.chatTurns(chat));
    // The fence counters (and the turn-rate window) stay: they must only grow.
    this.data.dropFields(k.lane(chat), 'turn', 'locked', 'nb', 'failures');
    this.data.dropFields(k.lane(desk), 'turn', 'locked', 'nb', 'failures');
    return Promise.resolve(found);
  }
}

/**
 * The class an item joins a turn by: Chatwoot events, single items (a /v1 message, a
 * re-engagement: one per turn), and everything else (patient messages, statuses, desk steps).
 */
function joinClass(raw: string): 'a' | 'one' | 'm' {
  try {
    const item = JSON.parse(raw) as { kind?: unknown } | null;
    if (item && typeof item === 'object') {
      if (item.kind === 'chatwoot') return 'a';
      if (item.kind === 'api' || item.kind === 'reengage') return 'one';
    }
  } catch {
    // Unreadable: a message as far as joining goes; the turn that reads it fails visibly.
  }
  return 'm';
}
