import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { type ChatState, type ReplyTemplate, type StoredReply, type TemplateCategory } from './turn.types';

/**
 * REENGAGEMENT_TEMPLATE (`name:language`, optionally `:category`, utility by default): what a reply
 * that meets a closed window becomes (docs/window.md). It goes out once per closed
 * window — the window is named by the patient's last message time — however many replies, agent
 * messages or late 131047 failures meet it; without the variable a closed window hands the chat
 * over instead.
 */
@Injectable()
export class Reengagement {
  private readonly template?: { name: string; language: string; category: TemplateCategory };

  constructor(config: AppConfig) {
    const raw = config.env.REENGAGEMENT_TEMPLATE;
    if (raw) {
      const [name, language, category = 'utility'] = raw.split(':');
      this.template = { name, language, category: category as TemplateCategory };
    }
  }

  get configured(): boolean {
    return this.template !== undefined;
  }

  /** The template for this chat's closed window, or undefined: none configured, or already sent. */
  templateFor(state: ChatState): ReplyTemplate | undefined {
    if (!this.template || this.alreadySent(state)) return undefined;
    return { ...this.template, inWindow: false, purpose: 'reengagement' };
  }

  alreadySent(state: ChatState): boolean {
    return state.reengagedFor !== undefined && state.reengagedFor === (state.lastInboundTs ?? 0);
  }

  /** The chat-state fields that record it went out for this window. */
  sentState(state: ChatState): Partial<ChatState> {
    return { windowClosed: true, reengagedFor: state.lastInboundTs ?? 0 };
  }
}

/** The `raw` of a `reengage` item: which reply WhatsApp refused, and when it was sent (ms). */
export interface ReengageRequest {
  wamid: string;
  sentAt?: number;
}

/** What the history shows of a template part. */
export function templateText(template: ReplyTemplate): string {
  const values = [...(template.headerParameters ?? []), ...(template.bodyParameters ?? [])];
  return `[template ${template.name}${values.length > 0 ? `: ${values.join(' | ')}` : ''}]`;
}

/**
 * The reply with its unsent parts replaced by one template part: the parts already confirmed stay
 * as they are (never resent), and the template goes out after them.
 */
export function replaceUnsentWithTemplate(reply: StoredReply, template: ReplyTemplate): StoredReply {
  const firstUnsent = reply.sent.findIndex((wamid) => !wamid);
  const keep = firstUnsent === -1 ? reply.parts.length : firstUnsent;
  const templates: Record<string, ReplyTemplate> = {};
  for (const [index, t] of Object.entries(reply.templates ?? {})) if (Number(index) < keep) templates[index] = t;
  templates[String(keep)] = template;
  return {
    ...reply,
    parts: [...reply.parts.slice(0, keep), templateText(template)],
    sent: [...reply.sent.slice(0, keep), null],
    sending: [...reply.sending.slice(0, keep), null],
    templates,
  };
}

export function templateReply(kind: StoredReply['kind'], template: ReplyTemplate): StoredReply {
  const text = templateText(template);
  return { kind, text, parts: [text], sent: [null], sending: [null], templates: { '0': template } };
}
