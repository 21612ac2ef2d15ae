import { interpretMessage } from '../conversation/inbound-content';
import { KNOWN_MESSAGE_TYPES, MAX_NESTING, exceedsNesting, parseUntrustedJson, parseWebhook } from './webhook-payload';

type Json = Record<string, any>;

const PN = '100000000000001';
const NOW = 1_767_225_600_000;

const text = (id: string, from: string | undefined, body = 'hi'): Json => ({
  ...(from === undefined ? {} : { from }),
  id,
  timestamp: '1767225600',
  type: 'text',
  text: { body },
});
const status = (id: string, state: string, recipient = '971500000001'): Json => ({
  id,
  status: state,
  timestamp: '1767225600',
  recipient_id: recipient,
});
const change = (value: Json, phoneNumberId = PN, field = 'messages'): Json => ({
  field,
  value: {
    messaging_product: 'whatsapp',
    metadata: { display_phone_number: '15550001111', phone_number_id: phoneNumberId },
    ...value,
  },
});
const body = (...entries: Json[][]): Json => ({
  object: 'whatsapp_business_account',
  entry: entries.map((changes) => ({ id: '200000000000002', changes })),
});
const parse = (b: Json) => parseWebhook(b, PN, NOW);
const unhandledRaw = (b: Json) => parse(b).unhandled.map((u) => ({ kind: u.kind, raw: JSON.parse(u.raw) as unknown }));

