import secureJsonParse from 'secure-json-parse';
import { statusLane, chatLane } from '../queue/lanes';
import { type IngestItem } from '../dedup/ingest-item';

/** Types the worker knows how to answer or deliberately skip; others are kept raw. */
export const KNOWN_MESSAGE_TYPES = new Set([
  'text',
  'image',
  'audio',
  'video',
  'document',
  'sticker',
  'location',
  'contacts',
  'interactive',
  'button',
  'reaction',
  'order',
  'system',
  'unsupported',
  'unknown',
  'edit',
  'revoke',
]);

/*
 * Ids from the payload become Redis keys (dedup, inbox, chat state) and BullMQ job ids: each is
 * held to its real shape and length first. None may contain `:`: a job id cannot, and the dedup
 * key `s:<id>:<status>` must not be ambiguous.
 */
const ID_PART = /^[A-Za-z0-9_-]{1,64}$/;
/** A wamid is `wamid.` and base64: about 60 characters today; 256 leaves room for a longer format. */
export const MESSAGE_ID = /^[A-Za-z0-9._=+/-]{1,256}$/;
/** A WhatsApp number: E.164 digits without `+` (at most 15; 20 leaves room). */
export const WA_ID = /^\d{1,20}$/;
/** Business-scoped user ids (`AE.1234567890123`, `US.ENT.…`) and group ids. */
export const SCOPED_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** sent, delivered, read, failed, played, deleted… */
const STATUS = /^[a-z_]{1,32}$/;

export interface ParsedWebhook {
  items: IngestItem[];
  /** Raw JSON of items we could not handle, with the reason as `kind` (a metric label). */
  unhandled: { kind: string; raw: string }[];
  /** Changes deliberately ignored (other object, field or number). */
  ignored: number;
}

/**
 * Far deeper than any Meta payload (about 12 levels). V8 parses nesting much deeper than it can
 * serialise again, and every later step (keeping an item raw, storing it) serialises.
 */
export const MAX_NESTING = 64;

/** True when a parsed JSON value nests deeper than `max`; iterative, so depth itself cannot overflow it. */
export function exceedsNesting(value: unknown, max = MAX_NESTING): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (typeof node !== 'object' || node === null) continue;
    if (depth >= max) return true;
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
  return false;
}

/**
 * JSON.parse for bodies from outside. A `__proto__` key (or `constructor.prototype`) is refused
 * with a SyntaxError, like invalid JSON: as an own property it would poison any later object
 * spread or assign that copies it.
 */
export function parseUntrustedJson(raw: Buffer | string): unknown {
  return secureJsonParse(raw, null, { protoAction: 'error', constructorAction: 'error' });
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const asArray = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const asString = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);
const idOf = (v: unknown, shape: RegExp): string | undefined =>
  typeof v === 'string' && shape.test(v) ? v : undefined;

/**
 * Turns a verified webhook body into lane items. Handles every entry[], changes[], messages[] and
 * statuses[] (Meta batches up to 1000 updates). Never throws on odd shapes inside a signed body:
 * what it cannot key is kept raw (Meta would otherwise retry it for a week).
 *
 * @param ownNumber the deployment's phone_number_id; undefined accepts any (sandbox)
 */
export function parseWebhook(body: Json, ownNumber: string | undefined, receivedAt: number): ParsedWebhook {
  const parsed: ParsedWebhook = { items: [], unhandled: [], ignored: 0 };
  if (body.object !== 'whatsapp_business_account') {
    parsed.ignored++;
    return parsed;
  }
  if (!Array.isArray(body.entry)) {
    parsed.unhandled.push({ kind: 'payload', raw: JSON.stringify(body) });
    return parsed;
  }
  for (const entry of body.entry) {
    const changes: unknown = isObject(entry) ? entry.changes : undefined;
    if (!Array.isArray(changes)) {
      parsed.unhandled.push({ kind: 'entry', raw: JSON.stringify(entry) });
      continue;
    }
    for (const change of changes) parseChange(change, ownNumber, receivedAt, parsed);
  }
  return parsed;
}

