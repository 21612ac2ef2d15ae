/**
 * Every Redis key the app writes, built from the hash-tagged root (`{tawasul}`) so that all of
 * them, BullMQ's included, live in one Cluster slot and under REDIS_PREFIX (SPEC §5).
 */
export class RedisKeys {
  constructor(readonly root: string) {}

  /** Chats (and status lanes) with work waiting, scored by the time the oldest item arrived. */
  get pending(): string {
    return `${this.root}:pending`;
  }

  /** Raw signed items we could not handle, newest first, capped. */
  get unhandled(): string {
    return `${this.root}:unhandled`;
  }

  /** Seen message ids (`m:<wamid>`) and status events (`s:<wamid>:<status>`). */
  dedup(itemKey: string): string {
    return `${this.root}:seen:${itemKey}`;
  }

  /** A lane's inbox: the items waiting for its next turn, in arrival order. */
  inbox(lane: string): string {
    return `${this.root}:inbox:${lane}`;
  }
}
