/** One unit of work for a lane, as stored in its inbox (JSON). */
export interface IngestItem {
  /**
   * Dedup identity: `m:<wamid>` for messages, `s:<wamid>:<status>` for statuses, `cw:<id>` for
   * Chatwoot events, `r:<wamid>` for a reply WhatsApp refused as outside the window.
   */
  key: string;
  /** The lane (chat or status stream) whose turn handles it. */
  lane: string;
  /**
   * What the worker does with it: a patient's message, a delivery status, an event from Chatwoot
   * (an agent's reply, a resolved conversation), a step the chat owes the desk (desk lanes), a
   * message from /v1/messages (`api`), or a reply that failed later with 131047 (`reengage`).
   */
  kind: 'message' | 'status' | 'chatwoot' | 'desk' | 'api' | 'reengage';
  /** Arrival time at the receiver (ms since epoch). */
  receivedAt: number;
  /** The business number it belongs to. */
  phoneNumberId: string;
  /** The item as Meta sent it (message or status object), untouched. */
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