function parseChange(change: unknown, ownNumber: string | undefined, receivedAt: number, out: ParsedWebhook): void {
  if (!isObject(change) || change.field !== 'messages') {
    out.ignored++;
    return;
  }
  const value = change.value;
  const metadata = isObject(value) && isObject(value.metadata) ? value.metadata : undefined;
  const phoneNumberId = asString(metadata?.phone_number_id);
  if (!isObject(value) || !phoneNumberId || !ID_PART.test(phoneNumberId)) {
    out.unhandled.push({ kind: 'change', raw: JSON.stringify(change) });
    return;
  }
  if (ownNumber !== undefined && phoneNumberId !== ownNumber) {
    out.ignored++;
    return;
  }
  const contacts = asArray(value.contacts).filter(isObject);
  for (const message of asArray(value.messages)) {
    const result = messageItem(message, phoneNumberId, contacts, receivedAt);
    if (result.item) out.items.push(result.item);
    else out.unhandled.push({ kind: result.reason, raw: JSON.stringify(message) });
  }
  for (const status of asArray(value.statuses)) {
    const item = statusItem(status, phoneNumberId, receivedAt);
    if (item) out.items.push(item);
    else out.unhandled.push({ kind: 'status', raw: JSON.stringify(status) });
  }
  for (const error of asArray(value.errors)) out.unhandled.push({ kind: 'error', raw: JSON.stringify(error) });
}

function messageItem(
  message: unknown,
  phoneNumberId: string,
  contacts: Json[],
  receivedAt: number,
): { item: IngestItem; reason?: never } | { item?: never; reason: string } {
  if (!isObject(message)) return { reason: 'message_shape' };
  const id = asString(message.id);
  if (!id || !MESSAGE_ID.test(id)) return { reason: 'message_id' };
  // A chat is keyed by `from`, else the business-scoped user id (usernames hide the number). A
  // `from` of another type is a bad sender, not a missing one: the worker answers `from` when set.
  const from = message.from;
  const sender =
    from === undefined || from === null || from === '' ? idOf(message.from_user_id, SCOPED_ID) : idOf(from, WA_ID);
  if (!sender) return { reason: 'message_sender' };
  const type = asString(message.type);
  if (!type || !KNOWN_MESSAGE_TYPES.has(type)) return { reason: 'message_type' };
  // The new number becomes the chat's key when the worker moves the chat to it.
  if (type === 'system' && isObject(message.system) && message.system.type === 'user_changed_number') {
    if (!idOf(message.system.wa_id, WA_ID)) return { reason: 'message_number_change' };
  }
  // Only the sender's own contact entry; a lone entry is Meta's usual shape for a single sender.
  const profile =
    contacts.find((c) => c.wa_id === sender || c.user_id === sender) ??
    (contacts.length === 1 ? contacts[0] : undefined);
  const name = profile && isObject(profile.profile) ? asString(profile.profile.name) : undefined;
  const item: IngestItem = {
    key: `m:${id}`,
    lane: chatLane(phoneNumberId, sender),
    kind: 'message',
    receivedAt,
    phoneNumberId,
    raw: message,
    contact: profile ? { name, waId: asString(profile.wa_id), userId: asString(profile.user_id) } : undefined,
  };
  return { item };
}

function statusItem(status: unknown, phoneNumberId: string, receivedAt: number): IngestItem | undefined {
  if (!isObject(status)) return undefined;
  const id = idOf(status.id, MESSAGE_ID);
  const state = idOf(status.status, STATUS);
  // A status for a group message names the group, not a number.
  const recipientId = asString(status.recipient_id);
  const recipient =
    recipientId !== undefined
      ? idOf(recipientId, status.recipient_type === 'group' ? SCOPED_ID : WA_ID)
      : idOf(status.recipient_user_id, SCOPED_ID);
  if (!id || !state || !recipient) return undefined;
  return {
    key: `s:${id}:${state}`,
    lane: statusLane(phoneNumberId, recipient),
    kind: 'status',
    receivedAt,
    phoneNumberId,
    raw: status,
  };
}
