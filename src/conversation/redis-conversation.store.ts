import { randomBytes } from 'node:crypto';
import { type Provider } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { type IngestItem, readableItems } from '../dedup/ingest-item';
import { RedisConnections } from '../redis/redis-connections.service';
import { deskLaneOf, type ChatLane } from '../queue/lanes';
import { RedisKeys } from '../redis/redis-keys';
import { type RedisClient } from '../redis/redis-client';
import { Clock } from '../time/clock';
import { chatStateFields, handoffFields, parseChatState, parseHandoff } from './chat-fields';
import { interpretMessage } from './inbound-content';
import {
  ConversationStore,
  type DeskRecord,
  HANDOFF_MAX_SECONDS,
  type TurnCommit,
  TURN_TIMINGS_KEPT,
} from './conversation.store';
import {
  ACQUIRE,
  ADMIT,
  DEFER,
  DESK_MARK,
  DESK_SHIFT,
  ERASE,
  FAILED,
  FINISH,
  HANDOFF,
  JOIN,
  MOVE_CHAT,
  RELEASE,
  RENEW,
  SAVE,
} from './conversation.scripts';
import {
  type ChatState,
  type Handoff,
  type FinishResult,
  type HistoryEntry,
  type LaneSnapshot,
  type Lease,
  type TurnMeta,
} from './turn.types';

type Script = (numKeys: number, ...args: (string | number)[]) => Promise<unknown>;
type Scripted = RedisClient & Record<string, Script | undefined>;

const SCRIPTS = {
  tsAcquire: ACQUIRE,
  tsAdmit: ADMIT,
  tsRenew: RENEW,
  tsJoin: JOIN,
  tsSave: SAVE,
  tsDefer: DEFER,
  tsRelease: RELEASE,
  tsFinish: FINISH,
  tsMoveChat: MOVE_CHAT,
  tsHandoff: HANDOFF,
  tsDeskMark: DESK_MARK,
  tsDeskShift: DESK_SHIFT,
  tsErase: ERASE,
  tsFailed: FAILED,
};
const DAY_S = 86400;
const LEASE_MARGIN_MS = 100;
/** Lane hashes keep the fence counter; they outlive any plausible stalled worker. */
const LANE_TTL_S = 30 * DAY_S;
/** The desk record outlives the longest hand-over; own-message marks outlive any late webhook. */
const DESK_RECORD_TTL_S = 30 * DAY_S;
const DESK_OWN_TTL_S = 30 * DAY_S;

/**
 * ConversationStore on Redis. Workers give it the worker connection (no command timeout: BullMQ's
 * kind); /v1 and /sandbox give it the ingest connection, whose timeout answers a client in bounded
 * time (see the modules' factories).
 */
export class RedisConversationStore extends ConversationStore {
  private readonly client: Scripted;

  constructor(
    client: RedisClient,
    private readonly keys: RedisKeys,
    private readonly config: AppConfig,
    private readonly clock: Clock = new Clock(),
  ) {
    super();
    this.client = client as Scripted;
    this.defineScripts();
  }

  static provider(kind: 'worker' | 'ingest'): Provider {
    return {
      provide: ConversationStore,
      inject: [RedisConnections, RedisKeys, AppConfig, Clock],
      useFactory: (connections: RedisConnections, keys: RedisKeys, config: AppConfig, clock: Clock) =>
        new RedisConversationStore(connections[kind], keys, config, clock),
    };
  }

