/** One unit of work for a lane, as stored in its inbox (JSON). */
export interface IngestItem {
  /**
   * Dedup identity: `m:<wamid>` for messages, `s:<wamid>:<status>` for statuses, `cw:m:<id>` and
   * `cw:r:<conversation>:<time>` for Chatwoot events, `api:<id>` for /v1 messages, `d:<uuid>` for
   * desk steps, `r:<wamid>` for a reply WhatsApp refused as outside the window.
   */
  key: string;
  /** The lane (chat, status or desk) whose turn handles it. */
  lane: string;
  /**
   * What the worker does with it: a patient's message, a delivery status, an event from Chatwoot
   * (an agent's reply, a resolved conversation), a step the chat owes the desk (desk lanes), a
   * message from /v1/messages (`api`), or a reply that failed later with 131047 (`reengage`).
   */
  kind: 'message' | 'status' | 'chatwoot' | 'desk' | 'api' | 'reengage';
  /** Arrival time at the receiver (ms since epoch). */
  receivedAt: number;
  phoneNumberId: string;
  /**
   * Meta's message or status object, untouched; for the other kinds their own shape (ChatwootEvent,
   * DeskStep, ApiMessage, ReengageRequest).
   */
  raw: unknown;
  /** The sender's profile from `contacts[]`, when Meta sent one. */
  contact?: { name?: string; waId?: string; userId?: string };
}

export interface IngestResult {
  outcome: IngestOutcome;
  /** The lane's pending episode (its pending score), part of the wake-up job id. */
  episode: string;
}

export enum IngestOutcome {
  Duplicate = 0,
  Enqueued = 1,
  /** Seen before, but its lane still waits: issue the wake-up again (the first may have been lost). */
  DuplicateStillPending = 2,
}

/** Items as stored in a lane's lists (JSON), those that can be read; the rest are left out. */
export function readableItems(entries: readonly string[]): IngestItem[] {
  return entries.flatMap((entry) => {
    try {
      const item = JSON.parse(entry) as IngestItem;
      return item && typeof item === 'object' && typeof item.kind === 'string' ? [item] : [];
    } catch {
      return [];
    }
  });
}
