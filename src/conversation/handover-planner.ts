import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { type IngestItem } from '../dedup/ingest-item';
import { EscalationNotifier } from '../escalation/escalation-notifier';
import { laneParts } from '../queue/lanes';
import { HANDOFF_MAX_SECONDS } from './conversation.store';
import { type DeskStep } from './desk-steps';
import { interpretMessage, type Inbound } from './inbound-content';
import { type HistoryEntry, type TurnEscalation } from './turn.types';

const REASONS: Record<TurnEscalation['trigger'], string> = {
  keyword: "the patient's message contains escalation keywords",
  human_request: 'the patient asked to talk to a person',
  marker: 'the assistant decided a person should answer',
  exhausted: 'the assistant could not answer (the LLM kept failing)',
  window_closed:
    "the patient's 24-hour WhatsApp window closed before the answer went out and no re-engagement template is configured: only a template or a call can reach them now",
  action_unknown:
    "a booking action sent to the clinic's system got no answer, so whether it was done is unknown; it was not repeated: check the clinic's system and confirm with the patient",
};

/**
 * What a hand-over and a paused chat owe the humans' systems, as desk steps (done later, in order,
 * by the chat's desk lane). Pure apart from configuration: the turn commits these steps atomically
 * with its history, so a retried turn never queues them twice.
 */
@Injectable()
export class HandoverPlanner {
  constructor(
    private readonly config: AppConfig,
    private readonly notifier: EscalationNotifier,
  ) {}

  reasonOf(escalation: TurnEscalation): string {
    return REASONS[escalation.trigger];
  }

  /** With Chatwoot, until resolved (at most 7 days); without, HANDOFF_PAUSE_SECONDS. */
  get pauseSeconds(): number {
    return this.config.chatwootEnabled ? HANDOFF_MAX_SECONDS : this.config.env.HANDOFF_PAUSE_SECONDS;
  }

  /**
   * Chatwoot: the conversation, the whole history in order, a private note with the reason, then
   * open; and the escalation notice. `history` already holds this turn's entries.
   */
  handoverSteps(chat: string, turnId: string, escalation: TurnEscalation, history: HistoryEntry[], name?: string) {
    const steps: DeskStep[] = [];
    const reason = this.reasonOf(escalation);
    if (this.config.chatwootEnabled && escalation.pause) {
      steps.push({ op: 'open', reason: escalation.trigger, name });
      for (const entry of history) {
        if (!entry.text.trim()) continue;
        steps.push({
          op: 'post',
          post: {
            content: entry.text,
            direction: entry.role === 'user' ? 'incoming' : 'outgoing',
            private: false,
            sourceId: entry.ids?.[0] ?? `h.${turnId}.${entry.at}`,
          },
        });
      }
      const note = this.note(chat, escalation, reason, name);
      steps.push({
        op: 'post',
        post: { content: note, direction: 'outgoing', private: true, sourceId: `n.${turnId}` },
      });
      steps.push({ op: 'activate' });
    }
    if (this.notifier.enabled) steps.push({ op: 'notify', trigger: escalation.trigger, reason, at: Date.now() });
    return steps;
  }

  /** A paused chat's new messages, mirrored as incoming (media as its description and caption). */
  mirrorSteps(items: readonly IngestItem[]): DeskStep[] {
    if (!this.config.chatwootEnabled) return [];
    const steps: DeskStep[] = [];
    for (const item of items) {
      const content = mirrorText(interpretMessage(item.raw));
      const id = (item.raw as { id?: string }).id ?? item.key;
      if (content) steps.push({ op: 'post', post: { content, direction: 'incoming', private: false, sourceId: id } });
    }
    return steps;
  }

  /** The agents' private note on an agent reply that could not reach the patient. */
  unsentNote(turnId: string, messageId: string, conversationId: string, why: string): DeskStep {
    const content = `Not delivered to the patient on WhatsApp: ${why}`;
    return {
      op: 'post',
      conversationId,
      post: { content, direction: 'outgoing', private: true, sourceId: `n.${turnId}.${messageId}` },
    };
  }

  private note(chat: string, escalation: TurnEscalation, reason: string, name?: string): string {
    const matched = escalation.matched?.length ? ` (${escalation.matched.join(', ')})` : '';
    const { sender } = laneParts(chat);
    const who = /^\d+$/.test(sender) ? `+${sender}` : sender;
    return [
      `Hand-over from the WhatsApp assistant: ${reason}.`,
      `Trigger: ${escalation.trigger}${matched}.`,
      `Patient: ${name ?? 'name unknown'}, ${who}.`,
      'The assistant stays quiet in this chat until the conversation is resolved.',
    ].join('\n');
  }
}

function mirrorText(inbound: Inbound): string | undefined {
  switch (inbound.kind) {
    case 'text':
    case 'media':
      return inbound.text || undefined;
    case 'edit':
      return `[edited] ${inbound.text}`;
    case 'revoke':
      return '[the patient deleted a message]';
    case 'resend':
      return '[a message WhatsApp could not show us; ask the patient to send it as text]';
    case 'number_change':
      return `[the patient changed their WhatsApp number to +${inbound.newWaId}]`;
    case 'none':
      return undefined;
  }
}
