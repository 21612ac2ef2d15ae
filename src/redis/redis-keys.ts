import { type ChatLane } from '../queue/lanes';

/**
 * Every Redis key the app writes, built from the hash-tagged root (`{tawasul}`) so that all of
 * them, BullMQ's included, live in one Cluster slot and under REDIS_PREFIX.
 */
export class RedisKeys {
  constructor(readonly root: string) {}

  /** Lanes (chat, status, desk) with work waiting, scored by when the oldest waiting item arrived. */
  get pending(): string {
    return `${this.root}:pending`;
  }

  /**
   * Lanes whose turn is held, scored by when the holder's lease runs out: a score in the past is a
   * turn whose worker died or let go mid-turn, for the sweeper to re-arm at once.
   */
  get inflight(): string {
    return `${this.root}:inflight`;
  }

  /** Lanes parked until a not-before time (the score): overdue ones lost their delayed wake-up. */
  get parked(): string {
    return `${this.root}:parked`;
  }

  /** Raw signed items we could not handle, newest first, capped. */
  get unhandled(): string {
    return `${this.root}:unhandled`;
  }

  /** An ingested item already seen, by its IngestItem key (`m:<wamid>`, `s:<wamid>:<status>`, `cw:…`, `r:<wamid>`). */
  dedup(itemKey: string): string {
    return `${this.root}:seen:${itemKey}`;
  }

  /** A lane's inbox: the items waiting for its next turn, in arrival order. */
  inbox(lane: string): string {
    return `${this.root}:inbox:${lane}`;
  }

  /** A lane's scheduling state (hash): fence counter, not-before time, the turn in flight, rate window. */
  lane(lane: string): string {
    return `${this.root}:lane:${lane}`;
  }

  /** The items of a lane's turn in flight (moved there from the inbox when the turn takes them). */
  turnItems(lane: string): string {
    return `${this.root}:turn:${lane}`;
  }

  /** The lane's lease: holds the fencing token of the one worker allowed to act on it. */
  lease(lane: string): string {
    return `${this.root}:lease:${lane}`;
  }

  /** A chat's history (list of JSON entries, oldest first). */
  history(chat: ChatLane): string {
    return `${this.root}:chat:${chat}:history`;
  }

  /** A chat's state (hash, ChatState): last inbound time, language, holding and window flags, name. */
  chat(chat: ChatLane): string {
    return `${this.root}:chat:${chat}:state`;
  }

  /**
   * A chat's hand-over (hash: state, Chatwoot conversation id, since). Present only while a human
   * has the chat; its TTL is the pause (HANDOFF_PAUSE_SECONDS, or at most 7 days with Chatwoot).
   */
  handoff(chat: ChatLane): string {
    return `${this.root}:chat:${chat}:handoff`;
  }

  /**
   * What the desk lane knows of a chat's Chatwoot side (hash): contact and conversation ids, and the
   * post in flight whose outcome is not known yet.
   */
  desk(chat: ChatLane): string {
    return `${this.root}:chat:${chat}:desk`;
  }

  /** A Chatwoot message this app created: never relayed back to WhatsApp. */
  deskOwn(messageId: string): string {
    return `${this.root}:cwown:${messageId}`;
  }

  /** How many desk steps wait across every chat (a counter, for the backlog gauge). */
  get deskBacklog(): string {
    return `${this.root}:desk:backlog`;
  }

  /** Outbound message record by wamid (which chat, turn and part; status; cost). */
  outbound(wamid: string): string {
    return `${this.root}:out:${wamid}`;
  }

  /** wamid confirmed for a part key (biz_opaque_callback_data), from a send answer or a status. */
  partAck(partKey: string): string {
    return `${this.root}:ack:${partKey}`;
  }

  /**
   * One UTC day of the cost ledger (hash): message counts and micro-USD per side (estimated,
   * billed) and category. Kept 13 months.
   */
  costDay(day: string): string {
    return `${this.root}:cost:${day}`;
  }

  /** Marks a wamid as counted on one side of the ledger, so repeated statuses count it once. */
  costOnce(side: 'estimated' | 'billed', wamid: string): string {
    return `${this.root}:costonce:${side}:${wamid}`;
  }

  /** The first answer to a /v1 request with this idempotency key (hashed), kept 24 h. */
  apiIdempotency(keyHash: string): string {
    return `${this.root}:idem:${keyHash}`;
  }

  /**
   * A chat's estimated spend (integer micro-USD): what /sandbox shows per chat, where the ledger
   * only keeps days. Kept as long as the chat's history.
   */
  chatCost(chat: ChatLane): string {
    return `${this.root}:chat:${chat}:cost`;
  }

  /** A chat's last turns' timings (JSON `{at, ms, outcome}`, newest first, capped), for /sandbox. */
  chatTurns(chat: ChatLane): string {
    return `${this.root}:chat:${chat}:turns`;
  }

  /**
   * The sandbox's demo clinic (src/sandbox/demo-clinic.service.ts): `slots` (hash: taken slot id →
   * booking id), `bookings` (hash: booking id → JSON), and `idem:<hash>` (the first answer to an
   * Idempotency-Key). Each expires after a week without writes.
   */
  demoClinic(part: 'slots' | 'bookings' | `idem:${string}`): string {
    return `${this.root}:democlinic:${part}`;
  }
}
