import { type MarkReadInput, type SendTemplateInput, type SendTextInput } from './bsp.client';

/** A Cloud API request body, as sent to Meta and 360dialog alike. */
export type CloudApiBody = Record<string, unknown>;

/**
 * A wa_id goes in `to`. A business-scoped user id (a user who hides their number, e.g.
 * 'AE.1234567890123') is reported to go in `recipient` instead:
 * kept here, in one place, until Meta documents it.
 */
export function recipientField(to: string): { to: string } | { recipient: string } {
  return /^\+?\d+$/.test(to) ? { to } : { recipient: to };
}

function envelope(to: string, callbackData: string | undefined): CloudApiBody {
  return {
    messaging_product: 'whatsapp',
    recipient_type: 'individual',
    ...recipientField(to),
    ...(callbackData !== undefined ? { biz_opaque_callback_data: callbackData } : {}),
  };
}

export function textBody(input: SendTextInput): CloudApiBody {
  return {
    ...envelope(input.to, input.callbackData),
    ...(input.replyTo !== undefined ? { context: { message_id: input.replyTo } } : {}),
    type: 'text',
    // Previews off: a link in an LLM reply must not pull a third-party page into the chat.
    text: { preview_url: false, body: input.body },
  };
}

export function templateBody(input: SendTemplateInput): CloudApiBody {
  const text = (values: string[]): { type: 'text'; text: string }[] =>
    values.map((value) => ({ type: 'text', text: value }));
  const components: Record<string, unknown>[] = [];
  if (input.headerParameters?.length) components.push({ type: 'header', parameters: text(input.headerParameters) });
  if (input.bodyParameters?.length) components.push({ type: 'body', parameters: text(input.bodyParameters) });
  for (const button of input.buttons ?? []) {
    components.push({
      type: 'button',
      sub_type: button.subType,
      index: String(button.index),
      parameters: [
        button.subType === 'quick_reply'
          ? { type: 'payload', payload: button.parameter }
          : { type: 'text', text: button.parameter },
      ],
    });
  }
  return {
    ...envelope(input.to, input.callbackData),
    type: 'template',
    template: {
      name: input.name,
      language: { policy: 'deterministic', code: input.language },
      ...(components.length > 0 ? { components } : {}),
    },
  };
}

export function markReadBody(input: MarkReadInput): CloudApiBody {
  return {
    messaging_product: 'whatsapp',
    status: 'read',
    message_id: input.messageId,
    ...(input.typing ? { typing_indicator: { type: 'text' } } : {}),
  };
}
