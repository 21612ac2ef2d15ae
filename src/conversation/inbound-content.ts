import { trustedInboundTs } from './service-window';

/**
 * What one inbound message means for a turn. Pure: no I/O, so every type is unit
 * tested against Meta's payload shapes.
 */
export type Inbound =
  /** Text for the LLM (typed text, a button/list title, a location, shared contacts, an order…). */
  | { kind: 'text'; id: string; text: string; timestamp: number }
  /** Media the bot cannot read: described (with its caption) and answered politely. */
  | { kind: 'media'; id: string; text: string; caption?: string; timestamp: number }
  /** A message type WhatsApp itself could not deliver to us: ask to resend as text. */
  | { kind: 'resend'; id: string; timestamp: number }
  /** The patient edited an earlier message: its new text. */
  | { kind: 'edit'; id: string; target: string; text: string; timestamp: number }
  /** The patient deleted an earlier message. */
  | { kind: 'revoke'; id: string; target: string; timestamp: number }
  /** The patient's number changed: the chat's state moves to the new number. */
  | { kind: 'number_change'; id: string; newWaId: string; timestamp: number }
  /** Reactions, identity changes, call events: nothing to answer. */
  | { kind: 'none'; id: string; reason: string; timestamp: number };

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {});
const str = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined);
/** A number as Meta writes it (a number, or digits in a string); Number() of anything else can throw. */
const num = (v: unknown): number | undefined => {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
};
const MEDIA = new Set(['image', 'document', 'audio', 'video', 'sticker']);
/** The new number becomes a chat key: digits only, at most 20 (E.164 has 15). */
const NEW_WA_ID = /^\d{1,20}$/;

/** The message's own timestamp (seconds), when it carries a usable one. */
export function messageTimestamp(raw: unknown): number | undefined {
  return num(obj(raw).timestamp);
}

/**
 * @param arrivedAt when the message reached the receiver, in business time (ms): its timestamp
 *   when it carries none, and what bounds the one it claims (service-window.ts, trustedInboundTs)
 */
export function interpretMessage(raw: unknown, arrivedAt: number = Date.now()): Inbound {
  const m = obj(raw);
  const id = str(m.id) ?? '';
  const timestamp = trustedInboundTs(messageTimestamp(m) || Math.floor(arrivedAt / 1000), arrivedAt);
  const type = str(m.type) ?? 'unknown';
  const base = { id, timestamp };
  const content = describe(type, m[type]);
  if (content) return { ...base, ...content };
  // A message Meta could not fully deliver comes without its payload (or with errors[]): ask again.
  const undelivered = m[type] === undefined || (Array.isArray(m.errors) && m.errors.length > 0);
  if (undelivered && type !== 'reaction' && type !== 'system') return { ...base, kind: 'resend' };
  switch (type) {
    case 'edit': {
      const edit = obj(m.edit);
      const inner = obj(edit.message);
      const innerType = str(inner.type) ?? 'text';
      const described = describe(innerType, inner[innerType]);
      const text = described?.kind === 'media' ? (described.caption ?? described.text) : described?.text;
      return { ...base, kind: 'edit', target: str(edit.original_message_id) ?? '', text: text ?? '' };
    }
    case 'revoke':
      return { ...base, kind: 'revoke', target: str(obj(m.revoke).original_message_id) ?? '' };
    case 'system': {
      const system = obj(m.system);
      const newWaId = str(system.wa_id);
      if (system.type === 'user_changed_number' && newWaId && NEW_WA_ID.test(newWaId)) {
        return { ...base, kind: 'number_change', newWaId };
      }
      return { ...base, kind: 'none', reason: `system_${str(system.type) ?? 'other'}` };
    }
    case 'reaction':
      return { ...base, kind: 'none', reason: 'reaction' };
    case 'unsupported':
    case 'unknown':
      return { ...base, kind: 'resend' };
    default:
      return { ...base, kind: 'none', reason: `type_${type}` };
  }
}

type Described = { kind: 'text'; text: string } | { kind: 'media'; text: string; caption?: string };

