import { type SandboxOutboxEntry } from '../bsp/sandbox-bsp.client';
import { senderOfWamid } from './sandbox-wamid';

/** Meta's `pricing` object of a status, as the page echoes it for a message it received. */
export interface StatusPricing {
  billable: boolean;
  pricing_model: 'PMP';
  category: string;
  type: 'regular' | 'free_customer_service';
}

/** A bot message as the patient's phone sees it. */
export interface SandboxMessageEvent {
  type: 'message';
  /** The wamid the statuses the page sends back must name. */
  id: string;
  at: number;
  kind: 'text' | 'template';
  text: string;
  /** A template's name and language, for the page to label it. */
  template?: { name: string; language: string };
  /** Our part key: Meta echoes it in every status of the message. */
  callbackData?: string;
  /** What Meta would report on this message's statuses. */
  pricing: StatusPricing;
}

/** The business marked the patient's messages read (up to `messageId`), maybe typing a reply. */
export interface SandboxReadEvent {
  type: 'read';
  messageId: string;
  typing: boolean;
  at: number;
}

export type SandboxPageEvent = SandboxMessageEvent | SandboxReadEvent;

/** Prices a message as Meta would bill it: the sandbox's stand-in for the pricing on statuses. */
export type PriceOf = (to: string, category: string, inWindow: boolean) => number;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * The event an outbox entry is for the page of `waId`, or undefined when it belongs to another
 * number (or is nothing the page shows). Sends name their recipient; a mark-read names only the
 * message, whose Meta-shaped id names the sender.
 */
export function pageEventOf(entry: SandboxOutboxEntry, waId: string, priceOf: PriceOf): SandboxPageEvent | undefined {
  const payload = isObject(entry.payload) ? entry.payload : {};
  if (entry.operation === 'read') {
    const messageId = str(payload.message_id);
    if (!messageId || senderOfWamid(messageId) !== waId) return undefined;
    return { type: 'read', messageId, typing: isObject(payload.typing_indicator), at: entry.at };
  }
  const to = str(payload.to) ?? str(payload.recipient);
  if (to !== waId || !entry.id) return undefined;
  const callbackData = str(payload.biz_opaque_callback_data);
  if (entry.operation === 'text' && isObject(payload.text)) {
    return {
      type: 'message',
      id: entry.id,
      at: entry.at,
      kind: 'text',
      text: str(payload.text.body) ?? '',
      callbackData,
      // Free-form text only goes out inside the window: a service message.
      pricing: pricingOf(priceOf(to, 'service', true), 'service'),
    };
  }
  if (entry.operation === 'template' && isObject(payload.template)) {
    const template = payload.template;
    const language = isObject(template.language) ? (str(template.language.code) ?? '') : '';
    return {
      type: 'message',
      id: entry.id,
      at: entry.at,
      kind: 'template',
      text: templateText(template),
      template: { name: str(template.name) ?? '', language },
      callbackData,
      // The send does not carry the template's category; re-engagement templates are utility
      // unless configured otherwise, and go out because the window is closed.
      pricing: pricingOf(priceOf(to, 'utility', false), 'utility'),
    };
  }
  return undefined;
}

function pricingOf(usd: number, category: string): StatusPricing {
  const billable = usd > 0;
  return { billable, pricing_model: 'PMP', category, type: billable ? 'regular' : 'free_customer_service' };
}

/** The approved text is not known here: the parameters are what the patient would see filled in. */
function templateText(template: Json): string {
  const values: string[] = [];
  for (const component of Array.isArray(template.components) ? template.components : []) {
    if (!isObject(component) || !Array.isArray(component.parameters)) continue;
    for (const parameter of component.parameters) {
      if (!isObject(parameter)) continue;
      const value = str(parameter.text) ?? str(parameter.payload);
      if (value) values.push(value);
    }
  }
  return values.join(' · ');
}
