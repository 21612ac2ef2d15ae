/** The patient as the human desk knows them. */
export interface DeskContact {
  /** WhatsApp id (digits): the contact's identifier is `wa:<waId>`, its phone `+<waId>`. */
  waId: string;
  /** WhatsApp profile name, when Meta sent one. */
  name?: string;
  /** The business number the chat belongs to; kept on the conversation so its webhooks find the chat. */
  phoneNumberId: string;
}

export interface DeskConversation {
  contactId: string;
  conversationId: string;
}

export interface DeskPost {
  content: string;
  /** `incoming`: the patient wrote it; `outgoing`: the bot or an agent did. */
  direction: 'incoming' | 'outgoing';
  /** A private note: agents see it, the patient never does. */
  private: boolean;
  /**
   * Our id of the message (a wamid, a turn id, …), stored as the desk message's source_id: it finds
   * a post whose outcome was unknown, and marks the message as ours so it is never relayed back.
   */
  sourceId: string;
}

/**
 * Why a desk call failed, and what the caller does about it:
 * - `unavailable`: network error, timeout, 5xx or 429. Retry with backoff; nothing is lost.
 * - `config`: 401/403, a redirect, or a 404 where every desk has a route: the URL, token, account
 *   or inbox is wrong. A human must act; retry slowly.
 * - `not_found`: the conversation is gone (deleted by an admin). Find or create another one.
 * - `rejected`: any other 4xx. This request will never succeed as it is.
 */
export type DeskErrorKind = 'unavailable' | 'config' | 'not_found' | 'rejected';

export class DeskError extends Error {
  override readonly name = 'DeskError';

  constructor(
    readonly kind: DeskErrorKind,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/**
 * Port: the human agents' desk (Chatwoot's Application API). Every method either succeeds or
 * throws a DeskError; none retries on its own (the desk lane retries, with backoff, under its
 * lease). Calls must be safe to repeat after a crash: repeating one never creates a second
 * contact, contact inbox or conversation.
 */
export abstract class EscalationDesk {
  /**
   * Finds or creates the contact (identifier `wa:<waId>`, else the same phone number), its contact
   * inbox in the configured inbox (source_id = waId), and a conversation there that is open or
   * pending — the newest one — or creates one (status open). `reason` goes into the new
   * conversation's custom attributes.
   */
  abstract ensureConversation(contact: DeskContact, reason: string): Promise<DeskConversation>;

  /** Posts one message into the conversation; returns the desk's id of the new message. */
  abstract postMessage(conversationId: string, post: DeskPost): Promise<string>;

  /**
   * The desk's id of a message with this source_id among the conversation's latest messages (the
   * newest page), if any: settles a post whose outcome is unknown.
   */
  abstract findMessage(conversationId: string, sourceId: string): Promise<string | undefined>;

  /** Sets the conversation's status to open: a human has the chat now. */
  abstract openConversation(conversationId: string): Promise<void>;
}