/** The content of a message of `type` whose payload is `payload`, or undefined for non-content types. */
function describe(type: string, payload: unknown): Described | undefined {
  if (type === 'contacts') {
    const names = (Array.isArray(payload) ? payload : []).map((c) => str(obj(obj(c).name).formatted_name));
    return { kind: 'text', text: `[shared contacts: ${names.filter(Boolean).join(', ') || 'unnamed'}]` };
  }
  const p = obj(payload);
  if (type === 'text') return { kind: 'text', text: str(p.body) ?? '' };
  if (MEDIA.has(type)) {
    const caption = str(p.caption);
    const what = type === 'audio' && p.voice === true ? 'voice note' : type;
    const file = str(p.filename);
    const text = `[${what}${file ? ` "${file}"` : ''}${caption ? `: ${caption}` : ''}]`;
    return { kind: 'media', text, caption };
  }
  if (type === 'button') return { kind: 'text', text: str(p.text) ?? str(p.payload) ?? '' };
  if (type === 'interactive') return interactive(p);
  if (type === 'location') {
    const place = [str(p.name), str(p.address)].filter(Boolean).join(', ');
    return {
      kind: 'text',
      text: place ? `[location: ${place}]` : `[location: ${num(p.latitude) ?? '?'}, ${num(p.longitude) ?? '?'}]`,
    };
  }
  if (type === 'order') {
    const items = Array.isArray(p.product_items) ? p.product_items.length : 0;
    return { kind: 'text', text: `[order: ${items} item(s)${str(p.text) ? `; note: ${str(p.text)}` : ''}]` };
  }
  return undefined;
}

function interactive(p: Json): Described | undefined {
  const kind = str(p.type);
  if (kind === 'button_reply') return { kind: 'text', text: str(obj(p.button_reply).title) ?? '' };
  if (kind === 'list_reply') return { kind: 'text', text: str(obj(p.list_reply).title) ?? '' };
  if (kind === 'nfm_reply') return { kind: 'text', text: `[form submitted: ${flowSummary(obj(p.nfm_reply))}]` };
  return undefined; // call_permission_reply and other events start no turn
}

/** A short summary of a WhatsApp Flow reply: its field names and values, without the flow token. */
function flowSummary(reply: Json): string {
  let fields: Json = {};
  try {
    fields = obj(JSON.parse(str(reply.response_json) ?? '{}'));
  } catch {
    return str(reply.body) ?? 'form';
  }
  const pairs = Object.entries(fields)
    .filter(([key]) => key !== 'flow_token')
    .slice(0, 10)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  return pairs.join('; ').slice(0, 500) || (str(reply.body) ?? 'form');
}

/** What a turn does with its messages, after edits and revokes are applied in order. */
export interface TurnPlan {
  /** Texts for the LLM, in order (empty: no LLM call). */
  texts: { id: string; text: string }[];
  /** Only unreadable media (no text, no caption): answer with the canned media message. */
  onlyMedia: boolean;
  /** Only unsupported messages: answer with the canned resend message. */
  onlyResend: boolean;
  /** Newest message time (seconds): the 24-hour window runs from it. */
  lastTimestamp: number;
  numberChange?: string;
}

/**
 * Folds a turn's messages: a revoke withdraws a message not yet answered; an edit replaces the text
 * of a message in this turn, or arrives as new text when the original was already answered.
 */
export function planTurn(messages: readonly Inbound[]): TurnPlan {
  const texts: { id: string; text: string }[] = [];
  let media = 0;
  let resend = 0;
  let lastTimestamp = 0;
  let numberChange: string | undefined;
  for (const m of messages) {
    lastTimestamp = Math.max(lastTimestamp, m.timestamp);
    switch (m.kind) {
      case 'text':
        if (m.text) texts.push({ id: m.id, text: m.text });
        break;
      case 'media':
        media++;
        if (m.caption) texts.push({ id: m.id, text: m.text });
        break;
      case 'resend':
        resend++;
        break;
      case 'edit': {
        const original = texts.find((t) => t.id === m.target);
        if (original) original.text = m.text;
        else if (m.text) texts.push({ id: m.id, text: m.text });
        break;
      }
      case 'revoke': {
        const index = texts.findIndex((t) => t.id === m.target);
        if (index >= 0) texts.splice(index, 1);
        break;
      }
      case 'number_change':
        numberChange = m.newWaId;
        break;
      case 'none':
        break;
    }
  }
  return {
    texts,
    onlyMedia: texts.length === 0 && media > 0,
    onlyResend: texts.length === 0 && media === 0 && resend > 0,
    lastTimestamp,
    numberChange,
  };
}
