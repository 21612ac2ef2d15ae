import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { interpretMessage, planTurn, type Inbound } from './inbound-content';

const peer = (file: string, name: string): unknown => {
  const path = join(__dirname, '../../test/fixtures/peer-payloads/pywa', file);
  const all = JSON.parse(readFileSync(path, 'utf8')) as Record<string, any>;
  return all[name].entry[0].changes[0].value.messages[0];
};

describe('interpretMessage (every inbound type, on pywa payloads)', () => {
  it.each([
    ['message.json', 'text', 'text'],
    ['message.json', 'image', 'media'],
    ['message.json', 'voice', 'media'],
    ['message.json', 'static_sticker', 'media'],
    ['message.json', 'document', 'media'],
    ['message.json', 'video', 'media'],
    ['message.json', 'reaction', 'none'],
    ['message.json', 'current_location', 'text'],
    ['message.json', 'chosen_location', 'text'],
    ['message.json', 'contacts', 'text'],
    ['message.json', 'order', 'text'],
    ['message.json', 'unsupported', 'resend'],
    ['message.json', 'unsupported_with_type', 'resend'],
    ['message.json', 'interactive_message_with_err', 'resend'],
    ['callback_button.json', 'button', 'text'],
    ['callback_button.json', 'quick_reply', 'text'],
    ['callback_selection.json', 'callback', 'text'],
    ['flow_completion.json', 'completion', 'text'],
    ['call_permission_update.json', 'accept', 'none'],
    ['edited_message.json', 'image', 'edit'],
    ['deleted_message.json', 'revoke', 'revoke'],
    ['system.json', 'phone_number_change', 'number_change'],
    ['system.json', 'identity_change', 'none'],
  ])('%s %s -> %s', (file, name, kind) => {
    expect(interpretMessage(peer(file, name)).kind).toBe(kind);
  });

  it('a timestamp counts no later than the arrival (plus the skew), and the arrival stands in for a missing one', () => {
    const arrivedAt = 1_780_000_000_000;
    const text = (timestamp?: string) => ({ id: 'w1', timestamp, type: 'text', text: { body: 'hi' } });
    expect(interpretMessage(text('1779990000'), arrivedAt).timestamp).toBe(1_779_990_000);
    expect(interpretMessage(text(String(1_780_000_000 + 3 * 86_400)), arrivedAt).timestamp).toBe(1_780_000_060);
    expect(interpretMessage(text(undefined), arrivedAt).timestamp).toBe(1_780_000_000);
  });

  it('button and list replies count as their titles', () => {
    const m = {
      id: 'w1',
      timestamp: '1',
      type: 'interactive',
      interactive: { type: 'list_reply', list_reply: { id: 'x', title: 'Fri 10:00' } },
    };
    expect(interpretMessage(m)).toMatchObject({ kind: 'text', text: 'Fri 10:00' });
    const b = { id: 'w2', timestamp: '1', type: 'button', button: { payload: 'P', text: 'Confirm' } };
    expect(interpretMessage(b)).toMatchObject({ kind: 'text', text: 'Confirm' });
  });

  it('a flow reply becomes a short summary without the flow token', () => {
    const result = interpretMessage(peer('flow_completion.json', 'completion'));
    expect(result.kind).toBe('text');
    const text = (result as { text: string }).text;
    expect(text).toContain('delivery_rating=4');
    expect(text).not.toContain('flow_token');
  });

  it('location uses name and address when shared', () => {
    const m = {
      id: 'w',
      timestamp: '1',
      type: 'location',
      location: { latitude: 1, longitude: 2, name: 'Clinic', address: 'Dubai' },
    };
    expect(interpretMessage(m)).toMatchObject({ kind: 'text', text: '[location: Clinic, Dubai]' });
  });

  it('media keeps its caption and says what it was', () => {
    const m = { id: 'w', timestamp: '1', type: 'image', image: { id: '9', caption: 'My receipt' } };
    expect(interpretMessage(m)).toMatchObject({ kind: 'media', caption: 'My receipt', text: '[image: My receipt]' });
    const v = { id: 'w', timestamp: '1', type: 'audio', audio: { id: '9', voice: true } };
    expect(interpretMessage(v)).toMatchObject({ kind: 'media', text: '[voice note]' });
  });

  it('an edit carries the new text and its target', () => {
    expect(interpretMessage(peer('edited_message.json', 'image'))).toMatchObject({
      kind: 'edit',
      text: 'Updated image caption',
      target: 'wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=',
    });
  });
});

const text = (id: string, body: string, ts = 100): Inbound => ({ kind: 'text', id, text: body, timestamp: ts });

describe('planTurn', () => {
  it('keeps texts in order and takes the newest timestamp', () => {
    const plan = planTurn([text('a', 'one', 100), text('b', 'two', 105)]);
    expect(plan.texts.map((t) => t.text)).toEqual(['one', 'two']);
    expect(plan.lastTimestamp).toBe(105);
  });

  it('a revoke withdraws a message of this turn', () => {
    const plan = planTurn([
      text('a', 'one'),
      text('b', 'two'),
      { kind: 'revoke', id: 'c', target: 'a', timestamp: 101 },
    ]);
    expect(plan.texts.map((t) => t.text)).toEqual(['two']);
  });

  it('a turn whose only message was revoked answers nothing', () => {
    const plan = planTurn([text('a', 'one'), { kind: 'revoke', id: 'c', target: 'a', timestamp: 101 }]);
    expect(plan.texts).toEqual([]);
    expect(plan.onlyMedia || plan.onlyResend).toBe(false);
  });

  it('an edit replaces the text of a message in this turn, else arrives as new text', () => {
    expect(
      planTurn([text('a', 'one'), { kind: 'edit', id: 'e', target: 'a', text: 'uno', timestamp: 101 }]).texts,
    ).toEqual([{ id: 'a', text: 'uno' }]);
    expect(planTurn([{ kind: 'edit', id: 'e', target: 'old', text: 'uno', timestamp: 101 }]).texts).toEqual([
      { id: 'e', text: 'uno' },
    ]);
  });

  it('media without text asks for text; with a caption it goes to the LLM', () => {
    const media: Inbound = { kind: 'media', id: 'm', text: '[image]', timestamp: 1 };
    expect(planTurn([media]).onlyMedia).toBe(true);
    const captioned: Inbound = { kind: 'media', id: 'm', text: '[image: hi]', caption: 'hi', timestamp: 1 };
    expect(planTurn([captioned]).texts).toEqual([{ id: 'm', text: '[image: hi]' }]);
  });

  it('reactions start no turn; unsupported asks to resend', () => {
    expect(planTurn([{ kind: 'none', id: 'r', reason: 'reaction', timestamp: 1 }])).toMatchObject({
      texts: [],
      onlyMedia: false,
      onlyResend: false,
    });
    expect(planTurn([{ kind: 'resend', id: 'u', timestamp: 1 }]).onlyResend).toBe(true);
  });
});

describe('number change', () => {
  it('carries the new wa_id into the plan', () => {
    const plan = planTurn([interpretMessage(peer('system.json', 'phone_number_change'))]);
    expect(plan.numberChange).toBe('972912345678');
    expect(plan.texts).toEqual([]);
  });
});
