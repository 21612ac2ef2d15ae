import { parseChatwootWebhook } from './chatwoot-webhook.parser';

const ctx = { inboxId: '5', phoneNumberId: '100000000000001', receivedAt: 1_767_225_900_000 };

function agentReply(over: Record<string, unknown> = {}, conversation: Record<string, unknown> = {}) {
  return {
    event: 'message_created',
    id: 7001,
    content: 'Hi, this is Sara.',
    message_type: 'outgoing',
    private: false,
    source_id: null,
    sender: { id: 3, name: 'Sara', type: 'user' },
    inbox: { id: 5, name: 'WhatsApp Bot' },
    conversation: {
      id: 42,
      inbox_id: 5,
      contact_inbox: { source_id: '971500000001' },
      additional_attributes: { wa_phone_number_id: '100000000000002' },
      meta: { sender: { identifier: 'wa:971500000001', type: 'contact' } },
      ...conversation,
    },
    ...over,
  };
}

describe('parseChatwootWebhook', () => {
  it('an agent reply becomes an agent_message item on the chat lane of the conversation', () => {
    const parsed = parseChatwootWebhook(agentReply(), ctx);
    expect(parsed).toEqual({
      kind: 'event',
      item: {
        key: 'cw:m:7001',
        lane: 'c.100000000000002.971500000001',
        kind: 'chatwoot',
        receivedAt: ctx.receivedAt,
        phoneNumberId: '100000000000002',
        raw: {
          event: 'agent_message',
          messageId: '7001',
          conversationId: '42',
          content: 'Hi, this is Sara.',
          attachments: 0,
        },
      },
    });
  });

  it.each([
    ['a private note', { private: true }, 'private'],
    ['an incoming message (our own mirror)', { message_type: 'incoming' }, 'not_outgoing'],
    ['a template message', { message_type: 'template' }, 'not_outgoing'],
    ['an activity message', { message_type: 2 }, 'not_outgoing'],
    ['a message from an agent bot (our own token)', { sender: { id: 1, type: 'agent_bot' } }, 'not_an_agent'],
    ['a message with a source_id (we posted it)', { source_id: 't.abc.0' }, 'own_message'],
    ['a message of another inbox', { inbox: { id: 9 } }, 'other_inbox'],
    ['another event', { event: 'message_updated' }, 'event'],
  ])('ignores %s', (_name, over, reason) => {
    expect(parseChatwootWebhook(agentReply(over), ctx)).toEqual({ kind: 'ignored', reason });
  });

  it('finds the chat from the source_id when the contact has no wa identifier, and uses the configured number', () => {
    const parsed = parseChatwootWebhook(
      agentReply({}, { meta: { sender: { type: 'contact' } }, additional_attributes: {} }),
      ctx,
    );
    expect(parsed.kind === 'event' && parsed.item.lane).toBe('c.100000000000001.971500000001');
  });

  it('a generated (uuid) source_id is not a WhatsApp number: the event is ignored, not misrouted', () => {
    const conversation = { meta: {}, contact_inbox: { source_id: '0b7c3a9e-1d2f-4c5b-9a8e-7f6d5c4b3a21' } };
    expect(parseChatwootWebhook(agentReply({}, conversation), ctx)).toEqual({
      kind: 'ignored',
      reason: 'unknown_chat',
    });
  });

  it.each([
    ['no message id', { id: undefined }],
    ['a non-numeric id', { id: 'x; drop' }],
    ['no conversation', { conversation: undefined }],
    ['a conversation without id', { conversation: { inbox_id: 5 } }],
  ])('a relevant event with %s is invalid', (_name, over) => {
    expect(parseChatwootWebhook(agentReply(over), ctx).kind).toBe('invalid');
  });

  it('a lane id can never carry a colon or a foreign shape', () => {
    const conversation = { meta: { sender: { identifier: 'wa:97150:0001' } }, contact_inbox: { source_id: 'a:b' } };
    expect(parseChatwootWebhook(agentReply({}, conversation), ctx)).toEqual({
      kind: 'ignored',
      reason: 'unknown_chat',
    });
  });

  it('conversation resolved: one item per resolution, the same one for a redelivery', () => {
    const resolved = (updatedAt: number) => ({
      event: 'conversation_status_changed',
      id: 42,
      inbox_id: 5,
      status: 'resolved',
      contact_inbox: { source_id: '971500000001' },
      additional_attributes: { wa_phone_number_id: '100000000000001' },
      updated_at: updatedAt,
    });
    const first = parseChatwootWebhook(resolved(1767229200.5), ctx);
    const again = parseChatwootWebhook(resolved(1767229200.5), ctx);
    const later = parseChatwootWebhook(resolved(1767239200.1), ctx);
    expect(first.kind === 'event' && first.item.raw).toEqual({ event: 'resolved', conversationId: '42' });
    expect(first.kind === 'event' && first.item.key).toBe(again.kind === 'event' && again.item.key);
    expect(first.kind === 'event' && first.item.key).not.toBe(later.kind === 'event' && later.item.key);
    expect(parseChatwootWebhook({ ...resolved(1), status: 'open' }, ctx)).toEqual({
      kind: 'ignored',
      reason: 'status',
    });
  });

  it('an object without an event is ignored', () => {
    expect(parseChatwootWebhook({ hello: 'world' }, ctx)).toEqual({ kind: 'ignored', reason: 'no_event' });
  });
});
