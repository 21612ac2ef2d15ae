import { type SandboxOutboxEntry } from '../bsp/sandbox-bsp.client';
import { markReadBody, templateBody, textBody } from '../bsp/cloud-api-payloads';
import { pageEventOf, type PriceOf } from './sandbox-events';
import { senderOfWamid, wamidFrom } from './sandbox-wamid';

const ME = '971500000001';
const OTHER = '971500000002';
const AT = 1_796_000_000_000;

const free: PriceOf = () => 0;
const charged: PriceOf = () => 0.0157;

const entry = (operation: SandboxOutboxEntry['operation'], payload: Record<string, unknown>): SandboxOutboxEntry => ({
  id: operation === 'read' ? null : 'wamid.SANDBOX_1',
  operation,
  at: AT,
  payload,
});

describe('senderOfWamid', () => {
  it("reads the sender's number from a wamid shaped like Meta's", () => {
    expect(senderOfWamid('wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA')).toBe('16503879439');
  });

  it('reads back what wamidFrom (and the page) make', () => {
    expect(senderOfWamid(wamidFrom(ME, 'ABCDEF0123456789ABCD'))).toBe(ME);
    expect(senderOfWamid(wamidFrom('1234567', '00'))).toBe('1234567');
  });

  it.each([
    ['an id of another shape', 'wamid.DEMO12345'],
    ['a sandbox send id', 'wamid.SANDBOX_0123456789abcdef01234567'],
    ['no wamid. prefix', wamidFrom(ME, 'AB').slice('wamid.'.length)],
    ['a length past the end', `wamid.${Buffer.from([0x1c, 0x18, 40, 0x31, 0x32]).toString('base64')}`],
    ['letters where the number is', `wamid.${Buffer.from([0x1c, 0x18, 3, 0x41, 0x42, 0x43, 0]).toString('base64')}`],
    ['not a string', 42],
  ])('is undefined for %s', (_, id) => {
    expect(senderOfWamid(id)).toBeUndefined();
  });
});

describe('pageEventOf', () => {
  it("turns a text sent to the page's number into a message event, with the status pricing Meta would report", () => {
    const e = entry('text', textBody({ to: ME, body: 'مرحبا <b>', callbackData: 't.1.0' }));
    expect(pageEventOf(e, ME, free)).toEqual({
      type: 'message',
      id: 'wamid.SANDBOX_1',
      at: AT,
      kind: 'text',
      text: 'مرحبا <b>',
      callbackData: 't.1.0',
      pricing: { billable: false, pricing_model: 'PMP', category: 'service', type: 'free_customer_service' },
    });
    expect(pageEventOf(e, ME, charged)).toMatchObject({
      pricing: { billable: true, pricing_model: 'PMP', category: 'service', type: 'regular' },
    });
  });

  it('labels a template and shows its parameters', () => {
    const e = entry(
      'template',
      templateBody({
        to: ME,
        name: 'reengage_hello',
        language: 'ar',
        headerParameters: ['Dr Salma'],
        bodyParameters: ['أحمد', 'Sun 10:00'],
        buttons: [{ subType: 'quick_reply', index: 0, parameter: 'CONFIRM' }],
      }),
    );
    expect(pageEventOf(e, ME, charged)).toMatchObject({
      kind: 'template',
      text: 'Dr Salma · أحمد · Sun 10:00 · CONFIRM',
      template: { name: 'reengage_hello', language: 'ar' },
      pricing: { category: 'utility', type: 'regular', billable: true },
    });
  });

  it('leaves out sends to another number', () => {
    expect(pageEventOf(entry('text', textBody({ to: OTHER, body: 'x' })), ME, free)).toBeUndefined();
    expect(
      pageEventOf(entry('template', templateBody({ to: OTHER, name: 'n', language: 'en' })), ME, free),
    ).toBeUndefined();
  });

  it('routes a mark-read by the sender inside the message id, typing indicator or not', () => {
    const mine = wamidFrom(ME, '0011223344556677AABB');
    const theirs = wamidFrom(OTHER, '0011223344556677AABB');
    expect(pageEventOf(entry('read', markReadBody({ messageId: mine, typing: true })), ME, free)).toEqual({
      type: 'read',
      messageId: mine,
      typing: true,
      at: AT,
    });
    expect(pageEventOf(entry('read', markReadBody({ messageId: mine, typing: false })), ME, free)).toMatchObject({
      typing: false,
    });
    expect(pageEventOf(entry('read', markReadBody({ messageId: theirs, typing: true })), ME, free)).toBeUndefined();
    expect(
      pageEventOf(entry('read', markReadBody({ messageId: 'wamid.DEMO1', typing: true })), ME, free),
    ).toBeUndefined();
  });

  it('ignores entries it cannot read', () => {
    expect(pageEventOf({ ...entry('text', {}), payload: null as never }, ME, free)).toBeUndefined();
    expect(pageEventOf(entry('text', { to: ME }), ME, free)).toBeUndefined();
    expect(pageEventOf({ ...entry('text', textBody({ to: ME, body: 'x' })), id: null }, ME, free)).toBeUndefined();
  });
});