describe('parseWebhook', () => {
  describe('envelope', () => {
    it('ignores an object other than whatsapp_business_account', () => {
      expect(parse({ object: 'page', entry: [{ changes: [change({ messages: [text('w1', '1')] })] }] })).toEqual({
        items: [],
        unhandled: [],
        ignored: 1,
      });
    });

    it('keeps a signed whatsapp body without entry[] raw as a payload it cannot handle', () => {
      const b = { object: 'whatsapp_business_account', entry: 'nope' };
      expect(unhandledRaw(b)).toEqual([{ kind: 'payload', raw: b }]);
    });

    it('keeps an entry without changes[] raw and goes on with the next entry', () => {
      const b = body([change({ messages: [text('w1', '971500000001')] })]);
      b.entry.unshift({ id: '200000000000002' });
      const parsed = parse(b);
      expect(parsed.unhandled.map((u) => u.kind)).toEqual(['entry']);
      expect(parsed.items.map((i) => i.key)).toEqual(['m:w1']);
    });

    it('accepts an empty entry list as nothing to do', () => {
      expect(parse(body())).toEqual({ items: [], unhandled: [], ignored: 0 });
    });
  });

  describe('changes', () => {
    it('handles every entry, change, message and status, in payload order', () => {
      const parsed = parse(
        body(
          [
            change({
              messages: [text('a1', '971500000001'), text('b1', '971500000002')],
              statuses: [status('o1', 'sent')],
            }),
            change({ messages: [text('a2', '971500000001')], statuses: [status('o1', 'delivered')] }),
          ],
          [
            change({ statuses: [status('o2', 'sent', '971500000002')], messages: [text('b2', '971500000002')] }),
            change({ messages: [text('a3', '971500000001')] }),
          ],
        ),
      );
      // Per change: messages first, then statuses; lanes keep their own relative order.
      expect(parsed.items.map((i) => i.key)).toEqual([
        'm:a1',
        'm:b1',
        's:o1:sent',
        'm:a2',
        's:o1:delivered',
        'm:b2',
        's:o2:sent',
        'm:a3',
      ]);
      expect(parsed.unhandled).toEqual([]);
      expect(parsed.ignored).toBe(0);
    });

    it('ignores a field other than messages, and a change for another number', () => {
      const parsed = parse(
        body([
          change({ event: 'APPROVED' }, PN, 'message_template_status_update'),
          change({ messages: [text('x1', '971500000001')] }, '100000000000999'),
          change({ messages: [text('x2', '971500000001')] }),
        ]),
      );
      expect(parsed.ignored).toBe(2);
      expect(parsed.items.map((i) => i.key)).toEqual(['m:x2']);
      expect(parsed.unhandled).toEqual([]);
    });

    it('accepts any number when the deployment has none (sandbox)', () => {
      const parsed = parseWebhook(body([change({ messages: [text('x1', '971500000001')] }, '555')]), undefined, NOW);
      expect(parsed.items.map((i) => i.lane)).toEqual(['c.555.971500000001']);
    });

    it.each<[string, Json]>([
      ['no value', { field: 'messages' }],
      ['no metadata', { field: 'messages', value: { messages: [text('w1', '1')] } }],
      ['no phone_number_id', { field: 'messages', value: { metadata: {}, messages: [text('w1', '1')] } }],
      ['a phone_number_id unfit for a key', change({ messages: [text('w1', '1')] }, '1:2')],
    ])('keeps a messages change with %s raw', (_, c) => {
      expect(unhandledRaw(body([c]))).toEqual([{ kind: 'change', raw: c }]);
      expect(parse(body([c])).items).toEqual([]);
    });

    it('counts a change that is not an object as ignored, never throws', () => {
      expect(parse(body([null as unknown as Json, 'x' as unknown as Json]))).toEqual({
        items: [],
        unhandled: [],
        ignored: 2,
      });
    });

    it('keeps value-level errors[] raw', () => {
      const error = { code: 130429, title: 'Rate limit hit', error_data: { details: 'too many' } };
      expect(unhandledRaw(body([change({ errors: [error] })]))).toEqual([{ kind: 'error', raw: error }]);
    });
  });

  describe('messages', () => {
    it('builds the item: dedup key, chat lane, kind, arrival, number, untouched raw', () => {
      const message = text('wamid.TEST_IN_0001', '971500000001', 'مرحبا');
      const [item] = parse(body([change({ messages: [message] })])).items;
      expect(item).toEqual({
        key: 'm:wamid.TEST_IN_0001',
        lane: `c.${PN}.971500000001`,
        kind: 'message',
        receivedAt: NOW,
        phoneNumberId: PN,
        raw: message,
        contact: undefined,
      });
      expect(item.raw).toBe(message);
    });

    it('keys a sender without `from` by from_user_id (BSUID), and prefers `from` when both are there', () => {
      const onlyBsuid = { ...text('w1', undefined), from_user_id: 'AE.1234567890123' };
      const both = { ...text('w2', '971500000001'), from_user_id: 'AE.1234567890123' };
      const lanes = parse(body([change({ messages: [onlyBsuid, both] })])).items.map((i) => i.lane);
      expect(lanes).toEqual([`c.${PN}.AE.1234567890123`, `c.${PN}.971500000001`]);
    });

    it.each([...KNOWN_MESSAGE_TYPES])('accepts the known type %s', (type) => {
      const message = { from: '971500000001', id: 'w1', timestamp: '1', type, [type]: {} };
      expect(parse(body([change({ messages: [message] })])).items).toHaveLength(1);
    });

    it.each<[string, Json, string]>([
      ['a new type', { ...text('w1', '971500000001'), type: 'poll' }, 'message_type'],
      ['no type', { from: '971500000001', id: 'w1', timestamp: '1' }, 'message_type'],
      ['neither from nor from_user_id', text('w1', undefined), 'message_sender'],
      ['an empty from', text('w1', ''), 'message_sender'],
      ['a numeric from', { ...text('w1', undefined), from: 971500000001 }, 'message_sender'],
      ['a from with a colon', text('w1', '971:500'), 'message_sender'],
      ['a from with a space', text('w1', '971 500'), 'message_sender'],
      ['a from longer than 64 characters', text('w1', '9'.repeat(65)), 'message_sender'],
      ['no id', { ...text('x', '971500000001'), id: undefined }, 'message_id'],
      ['an empty id', text('', '971500000001'), 'message_id'],
    ])('keeps a message with %s raw, never as a lane item', (_, message, kind) => {
      const ok = text('ok', '971500000009');
      const parsed = parse(body([change({ messages: [message, ok] })]));
      expect(parsed.unhandled.map((u) => ({ kind: u.kind, raw: JSON.parse(u.raw) as unknown }))).toEqual([
        { kind, raw: JSON.parse(JSON.stringify(message)) },
      ]);
      expect(parsed.items.map((i) => i.key)).toEqual(['m:ok']);
    });

    it('keeps a message that is not an object raw', () => {
      expect(unhandledRaw(body([change({ messages: ['text', 7] })]))).toEqual([
        { kind: 'message_shape', raw: 'text' },
        { kind: 'message_shape', raw: 7 },
      ]);
    });
  });

  describe('contacts', () => {
    const contacts = [
      { profile: { name: 'First' }, wa_id: '971500000001' },
      { profile: { name: 'Second' }, wa_id: '971500000002', user_id: 'AE.2' },
      { profile: { name: 'Username only' }, user_id: 'AE.3' },
    ];

    it('attaches to each message the profile of its own sender, by wa_id or user_id', () => {
      const messages = [
        text('w1', '971500000002'),
        text('w2', '971500000001'),
        { ...text('w3', undefined), from_user_id: 'AE.3' },
      ];
      const items = parse(body([change({ contacts, messages })])).items;
      expect(items.map((i) => i.contact)).toEqual([
        { name: 'Second', waId: '971500000002', userId: 'AE.2' },
        { name: 'First', waId: '971500000001', userId: undefined },
        { name: 'Username only', waId: undefined, userId: 'AE.3' },
      ]);
    });

    it('has no contact when Meta sent none (system messages)', () => {
      const system = { from: '971500000001', id: 'w1', timestamp: '1', type: 'system', system: { wa_id: '9715' } };
      expect(parse(body([change({ messages: [system] })])).items[0].contact).toBeUndefined();
    });

    it('survives a profile without a name and contacts that are not objects', () => {
      const odd = ['x', null, { wa_id: '971500000001' }];
      const [item] = parse(body([change({ contacts: odd, messages: [text('w1', '971500000001')] })])).items;
      expect(item.contact).toEqual({ name: undefined, waId: '971500000001', userId: undefined });
    });
  });

  describe('statuses', () => {
    it('builds the item: key by id and status, status lane by recipient', () => {
      const s = { ...status('wamid.OUT_1', 'delivered'), pricing: { category: 'service' } };
      const [item] = parse(body([change({ statuses: [s] })])).items;
      expect(item).toEqual({
        key: 's:wamid.OUT_1:delivered',
        lane: `s.${PN}.971500000001`,
        kind: 'status',
        receivedAt: NOW,
        phoneNumberId: PN,
        raw: s,
      });
    });

    it('gives each status of one message its own key, and repeats the same key for a repeat', () => {
      const keys = parse(
        body([change({ statuses: [status('o', 'sent'), status('o', 'delivered'), status('o', 'sent')] })]),
      ).items.map((i) => i.key);
      expect(keys).toEqual(['s:o:sent', 's:o:delivered', 's:o:sent']);
    });

    it('keys a status for a username-only recipient by recipient_user_id', () => {
      const s = { id: 'o', status: 'read', timestamp: '1', recipient_user_id: 'AE.1234567890123' };
      expect(parse(body([change({ statuses: [s] })])).items[0].lane).toBe(`s.${PN}.AE.1234567890123`);
    });

    it.each<[string, unknown]>([
      ['no id', { status: 'sent', recipient_id: '971500000001' }],
      ['no status', { id: 'o', recipient_id: '971500000001' }],
      ['no recipient', { id: 'o', status: 'sent' }],
      ['a recipient with a colon', { id: 'o', status: 'sent', recipient_id: 'a:b' }],
      ['a shape that is not an object', ['o', 'sent']],
    ])('keeps a status with %s raw', (_, s) => {
      expect(unhandledRaw(body([change({ statuses: [s] })]))).toEqual([{ kind: 'status', raw: s }]);
    });
  });
});

