/**
 * An event from Chatwoot that the chat's own lane must handle, in order with the patient's
 * messages: an agent's reply to relay, or the conversation resolved (the bot answers again).
 * The raw webhook is reduced to this at the receiver; the rest of Chatwoot's payload is not kept.
 */
export type ChatwootEvent =
  | {
      event: 'agent_message';
      /** Chatwoot's message id and conversation (display id). */
      messageId: string;
      conversationId: string;
      content: string;
      /** Files the agent attached (not relayed to WhatsApp). */
      attachments: number;
    }
  | { event: 'resolved'; conversationId: string };
