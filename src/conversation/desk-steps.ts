import { randomUUID } from 'node:crypto';
import { type IngestItem } from '../dedup/ingest-item';
import { type DeskPost } from '../escalation/escalation-desk';
import { deskLaneOf, laneParts } from '../queue/lanes';

/**
 * What a chat owes the humans' systems, queued on its desk lane and done in order:
 * - `open`: find or create the Chatwoot contact, contact inbox and conversation;
 * - `post`: one message into the chat's conversation (or into `conversationId`, e.g. a note
 *   answering an agent in the conversation they wrote from);
 * - `activate`: set the conversation open, once the history is in it;
 * - `forget`: the conversation was resolved, the next hand-over finds or creates another;
 * - `notify`: the ESCALATION_WEBHOOK_URL notice.
 */
export type DeskStep =
  | { op: 'open'; reason: string; name?: string }
  | { op: 'post'; post: DeskPost; conversationId?: string }
  | { op: 'activate' }
  | { op: 'forget'; conversationId: string }
  | { op: 'notify'; trigger: string; reason: string; at: number };

/** Desk steps as items of the chat's desk lane (JSON, for the atomic turn commit). */
export function deskItems(chat: string, steps: readonly DeskStep[]): { lane: string; items: string[] } | undefined {
  if (steps.length === 0) return undefined;
  const lane = deskLaneOf(chat);
  const { phoneNumberId } = laneParts(chat);
  const receivedAt = Date.now();
  const items = steps.map((step) => {
    const item: IngestItem = { key: `d:${randomUUID()}`, lane, kind: 'desk', receivedAt, phoneNumberId, raw: step };
    return JSON.stringify(item);
  });
  return { lane, items };
}