describe('ids are held to their shape before they become keys', () => {
  const ok = text('ok', '971500000009');
  /** What became of `item`, parsed next to a good message: its unhandled kind, or 'item'. */
  const fate = (item: Json, where: 'messages' | 'statuses' = 'messages'): string => {
    const parsed = parse(body([change({ [where]: [item], messages: where === 'messages' ? [item, ok] : [ok] })]));
    expect(parsed.items.map((i) => i.key)).toContain('m:ok');
    const kinds = parsed.unhandled.map((u) => u.kind);
    expect(kinds.length + parsed.items.length).toBe(2);
    return kinds[0] ?? 'item';
  };

  describe('message ids (wamid, at most 256 characters)', () => {
    it.each<[string, string]>([
      ['a real wamid', 'wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA'],
      ['base64 with + / =', 'wamid.ab+cd/ef=='],
      ['256 characters', `wamid.${'A'.repeat(250)}`],
    ])('accepts %s', (_, id) => {
      expect(fate(text(id, '971500000001'))).toBe('item');
    });

    it.each<[string, string]>([
      ['257 characters', `wamid.${'A'.repeat(251)}`],
      ['a megabyte', 'A'.repeat(1_048_576)],
      ['a colon', 'wamid.a:b'],
      ['a space', 'wamid.a b'],
      ['a newline', 'wamid.a\nb'],
      ['a brace', 'wamid.{x}'],
      ['non-ASCII', 'wamid.é'],
    ])('keeps a message whose id has %s raw (kind message_id)', (_, id) => {
      expect(fate(text(id, '971500000001'))).toBe('message_id');
    });
  });

  describe('senders: `from` is digits (at most 20), from_user_id a scoped id (at most 64)', () => {
    it.each<[string, Json]>([
      ['a 20-digit from', text('w1', '9'.repeat(20))],
      ['a one-digit from', text('w1', '1')],
      ['a BSUID', { ...text('w1', undefined), from_user_id: 'AE.1234567890123' }],
      ['a parent-style BSUID', { ...text('w1', undefined), from_user_id: 'US.ENT.11815799212886844830' }],
      ['a 64-character BSUID', { ...text('w1', undefined), from_user_id: `AE.${'1'.repeat(61)}` }],
    ])('accepts %s', (_, message) => {
      expect(fate(message)).toBe('item');
    });

    it.each<[string, Json]>([
      ['a 21-digit from', text('w1', '9'.repeat(21))],
      ['a from with letters', text('w1', 'AE.1234567890123')],
      ['a from with a plus', text('w1', '+971500000001')],
      ['a from with a dot', text('w1', '971.500')],
      ['a bad from and a good from_user_id', { ...text('w1', 'x:y'), from_user_id: 'AE.1234567890123' }],
      ['a 65-character BSUID', { ...text('w1', undefined), from_user_id: `AE.${'1'.repeat(62)}` }],
      ['a BSUID with a colon', { ...text('w1', undefined), from_user_id: 'AE:1' }],
      ['a BSUID with braces', { ...text('w1', undefined), from_user_id: '{AE}.1' }],
      ['a BSUID starting with a dot', { ...text('w1', undefined), from_user_id: '.AE' }],
    ])('keeps a message with %s raw (kind message_sender)', (_, message) => {
      expect(fate(message)).toBe('message_sender');
    });
  });

  describe('statuses', () => {
    it.each<[string, Json]>([
      ['a 20-digit recipient', status('wamid.o1', 'sent', '9'.repeat(20))],
      ['a group recipient', { ...status('wamid.o1', 'read', 'fowefinoewcnw'), recipient_type: 'group' }],
      ['a BSUID recipient', { id: 'wamid.o1', status: 'read', timestamp: '1', recipient_user_id: 'AE.123' }],
    ])('accepts %s', (_, s) => {
      expect(fate(s, 'statuses')).toBe('item');
    });

    it.each<[string, Json]>([
      ['an id of 257 characters', status(`wamid.${'A'.repeat(251)}`, 'sent')],
      ['an id with a colon', status('wamid.a:sent', 'sent')],
      ['a status with a colon', status('wamid.o1', 'read:x')],
      ['a status of 33 characters', status('wamid.o1', 'r'.repeat(33))],
      ['a 21-digit recipient', status('wamid.o1', 'sent', '9'.repeat(21))],
      ['a recipient with letters, not a group', status('wamid.o1', 'sent', 'fowefinoewcnw')],
      [
        'a group recipient of 65 characters',
        { ...status('wamid.o1', 'read', 'g'.repeat(65)), recipient_type: 'group' },
      ],
      ['a BSUID recipient with a colon', { id: 'wamid.o1', status: 'read', timestamp: '1', recipient_user_id: 'A:1' }],
    ])('keeps a status with %s raw (kind status)', (_, s) => {
      expect(fate(s, 'statuses')).toBe('status');
    });
  });

  describe('number changes (system user_changed_number)', () => {
    const changed = (wa_id: unknown): Json => ({
      from: '971500000001',
      id: 'wamid.change',
      timestamp: '1767225600',
      type: 'system',
      system: { body: 'User changed from 971500000001 to 971500000009', wa_id, type: 'user_changed_number' },
    });

    it('accepts a new number of digits', () => {
      expect(fate(changed('971500000009'))).toBe('item');
    });

    it.each<[string, unknown]>([
      ['missing', undefined],
      ['21 digits', '9'.repeat(21)],
      ['a colon', '971:500'],
      ['letters', 'AE.123'],
      ['a number, not a string', 971500000009],
    ])('keeps one whose new number is %s raw (kind message_number_change)', (_, waId) => {
      expect(fate(changed(waId))).toBe('message_number_change');
    });

    // Items queued before the parser checked them reach the worker all the same.
    it('interpretMessage moves a chat only to a new number of at most 20 digits', () => {
      expect(interpretMessage(changed('971500000009'))).toMatchObject({
        kind: 'number_change',
        newWaId: '971500000009',
      });
      for (const bad of ['9'.repeat(21), '971:500', 'x', `${'9'.repeat(10)}\u0000`]) {
        expect({ bad, kind: interpretMessage(changed(bad)).kind }).toEqual({ bad, kind: 'none' });
      }
    });
  });
});