  private defineScripts(): void {
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      if (!this.client[name]) this.client.defineCommand(name, { lua });
    }
  }

  private run(name: keyof typeof SCRIPTS, keys: string[], args: (string | number)[]): Promise<unknown> {
    return (this.client[name] as Script).call(this.client, keys.length, ...keys, ...args);
  }

  async acquire(lane: string): Promise<Lease | undefined> {
    const taken = await this.take(lane, false);
    return typeof taken === 'object' ? taken : undefined;
  }

  async acquireDue(lane: string): Promise<Lease | number | undefined> {
    return this.take(lane, true);
  }

  private async take(lane: string, respectNotBefore: boolean): Promise<Lease | number | undefined> {
    const sent = performance.now();
    const reply = await this.run(
      'tsAcquire',
      [this.keys.lease(lane), this.keys.lane(lane), this.keys.inflight, this.keys.parked],
      [
        this.config.env.TURN_LEASE_MS,
        LANE_TTL_S,
        randomBytes(6).toString('hex'),
        lane,
        Date.now(),
        respectNotBefore ? '1' : '0',
      ],
    );
    if (typeof reply === 'string') return { lane, fence: reply, validUntil: this.deadline(sent) };
    if (Array.isArray(reply)) return Number(reply[1]);
    return undefined;
  }

  /** Redis starts the lease's TTL after `sent`; a small margin covers the two clocks' drift. */
  private deadline(sent: number): number {
    return sent + this.config.env.TURN_LEASE_MS - LEASE_MARGIN_MS;
  }

  leaseTtl(lane: string): Promise<number> {
    return this.client.pttl(this.keys.lease(lane));
  }

  async renew(lease: Lease): Promise<boolean> {
    const sent = performance.now();
    const ok =
      (await this.run(
        'tsRenew',
        [this.keys.lease(lease.lane), this.keys.inflight],
        [lease.fence, this.config.env.TURN_LEASE_MS, lease.lane, Date.now()],
      )) === 1;
    if (ok) lease.validUntil = Math.max(lease.validUntil, this.deadline(sent));
    else lease.lost = true;
    return ok;
  }

  async admitTurn(lease: Lease, windowMs: number, max: number): Promise<number> {
    const keys = [this.keys.lease(lease.lane), this.keys.lane(lease.lane)];
    return Number(await this.run('tsAdmit', keys, [lease.fence, Date.now(), windowMs, max]));
  }

  async countFailure(lease: Lease): Promise<number> {
    return Number(await this.run('tsFailed', [this.keys.lease(lease.lane), this.keys.lane(lease.lane)], [lease.fence]));
  }

  async release(lease: Lease): Promise<void> {
    await this.run(
      'tsRelease',
      [this.keys.lease(lease.lane), this.keys.inflight],
      [lease.fence, lease.lane, Date.now()],
    );
  }

  async join(lease: Lease): Promise<LaneSnapshot | undefined> {
    const { lane, fence } = lease;
    const keys = [this.keys.lease(lane), this.keys.lane(lane), this.keys.inbox(lane), this.keys.turnItems(lane)];
    const reply = (await this.run('tsJoin', keys, [fence])) as string[] | null;
    if (!reply) return undefined;
    const [meta, ...items] = reply;
    return {
      turn: meta ? (JSON.parse(meta) as TurnMeta) : undefined,
      items: items.map((raw) => JSON.parse(raw) as IngestItem),
    };
  }

  async saveTurn(lease: Lease, turn: TurnMeta, lock = false): Promise<boolean> {
    const fields: string[] = ['turn', JSON.stringify(turn)];
    if (lock) fields.push('locked', '1');
    const keys = [this.keys.lease(lease.lane), this.keys.lane(lease.lane)];
    return (await this.run('tsSave', keys, [lease.fence, ...fields])) === 1;
  }

  async saveChat(lease: Lease, chat: ChatLane, state: Partial<ChatState>): Promise<boolean> {
    const fields = fieldPairs(chatStateFields(state));
    if (fields.length === 0) return true;
    const keys = [this.keys.lease(lease.lane), this.keys.chat(chat)];
    return (await this.run('tsSave', keys, [lease.fence, ...fields])) === 1;
  }

  async defer(lease: Lease, notBefore: number, turn?: TurnMeta, keepItems?: readonly string[]): Promise<boolean> {
    const { lane, fence } = lease;
    const keys = [
      this.keys.lease(lane),
      this.keys.lane(lane),
      this.keys.turnItems(lane),
      this.keys.inflight,
      this.keys.parked,
    ];
    const args: (string | number)[] = [fence, Math.ceil(notBefore), lane, keepItems ? keepItems.length : -1];
    if (keepItems) args.push(...keepItems);
    if (turn) args.push('turn', JSON.stringify(turn));
    return (await this.run('tsDefer', keys, args)) === 1;
  }

  async finish(lease: Lease, chat: ChatLane | undefined, commit?: TurnCommit): Promise<FinishResult> {
    const { lane, fence } = lease;
    const chatKey = chat ?? lane;
    const keys = [
      this.keys.lease(lane),
      this.keys.lane(lane),
      this.keys.inbox(lane),
      this.keys.turnItems(lane),
      this.keys.pending,
      this.keys.history(chatKey),
      this.keys.chat(chatKey),
      this.keys.inbox(commit?.desk?.lane ?? lane),
      this.keys.deskBacklog,
      this.keys.inflight,
      this.keys.parked,
      this.keys.chatTurns(chatKey),
    ];
    const { HISTORY_MAX_MESSAGES, CONVERSATION_TTL_SECONDS } = this.config.env;
    const history = (commit?.history ?? []).map((entry) => JSON.stringify(entry));
    // The window needs the last inbound time for at least 24 h, whatever the history retention.
    const stateTtl = Math.max(CONVERSATION_TTL_SECONDS, DAY_S + 3600);
    const args: (string | number)[] = [fence, lane, HISTORY_MAX_MESSAGES, CONVERSATION_TTL_SECONDS, stateTtl];
    const desk = commit?.desk?.items ?? [];
    args.push(history.length, ...history, desk.length, ...desk, commit?.desk?.lane ?? '', Date.now());
    args.push(commit?.timing ? JSON.stringify(commit.timing) : '', TURN_TIMINGS_KEPT);
    args.push(...fieldPairs(chatStateFields(commit?.state ?? {})));
    const result = Number(await this.run('tsFinish', keys, args));
    return result === 0 ? 'lost' : result === 2 ? 'more' : 'idle';
  }

  async moveChat(lease: Lease, from: ChatLane, to: ChatLane): Promise<boolean> {
    const keys = [
      this.keys.lease(lease.lane),
      this.keys.history(from),
      this.keys.chat(from),
      this.keys.history(to),
      this.keys.chat(to),
    ];
    return (await this.run('tsMoveChat', keys, [lease.fence])) === 1;
  }

  async setHandoff(lease: Lease, chat: ChatLane, handoff: Handoff, ttlSeconds: number): Promise<boolean> {
    const ttl = handoff.state === 'bot' ? 0 : Math.min(Math.ceil(ttlSeconds), HANDOFF_MAX_SECONDS);
    const keys = [this.keys.lease(lease.lane), this.keys.handoff(chat)];
    return (await this.run('tsHandoff', keys, [lease.fence, ttl, ...fieldPairs(handoffFields(handoff))])) === 1;
  }

  async readDesk(chat: ChatLane): Promise<DeskRecord> {
    const fields = await this.client.hgetall(this.keys.desk(chat));
    return {
      contactId: fields.contactId || undefined,
      conversationId: fields.conversationId || undefined,
      posting: fields.posting || undefined,
    };
  }

  async markDeskPosting(lease: Lease, chat: ChatLane, sourceId: string): Promise<boolean> {
    const keys = [this.keys.lease(lease.lane), this.keys.desk(chat)];
    return (await this.run('tsDeskMark', keys, [lease.fence, DESK_RECORD_TTL_S, 'posting', sourceId])) === 1;
  }

  async shiftDesk(lease: Lease, chat: ChatLane, record: Partial<DeskRecord>, ownMessageId?: string): Promise<boolean> {
    const keys = [
      this.keys.lease(lease.lane),
      this.keys.turnItems(lease.lane),
      this.keys.desk(chat),
      this.keys.deskBacklog,
      this.keys.deskOwn(ownMessageId ?? 'none'),
    ];
    const fields: string[] = [];
    for (const [key, value] of Object.entries(record)) if (value !== undefined) fields.push(key, value);
    const args = [lease.fence, DESK_RECORD_TTL_S, ownMessageId ? DESK_OWN_TTL_S : 0, ...fields];
    return (await this.run('tsDeskShift', keys, args)) === 1;
  }

  async ownDeskMessages(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const found = await this.client.mget(...ids.map((id) => this.keys.deskOwn(id)));
    return new Set(ids.filter((_, i) => found[i] !== null));
  }

  async deskBacklog(): Promise<number> {
    return Number(await this.client.get(this.keys.deskBacklog)) || 0;
  }

  async waitingInboundTs(chat: ChatLane): Promise<number> {
    const [inbox, turn] = await Promise.all([
      this.client.lrange(this.keys.inbox(chat), 0, -1),
      this.client.lrange(this.keys.turnItems(chat), 0, -1),
    ]);
    let newest = 0;
    for (const item of readableItems([...turn, ...inbox])) {
      if (item.kind !== 'message') continue;
      newest = Math.max(newest, interpretMessage(item.raw, this.clock.businessTimeOf(item.receivedAt)).timestamp);
    }
    return newest;
  }

  async turnItems(lane: string): Promise<IngestItem[]> {
    return readableItems(await this.client.lrange(this.keys.turnItems(lane), 0, -1));
  }

  async resume(chat: ChatLane): Promise<boolean> {
    return (await this.client.del(this.keys.handoff(chat))) > 0;
  }

  async erase(chat: ChatLane): Promise<boolean> {
    const desk = deskLaneOf(chat);
    const keys = [
      this.keys.lease(chat),
      this.keys.lane(chat),
      this.keys.inbox(chat),
      this.keys.turnItems(chat),
      this.keys.history(chat),
      this.keys.chat(chat),
      this.keys.handoff(chat),
      this.keys.desk(chat),
      this.keys.lease(desk),
      this.keys.lane(desk),
      this.keys.inbox(desk),
      this.keys.turnItems(desk),
      this.keys.pending,
      this.keys.deskBacklog,
      this.keys.inflight,
      this.keys.parked,
      this.keys.chatCost(chat),
      this.keys.chatTurns(chat),
    ];
    return (await this.run('tsErase', keys, [chat, desk])) === 1;
  }

  async readChat(chat: ChatLane): Promise<{ state: ChatState; history: HistoryEntry[]; handoff: Handoff }> {
    const [fields, entries, handoff] = await Promise.all([
      this.client.hgetall(this.keys.chat(chat)),
      this.client.lrange(this.keys.history(chat), 0, -1),
      this.client.hgetall(this.keys.handoff(chat)),
    ]);
    return {
      state: parseChatState(fields),
      history: entries.map((raw) => JSON.parse(raw) as HistoryEntry),
      handoff: parseHandoff(handoff),
    };
  }
}

/** Hash fields as the scripts take them: field, value, field, value, … */
function fieldPairs(fields: Record<string, string>): string[] {
  return Object.entries(fields).flat();
}
