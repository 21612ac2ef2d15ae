import { type IngestItem } from '../dedup/ingest-item';
import { chatLane, laneParts } from '../queue/lanes';
import { type ChatwootEvent } from './chatwoot-event';

export type ParsedChatwootWebhook =
  { kind: 'event'; item: IngestItem } | { kind: 'ignored'; reason: string } | { kind: 'invalid'; reason: string };

export interface ChatwootWebhookContext {
  /** CHATWOOT_INBOX_ID when the receiver knows it: events of other inboxes are not ours. */
  inboxId?: string;
  /** The business number, for conversations that do not carry theirs. */
  phoneNumberId?: string;
  receivedAt: number;
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
const id = (v: unknown): string | undefined =>
  (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) || (typeof v === 'string' && /^\d{1,18}$/.test(v))
    ? String(v)
    : undefined;
const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** Lane ids become Redis key parts and job ids: short, and never a `:`. */
const SENDER = /^[A-Za-z0-9_.+-]{1,64}$/;
const ID_PART = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Reduces a Chatwoot webhook to the one thing the chat's lane must do, or says why not.
 * Relayed: `message_created`, outgoing, not private, written by a human (`sender.type` user) and
 * without a source_id (everything this app posts carries one). Resolved: `conversation_status_changed`
 * to resolved. Everything else is deliberately ignored; a relevant event we cannot place is invalid.
 */
export function parseChatwootWebhook(body: Json, ctx: ChatwootWebhookContext): ParsedChatwootWebhook {
  switch (body.event) {
    case 'message_created':
      return agentMessage(body, ctx);
    case 'conversation_status_changed':
      return statusChanged(body, ctx);
    default:
      return { kind: 'ignored', reason: typeof body.event === 'string' ? 'event' : 'no_event' };
  }
}

function agentMessage(body: Json, ctx: ChatwootWebhookContext): ParsedChatwootWebhook {
  // Chatwoot sends message_type as a string in webhooks; older payloads used the enum's integer.
  const outgoing = body.message_type === 'outgoing' || body.message_type === 1;
  if (!outgoing) return { kind: 'ignored', reason: 'not_outgoing' };
  if (body.private !== false && body.private !== undefined) return { kind: 'ignored', reason: 'private' };
  if (obj(body.sender)?.type !== 'user') return { kind: 'ignored', reason: 'not_an_agent' };
  if (body.source_id !== null && body.source_id !== undefined && body.source_id !== '') {
    return { kind: 'ignored', reason: 'own_message' };
  }
  const messageId = id(body.id);
  const conversation = obj(body.conversation);
  const conversationId = id(conversation?.id);
  if (!messageId || !conversation || !conversationId) return { kind: 'invalid', reason: 'message id or conversation' };
  if (!sameInbox(obj(body.inbox)?.id ?? conversation.inbox_id, ctx)) return { kind: 'ignored', reason: 'other_inbox' };
  const lane = laneOf(conversation, ctx);
  if (!lane) return { kind: 'ignored', reason: 'unknown_chat' };
  const attachments = Array.isArray(body.attachments) ? body.attachments.length : 0;
  const content = typeof body.content === 'string' ? body.content : '';
  const event: ChatwootEvent = { event: 'agent_message', messageId, conversationId, content, attachments };
  return { kind: 'event', item: itemOf(`cw:m:${messageId}`, lane, event, ctx) };
}

function statusChanged(body: Json, ctx: ChatwootWebhookContext): ParsedChatwootWebhook {
  if (body.status !== 'resolved') return { kind: 'ignored', reason: 'status' };
  const conversationId = id(body.id);
  if (!conversationId) return { kind: 'invalid', reason: 'conversation id' };
  if (!sameInbox(body.inbox_id, ctx)) return { kind: 'ignored', reason: 'other_inbox' };
  const lane = laneOf(body, ctx);
  if (!lane) return { kind: 'ignored', reason: 'unknown_chat' };
  // A conversation can be resolved, reopened and resolved again: each resolution is its own event;
  // a redelivery of one carries the same update time.
  const at = typeof body.updated_at === 'number' ? body.updated_at : Number(body.timestamp) || ctx.receivedAt / 1000;
  const event: ChatwootEvent = { event: 'resolved', conversationId };
  return { kind: 'event', item: itemOf(`cw:r:${conversationId}:${at}`, lane, event, ctx) };
}

function sameInbox(inboxId: unknown, ctx: ChatwootWebhookContext): boolean {
  return ctx.inboxId === undefined || inboxId === undefined || id(inboxId) === ctx.inboxId;
}

/**
 * The WhatsApp chat of a conversation: the contact's `wa:<wa_id>` identifier, else its contact
 * inbox's source_id (the hand-over sets it to the wa_id); the business number is kept in the
 * conversation's additional attributes.
 */
function laneOf(conversation: Json, ctx: ChatwootWebhookContext): string | undefined {
  const sender = obj(obj(conversation.meta)?.sender);
  const identifier = text(sender?.identifier);
  const sourceId = text(obj(conversation.contact_inbox)?.source_id);
  // A contact inbox an agent created by hand has a generated uuid: only digits are a wa_id.
  const waId =
    (identifier?.startsWith('wa:') ? identifier.slice(3) : undefined) ??
    (sourceId && /^\d{6,20}$/.test(sourceId) ? sourceId : undefined);
  const phoneNumberId = text(obj(conversation.additional_attributes)?.wa_phone_number_id) ?? ctx.phoneNumberId;
  if (!waId || !SENDER.test(waId) || !phoneNumberId || !ID_PART.test(phoneNumberId)) return undefined;
  return chatLane(phoneNumberId, waId);
}

function itemOf(key: string, lane: string, event: ChatwootEvent, ctx: ChatwootWebhookContext): IngestItem {
  const { phoneNumberId } = laneParts(lane);
  return { key, lane, kind: 'chatwoot', receivedAt: ctx.receivedAt, phoneNumberId, raw: event };
}
