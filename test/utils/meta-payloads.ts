import { randomBytes } from 'node:crypto';
import { TEST_PHONE_NUMBER_ID } from './test-env';

let counter = 0;
/** A wamid no other test uses. */
export const freshWamid = (): string =>
  `wamid.T${Date.now().toString(36)}${(counter++).toString(36)}${randomBytes(3).toString('hex')}`;
export const nowSeconds = (): string => String(Math.floor(Date.now() / 1000));

export interface TextMessage {
  id?: string;
  from?: string;
  text?: string;
  name?: string;
}

export function textMessage(m: TextMessage = {}): Record<string, unknown> {
  return {
    from: m.from ?? '971500000001',
    id: m.id ?? freshWamid(),
    timestamp: nowSeconds(),
    type: 'text',
    text: { body: m.text ?? 'hello' },
  };
}

/** A full Meta envelope around messages and/or statuses for one business number. */
export function envelope(
  value: { messages?: unknown[]; statuses?: unknown[]; contacts?: unknown[] },
  phoneNumberId = TEST_PHONE_NUMBER_ID,
): Record<string, unknown> {
  return {
    object: 'whatsapp_business_account',
    entry: [
      {
        id: '200000000000002',
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: '15550001111', phone_number_id: phoneNumberId },
              ...value,
            },
          },
        ],
      },
    ],
  };
}

export function textPayload(m: TextMessage = {}): Record<string, unknown> {
  const message = textMessage(m);
  return envelope({
    contacts: [{ profile: { name: m.name ?? 'Test User' }, wa_id: message.from }],
    messages: [message],
  });
}

export function statusPayload(id: string, status: string, recipient = '971500000001'): Record<string, unknown> {
  return envelope({ statuses: [{ id, status, timestamp: nowSeconds(), recipient_id: recipient }] });
}