describe('parseUntrustedJson', () => {
  it('parses JSON like JSON.parse, from bytes or text', () => {
    const raw = '{"object":"whatsapp_business_account","entry":[{"id":"1"}],"constructor":"plain value"}';
    expect(parseUntrustedJson(Buffer.from(raw))).toEqual(JSON.parse(raw));
    expect(parseUntrustedJson('[1,"__proto__"]')).toEqual([1, '__proto__']);
    expect(() => parseUntrustedJson('{"a":')).toThrow(SyntaxError);
  });

  it.each([
    ['a __proto__ key', '{"entry":[{"__proto__":{"polluted":true}}]}'],
    ['an escaped __proto__ key', '{"\\u005f\\u005fproto__":{"polluted":true}}'],
    ['a constructor.prototype key', '{"a":{"constructor":{"prototype":{"polluted":true}}}}'],
  ])('refuses %s with a SyntaxError, as invalid JSON', (_, raw) => {
    expect(() => parseUntrustedJson(raw)).toThrow(SyntaxError);
  });
});

describe('exceedsNesting', () => {
  const nested = (depth: number): unknown => {
    let v: unknown = 'leaf';
    for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { k: v };
    return v;
  };

  it('lets a real Meta payload through', () => {
    expect(exceedsNesting(body([change({ messages: [text('w1', '971500000001')] })]))).toBe(false);
  });

  it('draws the line at MAX_NESTING objects and arrays', () => {
    expect(exceedsNesting(nested(MAX_NESTING))).toBe(false);
    expect(exceedsNesting(nested(MAX_NESTING + 1))).toBe(true);
  });

  it('walks a value nested far deeper than the call stack without overflowing', () => {
    const deep = JSON.parse(`${'['.repeat(200_000)}${']'.repeat(200_000)}`) as unknown;
    expect(() => JSON.stringify(deep)).toThrow(RangeError);
    expect(exceedsNesting(deep)).toBe(true);
  });

  it('treats scalars as flat', () => {
    expect(exceedsNesting(null)).toBe(false);
    expect(exceedsNesting('x')).toBe(false);
  });
});
