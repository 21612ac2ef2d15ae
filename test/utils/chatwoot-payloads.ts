import { TEST_PHONE_NUMBER_ID } from './test-env';

/**
 * Webhook bodies as Chatwoot sends them to an API inbox's webhook_url (docs/handover.md §2):
 * `Message#webhook_data` / `Conversation#webhook_data` plus `event`. In webhooks message_type is a
 * string and created_at an ISO time; the conversation is nested in message events and is the top
 * level of conversation events.
 */

export type SenderType = 'user' | 'agent_bot' | 'contact';
export type ConversationStatus = 'open' | 'pending' | 'resolved' | 'snoozed';

export interface AgentMessageInput {
  conversationId: number | string;
  content: string;
  waId: string;
  messageId?: number;
  phoneNumberId?: string;
  inboxId?: number;
  accountId?: number;
  contactId?: number;
  private?: boolean;
  messageType?: 'incoming' | 'outgoing' | 'template';
  senderType?: SenderType;
  /** Null for what an agent typed in Chatwoot; our id for messages we posted ourselves. */
  sourceId?: string | null;
  conversationStatus?: ConversationStatus;
}

export interface StatusChangedInput {
  conversationId: number | string;
  status: ConversationStatus;
  waId: string;
  /** Default: 'open' when becoming resolved, else 'pending'. */
  previousStatus?: ConversationStatus;
  phoneNumberId?: string;
  inboxId?: number;
  accountId?: number;
  contactId?: number;
}

export const CHATWOOT_INBOX_ID = 5;
export const CHATWOOT_ACCOUNT_ID = 1;
const CONTACT_ID = 101;
const AGENT = { id: 3, name: 'Sara Agent', email: 'sara@example.com', type: 'user' };
const BOT = { id: 1, name: 'WA Bot', type: 'agent_bot' };
let nextMessageId = 7001;

/** A `message_created` event: by default a human agent's public reply (what we relay to WhatsApp). */
export function agentMessage(input: AgentMessageInput): Record<string, unknown> {
  const senderType = input.senderType ?? 'user';
  const inboxId = input.inboxId ?? CHATWOOT_INBOX_ID;
  const accountId = input.accountId ?? CHATWOOT_ACCOUNT_ID;
  const contactId = input.contactId ?? CONTACT_ID;
  const now = new Date();
  return {
    event: 'message_created',
    id: input.messageId ?? nextMessageId++,
    content: input.content,
    content_type: 'text',
    content_attributes: {},
    additional_attributes: {},
    message_type: input.messageType ?? (senderType === 'contact' ? 'incoming' : 'outgoing'),
    private: input.private ?? false,
    source_id: input.sourceId ?? null,
    created_at: now.toISOString(),
    sender: senderOf(senderType, input.waId, contactId),
    inbox: { id: inboxId, name: 'WhatsApp Bot' },
    account: { id: accountId, name: 'Test Account' },
    conversation: {
      ...conversationData({ ...input, inboxId, accountId, contactId }, input.conversationStatus ?? 'open', now),
      messages: [],
    },
  };
}

/** A `conversation_status_changed` event, e.g. an agent resolving the chat (back to the bot). */
export function statusChanged(input: StatusChangedInput): Record<string, unknown> {
  const previous = input.previousStatus ?? (input.status === 'resolved' ? 'open' : 'pending');
  const data = conversationData(
    {
      ...input,
      inboxId: input.inboxId ?? CHATWOOT_INBOX_ID,
      accountId: input.accountId ?? CHATWOOT_ACCOUNT_ID,
      contactId: input.contactId ?? CONTACT_ID,
    },
    input.status,
    new Date(),
  );
  return {
    event: 'conversation_status_changed',
    ...data,
    changed_attributes: [{ status: { previous_value: previous, current_value: input.status } }],
    messages: [],
  };
}

function senderOf(type: SenderType, waId: string, contactId: number): Record<string, unknown> {
  switch (type) {
    case 'user':
      return { ...AGENT };
    case 'agent_bot':
      return { ...BOT };
    case 'contact':
      return contactSender(waId, contactId);
  }
}

function contactSender(waId: string, contactId: number): Record<string, unknown> {
  return {
    id: contactId,
    name: 'Test User',
    email: null,
    phone_number: `+${waId}`,
    identifier: `wa:${waId}`,
    thumbnail: '',
    additional_attributes: {},
    custom_attributes: { wa_id: waId },
    type: 'contact',
  };
}

/** Conversation#webhook_data: the conversation's display id, its contact inbox and attributes. */
function conversationData(
  input: {
    conversationId: number | string;
    waId: string;
    phoneNumberId?: string;
    inboxId: number;
    accountId: number;
    contactId: number;
  },
  status: ConversationStatus,
  at: Date,
): Record<string, unknown> {
  const unix = Math.floor(at.getTime() / 1000);
  const assigned = status === 'open';
  return {
    id: Number(input.conversationId),
    account_id: input.accountId,
    inbox_id: input.inboxId,
    status,
    channel: 'Channel::Api',
    can_reply: true,
    contact_inbox: {
      id: input.contactId * 10,
      contact_id: input.contactId,
      inbox_id: input.inboxId,
      source_id: input.waId,
      created_at: at.toISOString(),
      updated_at: at.toISOString(),
      hmac_verified: false,
      pubsub_token: 'fakePubsubToken',
    },
    additional_attributes: { wa_phone_number_id: input.phoneNumberId ?? TEST_PHONE_NUMBER_ID },
    custom_attributes: { handover_reason: 'user_requested' },
    labels: [],
    meta: {
      sender: contactSender(input.waId, input.contactId),
      assignee: assigned ? { id: AGENT.id, name: AGENT.name, type: 'user' } : null,
      assignee_type: assigned ? 'User' : null,
      team: null,
      hmac_verified: false,
    },
    snoozed_until: null,
    unread_count: 0,
    priority: null,
    waiting_since: 0,
    agent_last_seen_at: unix,
    contact_last_seen_at: 0,
    last_activity_at: unix,
    timestamp: unix,
    created_at: unix - 300,
    updated_at: unix + 0.123,
  };
}
