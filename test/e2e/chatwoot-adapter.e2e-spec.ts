import { createHmac } from 'node:crypto';
import http from 'node:http';
import { type AddressInfo } from 'node:net';
import { AppConfig } from '../../src/config/app-config';
import { validateEnv } from '../../src/config/validate-env';
import {
  ChatwootEscalationDesk,
  type ChatwootDeskOptions,
  type ChatwootOperation,
} from '../../src/escalation/chatwoot-escalation.desk';
import { type DeskContact, DeskError } from '../../src/escalation/escalation-desk';
import { AppLogger } from '../../src/logging/app-logger';
import { MetricsService } from '../../src/metrics/metrics.service';
import { FakeChatwootServer, type RecordedChatwootRequest } from '../fakes/fake-chatwoot.server';
import { agentMessage, statusChanged } from '../utils/chatwoot-payloads';
import { expectConformsToChatwootApi, validateAgainstChatwootApi } from '../utils/openapi-contract';
import { TEST_PHONE_NUMBER_ID, testEnv } from '../utils/test-env';

const TOKEN = 'test-chatwoot-token';
const WA_ID = '971500000001';
const PATIENT: DeskContact = { waId: WA_ID, name: 'Test User', phoneNumberId: TEST_PHONE_NUMBER_ID };
// Arabic with diacritics, an RTL mark, Arabic-Indic digits and an emoji ZWJ sequence.
const ARABIC = 'مرحباً، أريد حجز موعد يوم الأحد الساعة ١٠:٣٠ \u200f👨‍👩‍👧';
const ALL_OPERATIONS: ChatwootOperation[] = [
  'contact_search',
  'contact_create',
  'contact_inbox',
  'contact_conversations',
  'conversation_create',
  'message_create',
  'message_list',
  'toggle_status',
];

let fake: FakeChatwootServer;
const desks: ChatwootEscalationDesk[] = [];

function makeDesk(
  metrics = new MetricsService(),
  env: Record<string, string> = {},
  options?: ChatwootDeskOptions,
): ChatwootEscalationDesk {
  const config = new AppConfig(
    validateEnv(
      testEnv({
        CHATWOOT_BASE_URL: fake.url,
        CHATWOOT_API_TOKEN: TOKEN,
        CHATWOOT_ACCOUNT_ID: '1',
        CHATWOOT_INBOX_ID: '5',
        CHATWOOT_WEBHOOK_TOKEN: 'x',
        ...env,
      }),
    ),
  );
  const desk = new ChatwootEscalationDesk(config, metrics, new AppLogger('silent'), options);
  desks.push(desk);
  return desk;
}

async function failure(promise: Promise<unknown>): Promise<DeskError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(DeskError);
    const error = err as DeskError;
    // DeskError messages are logged: never content, phone numbers or tokens.
    for (const secret of [WA_ID, TOKEN, ARABIC, 'wa:']) expect(error.message).not.toContain(secret);
    return error;
  }
  throw new Error('expected the call to fail');
}

async function counted(metrics: MetricsService, operation: ChatwootOperation, outcome: string): Promise<number> {
  const data = await metrics.chatwootRequests.get();
  return data.values.find((v) => v.labels.operation === operation && v.labels.outcome === outcome)?.value ?? 0;
}

const operations = (requests: RecordedChatwootRequest[] = fake.requests): string[] => requests.map((r) => r.operation);

beforeAll(async () => {
  fake = await FakeChatwootServer.start({ inboxIds: [5, 6] });
});

afterEach(() => {
  for (const desk of desks.splice(0)) desk.close();
  const requests = [...fake.requests];
  fake.reset();
  // Whatever a scenario sent, it was what Chatwoot's OpenAPI description allows.
  if (requests.length > 0) expectConformsToChatwootApi(requests);
});

afterAll(async () => {
  await fake.close();
});

describe('ensureConversation', () => {
  it('creates the contact, its contact inbox (source_id = wa_id) and one open conversation', async () => {
    const result = await makeDesk().ensureConversation(PATIENT, 'user_requested');

    expect(operations()).toEqual([
      'contact_search',
      'contact_create',
      'contact_inbox',
      'contact_conversations',
      'conversation_create',
    ]);
    expect(fake.requestsOf('contact_search')[0].query).toEqual({ q: WA_ID });
    expect(fake.requests.every((r) => r.headers.api_access_token === TOKEN)).toBe(true);
    const [contact] = fake.contacts();
    expect(contact).toMatchObject({
      name: 'Test User',
      identifier: `wa:${WA_ID}`,
      phoneNumber: `+${WA_ID}`,
      customAttributes: { wa_id: WA_ID },
    });
    expect(fake.requestsOf('contact_create')[0].body.inbox_id).toBe(5);
    expect(fake.contactInboxes()).toContainEqual({ contactId: contact.id, inboxId: 5, sourceId: WA_ID });
    const [conversation] = fake.conversations();
    expect(fake.conversations()).toHaveLength(1);
    expect(conversation).toMatchObject({
      contactId: contact.id,
      inboxId: 5,
      sourceId: WA_ID,
      status: 'open',
      additionalAttributes: { wa_phone_number_id: TEST_PHONE_NUMBER_ID },
      customAttributes: { handover_reason: 'user_requested' },
    });
    expect(result).toEqual({ contactId: String(contact.id), conversationId: String(conversation.id) });
  });

  it('repeated (as after a crash) creates nothing new and returns the same ids', async () => {
    const desk = makeDesk();
    const first = await desk.ensureConversation(PATIENT, 'user_requested');
    fake.requests.length = 0;

    const second = await makeDesk().ensureConversation(PATIENT, 'user_requested');

    expect(second).toEqual(first);
    expect(operations()).toEqual(['contact_search', 'contact_conversations']);
    expect(fake.contacts()).toHaveLength(1);
    expect(fake.conversations()).toHaveLength(1);
  });

  it('is safe to repeat when a create succeeded but its answer was lost', async () => {
    fake.fail(1, { on: 'contact_create', status: 502, afterEffect: true });
    fake.hang(1, { on: 'conversation_create', afterEffect: true });
    const desk = makeDesk(undefined, {}, { timeoutMs: 300 });

    expect((await failure(desk.ensureConversation(PATIENT, 'r'))).kind).toBe('unavailable');
    expect((await failure(desk.ensureConversation(PATIENT, 'r'))).kind).toBe('unavailable');
    const settled = await desk.ensureConversation(PATIENT, 'r');

    expect(fake.contacts()).toHaveLength(1);
    expect(fake.conversations()).toHaveLength(1);
    expect(settled).toEqual({
      contactId: String(fake.contacts()[0].id),
      conversationId: String(fake.conversations()[0].id),
    });
  });

  it('reuses a contact found by phone number, and picks the exact one among substring matches', async () => {
    // Search matches substrings: this one's phone merely contains the digits.
    fake.seedContact({ name: 'Decoy', phoneNumber: `+${WA_ID}9` });
    const walkIn = fake.seedContact({ name: 'Walk-in', phoneNumber: `+${WA_ID}` });

    const result = await makeDesk().ensureConversation(PATIENT, 'keyword');

    expect(result.contactId).toBe(String(walkIn.id));
    expect(fake.requestsOf('contact_create')).toHaveLength(0);
    expect(fake.requestsOf('contact_inbox')[0].body).toEqual({ inbox_id: 5, source_id: WA_ID });
    expect(fake.conversations()).toMatchObject([{ contactId: walkIn.id, sourceId: WA_ID }]);
  });

  it('prefers the identifier wa:<waId> over a phone match, on a later search page too', async () => {
    for (let i = 0; i < 20; i++) fake.seedContact({ name: `Other ${i}`, email: `other${i}+${WA_ID}@example.com` });
    const byPhone = fake.seedContact({ name: 'Phone only', phoneNumber: `+${WA_ID}` });
    const byIdentifier = fake.seedContact({ name: 'Ours', identifier: `wa:${WA_ID}` });

    const result = await makeDesk().ensureConversation(PATIENT, 'keyword');

    expect(result.contactId).toBe(String(byIdentifier.id));
    expect(result.contactId).not.toBe(String(byPhone.id));
    expect(fake.requestsOf('contact_search').map((r) => r.query)).toEqual([{ q: WA_ID }, { q: WA_ID, page: '2' }]);
  });

  it('uses the existing contact when the create collides (422: created since the search)', async () => {
    const existing = fake.seedContact({ name: 'Test User', identifier: `wa:${WA_ID}`, phoneNumber: `+${WA_ID}` });
    // The first search answers from before the other worker's create.
    fake.fail(1, { on: 'contact_search', status: 200, body: { meta: { count: 0, current_page: 1 }, payload: [] } });
    const metrics = new MetricsService();

    const result = await makeDesk(metrics).ensureConversation(PATIENT, 'r');

    expect(result.contactId).toBe(String(existing.id));
    expect(operations()).toEqual([
      'contact_search',
      'contact_create',
      'contact_search',
      'contact_inbox',
      'contact_conversations',
      'conversation_create',
    ]);
    expect(fake.requestsOf('contact_create')[0].status).toBe(422);
    expect(await counted(metrics, 'contact_create', 'rejected')).toBe(1);
    expect(fake.contacts()).toHaveLength(1);
  });

  it('does not reuse a resolved conversation, nor one in another inbox; reuses the newest open or pending', async () => {
    const contact = fake.seedContact({ identifier: `wa:${WA_ID}`, phoneNumber: `+${WA_ID}` });
    fake.seedConversation({ contactId: contact.id, status: 'resolved', sourceId: WA_ID });
    fake.seedConversation({ contactId: contact.id, inboxId: 6, status: 'open' });
    const desk = makeDesk();

    const fresh = await desk.ensureConversation(PATIENT, 'r');
    expect(fake.conversations()).toHaveLength(3);
    expect(fake.conversation(fresh.conversationId)).toMatchObject({ inboxId: 5, status: 'open', sourceId: WA_ID });

    const older = fake.seedConversation({
      contactId: contact.id,
      status: 'pending',
      sourceId: WA_ID,
      lastActivityAt: 1,
    });
    expect(await desk.ensureConversation(PATIENT, 'r')).toEqual(fresh);
    fake.setStatus(Number(fresh.conversationId), 'resolved');
    expect((await desk.ensureConversation(PATIENT, 'r')).conversationId).toBe(String(older.id));
    expect(fake.conversations()).toHaveLength(4);
  });

  it('a wa_id that is no E.164 number (a leading 0, too long) makes a contact without a phone, not a 422', async () => {
    for (const waId of ['03', '9'.repeat(16)]) {
      const result = await makeDesk().ensureConversation({ ...PATIENT, waId }, 'user_requested');
      const contact = fake.contacts().find((c) => c.identifier === `wa:${waId}`);
      expect(contact).toMatchObject({ identifier: `wa:${waId}`, phoneNumber: null, customAttributes: { wa_id: waId } });
      expect(result.contactId).toBe(String(contact!.id));
    }
    expect(fake.requestsOf('contact_create').map((r) => 'phone_number' in (r.body as object))).toEqual([false, false]);
  });

  it('rejects a wa_id that is not digits without calling Chatwoot', async () => {
    expect((await failure(makeDesk().ensureConversation({ ...PATIENT, waId: '+971 50' }, 'r'))).kind).toBe('rejected');
    expect(fake.requests).toHaveLength(0);
  });
});

describe('messages and status', () => {
  async function conversation(): Promise<string> {
    const { conversationId } = await makeDesk().ensureConversation(PATIENT, 'r');
    fake.requests.length = 0;
    return conversationId;
  }

  it('posts incoming, outgoing and private messages with their source_id, and returns the desk ids', async () => {
    const id = await conversation();
    const desk = makeDesk();

    const ids = [
      await desk.postMessage(id, { content: ARABIC, direction: 'incoming', private: false, sourceId: 'wamid.IN_1' }),
      await desk.postMessage(id, { content: 'Bot reply', direction: 'outgoing', private: false, sourceId: 'turn-1:0' }),
      await desk.postMessage(id, { content: 'Summary', direction: 'outgoing', private: true, sourceId: 'note-1' }),
    ];

    expect(fake.requestsOf('message_create').map((r) => r.body)).toEqual([
      { content: ARABIC, message_type: 'incoming', private: false, source_id: 'wamid.IN_1' },
      { content: 'Bot reply', message_type: 'outgoing', private: false, source_id: 'turn-1:0' },
      { content: 'Summary', message_type: 'outgoing', private: true, source_id: 'note-1' },
    ]);
    const stored = await fake.waitForMessages(id, 3);
    expect(stored.map((m) => [m.messageType, m.private, m.sourceId, m.content])).toEqual([
      ['incoming', false, 'wamid.IN_1', ARABIC],
      ['outgoing', false, 'turn-1:0', 'Bot reply'],
      ['outgoing', true, 'note-1', 'Summary'],
    ]);
    expect(ids).toEqual(stored.map((m) => String(m.id)));
  });

  it('findMessage finds a message by source_id among the newest page, and answers undefined otherwise', async () => {
    const id = await conversation();
    const desk = makeDesk();
    const first = await desk.postMessage(id, {
      content: 'a',
      direction: 'incoming',
      private: false,
      sourceId: 'wamid.A',
    });
    for (let i = 0; i < 20; i++) fake.seedMessage(Number(id), { content: `agent ${i}` });
    const last = await desk.postMessage(id, {
      content: 'b',
      direction: 'outgoing',
      private: false,
      sourceId: 'turn-9:0',
    });

    expect(await desk.findMessage(id, 'turn-9:0')).toBe(last);
    expect(await desk.findMessage(id, 'wamid.NEVER')).toBeUndefined();
    // Older than the newest 20: outside what the port promises to look at.
    expect(await desk.findMessage(id, 'wamid.A')).toBeUndefined();
    expect(first).not.toBe(last);
  });

  it('openConversation sets the status to open', async () => {
    const contact = fake.seedContact({ identifier: `wa:${WA_ID}` });
    const pending = fake.seedConversation({ contactId: contact.id, status: 'pending', sourceId: WA_ID });

    await makeDesk().openConversation(String(pending.id));

    expect(fake.requestsOf('toggle_status')[0].body).toEqual({ status: 'open' });
    expect(fake.conversation(pending.id)?.status).toBe('open');
  });
});

describe('errors', () => {
  it('401 and 403 are config errors', async () => {
    const wrongToken = makeDesk(undefined, { CHATWOOT_API_TOKEN: 'wrong-token' });
    const e401 = await failure(wrongToken.ensureConversation(PATIENT, 'r'));
    expect([e401.kind, e401.status]).toEqual(['config', 401]);
    expect(e401.message).not.toContain('wrong-token');

    const wrongAccount = makeDesk(undefined, { CHATWOOT_ACCOUNT_ID: '2' });
    expect((await failure(wrongAccount.openConversation('1'))).kind).toBe('config');

    fake.fail(1, { status: 403 });
    expect((await failure(makeDesk().findMessage('1', 'x'))).kind).toBe('config');
  });

  it('a 404 where no record of ours is named (search, contact create) is config: wrong base URL or inbox', async () => {
    const wrongInbox = await failure(makeDesk(undefined, { CHATWOOT_INBOX_ID: '9' }).ensureConversation(PATIENT, 'r'));
    expect([wrongInbox.kind, wrongInbox.status]).toEqual(['config', 404]);
    expect(fake.contacts()).toHaveLength(0);
    const wrongBase = makeDesk(undefined, { CHATWOOT_BASE_URL: `${fake.url}/chatwoot` });
    expect((await failure(wrongBase.ensureConversation(PATIENT, 'r'))).kind).toBe('config');
    // That request was outside Chatwoot's API on purpose: keep it out of the contract check.
    fake.reset();
  });

  it('404 is not_found: the conversation is gone', async () => {
    const desk = makeDesk();
    const post = { content: ARABIC, direction: 'incoming' as const, private: false, sourceId: 'wamid.X' };
    const e = await failure(desk.postMessage('999', post));
    expect([e.kind, e.status]).toEqual(['not_found', 404]);
    expect((await failure(desk.openConversation('999'))).kind).toBe('not_found');
    expect((await failure(desk.findMessage('999', 'x'))).kind).toBe('not_found');
    // Not a display id: it cannot exist, and no request is made.
    expect((await failure(desk.openConversation('abc'))).kind).toBe('not_found');
    expect(fake.requests).toHaveLength(3);
  });

  it('5xx, 429, a hang, a dropped connection, Chatwoot down and a refused connection are unavailable', async () => {
    const desk = makeDesk(undefined, {}, { timeoutMs: 300 });
    const call = (): Promise<unknown> => desk.ensureConversation(PATIENT, 'r');

    fake.fail(1, { status: 500 });
    expect(await failure(call())).toMatchObject({ kind: 'unavailable', status: 500 });
    fake.fail(1, { status: 429, on: 'contact_search' });
    expect(await failure(call())).toMatchObject({ kind: 'unavailable', status: 429 });
    fake.hang(1);
    const started = Date.now();
    expect((await failure(call())).kind).toBe('unavailable');
    expect(Date.now() - started).toBeLessThan(3000);
    fake.drop(1);
    expect((await failure(call())).kind).toBe('unavailable');
    fake.down = true;
    expect(await failure(call())).toMatchObject({ kind: 'unavailable', status: 503 });
    fake.down = false;
    expect(fake.pendingFaults()).toBe(0);

    const gone = await FakeChatwootServer.start();
    await gone.close();
    const refused = makeDesk(undefined, { CHATWOOT_BASE_URL: gone.url });
    expect((await failure(refused.openConversation('1'))).kind).toBe('unavailable');
  });

  it('other 4xx are rejected, and a 2xx that is not Chatwoot answering is unavailable', async () => {
    const desk = makeDesk();
    const post = { content: ARABIC, direction: 'outgoing' as const, private: false, sourceId: 's' };
    fake.fail(1, {
      on: 'message_create',
      status: 422,
      body: { message: 'Content is too long', attributes: ['content'] },
    });
    expect(await failure(desk.postMessage('1', post))).toMatchObject({ kind: 'rejected', status: 422 });

    // A contact Chatwoot refuses for good (a 422 that is not a collision with an existing one).
    fake.fail(1, { on: 'contact_create', status: 422, body: { message: 'Name is too long', attributes: ['name'] } });
    expect((await failure(desk.ensureConversation({ ...PATIENT, waId: '971500000777' }, 'r'))).kind).toBe('rejected');

    fake.fail(1, { on: 'message_create', status: 200, body: '<html>login</html>' });
    expect((await failure(desk.postMessage('1', post))).kind).toBe('unavailable');
  });
});

describe('metrics', () => {
  it('counts every request by operation and outcome', async () => {
    const metrics = new MetricsService();
    const desk = makeDesk(metrics);
    const { conversationId } = await desk.ensureConversation(PATIENT, 'r');
    await desk.postMessage(conversationId, { content: 'x', direction: 'incoming', private: false, sourceId: 'w1' });
    await desk.findMessage(conversationId, 'w1');
    await desk.openConversation(conversationId);
    fake.fail(2, { on: 'message_create', status: 503 });
    await failure(
      desk.postMessage(conversationId, { content: 'y', direction: 'incoming', private: false, sourceId: 'w2' }),
    );
    await failure(desk.postMessage('999', { content: 'y', direction: 'incoming', private: false, sourceId: 'w2' }));
    await failure(desk.postMessage('999', { content: 'y', direction: 'incoming', private: false, sourceId: 'w2' }));

    for (const operation of ALL_OPERATIONS) expect(await counted(metrics, operation, 'ok')).toBe(1);
    expect(await counted(metrics, 'message_create', 'unavailable')).toBe(2);
    expect(await counted(metrics, 'message_create', 'not_found')).toBe(1);
    expect(await counted(metrics, 'message_create', 'config')).toBe(0);
  });
});

describe("the contract: Chatwoot's OpenAPI description", () => {
  it('every request the adapter makes conforms, all eight operations included', async () => {
    const desk = makeDesk();
    const { conversationId } = await desk.ensureConversation(PATIENT, 'user_requested');
    await desk.postMessage(conversationId, { content: ARABIC, direction: 'incoming', private: false, sourceId: 'w' });
    await desk.postMessage(conversationId, { content: 'note', direction: 'outgoing', private: true, sourceId: 'n' });
    await desk.findMessage(conversationId, 'w');
    await desk.openConversation(conversationId);

    expect(new Set(operations())).toEqual(new Set(ALL_OPERATIONS));
    expectConformsToChatwootApi(fake.requests);
  });

  it('finds wrong requests: types, enums, unknown paths, methods, parameters and headers', () => {
    const conversations = '/api/v1/accounts/1/conversations';
    const check = (method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
      validateAgainstChatwootApi({ method, path, body, headers });

    expect(check('POST', conversations, { source_id: WA_ID, inbox_id: 5, contact_id: '101' })).toEqual([
      `POST ${conversations}: body/inbox_id must be string`,
    ]);
    expect(check('POST', `${conversations}/1/messages`, { content: 'x', message_type: 'note' })).toEqual([
      `POST ${conversations}/1/messages: body/message_type must be one of outgoing, incoming`,
    ]);
    // Why the adapter sends no content_type: "text" is not in the operation's enum.
    expect(check('POST', `${conversations}/1/messages`, { content: 'x', content_type: 'text' })).toHaveLength(1);
    expect(check('POST', `${conversations}/1/messages`, { private: true })[0]).toMatch(/required property 'content'/);
    expect(check('POST', '/api/v1/accounts/1/contacts', { inbox_id: '5', name: 'x' })).toEqual([
      'POST /api/v1/accounts/1/contacts: body/inbox_id must be number',
    ]);
    expect(check('GET', '/api/v1/accounts/1/contacts/lookup')[0]).toMatch(/path parameter id must be a number/);
    expect(check('GET', '/api/v1/accounts/1/inboxes/5/widgets')).toEqual([
      "GET /api/v1/accounts/1/inboxes/5/widgets: no such path in Chatwoot's API",
    ]);
    expect(check('PATCH', `${conversations}/1/toggle_status`, { status: 'open' })[0]).toMatch(/has no PATCH/);
    expect(check('GET', '/api/v1/accounts/one/contacts/search?q=1')[0]).toMatch(
      /path parameter account_id must be an integer/,
    );
    expect(check('GET', `/api/v1/accounts/1/contacts/search?q=1&exact=true`)[0]).toMatch(
      /query parameter exact is not declared/,
    );
    expect(check('GET', `/api/v1/accounts/1/contacts/search?q=1&page=two`)[0]).toMatch(/page must be an integer/);
    expect(check('GET', `${conversations}/1/messages`, undefined, {})).toEqual([
      `GET ${conversations}/1/messages: header api_access_token is missing`,
    ]);
    expect(check('POST', `${conversations}/1/toggle_status`, undefined)[0]).toMatch(/body is required/);
    expect(check('GET', `${conversations}/1/messages`, { x: 1 })[0]).toMatch(/takes no body/);
    expect(() => expectConformsToChatwootApi([])).toThrow(/no requests/);
  });
});

describe('webhooks, as the fake plays Chatwoot', () => {
  it('postWebhook sends the token, the signature headers and the JSON body real Chatwoot would send', async () => {
    const received: { url: string; headers: http.IncomingHttpHeaders; body: string }[] = [];
    const app = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    const target = `http://127.0.0.1:${(app.address() as AddressInfo).port}/chatwoot/webhook`;
    try {
      const reply = agentMessage({ conversationId: 42, content: ARABIC, waId: WA_ID });
      expect((await fake.postWebhook(target, reply, { token: 't k', secret: 's3cret' })).status).toBe(200);
      await fake.postWebhook(target, statusChanged({ conversationId: 42, status: 'resolved', waId: WA_ID }));

      const [signed, plain] = received;
      expect(signed.url).toBe('/chatwoot/webhook?token=t%20k');
      const timestamp = signed.headers['x-chatwoot-timestamp'] as string;
      expect(Math.abs(Number(timestamp) - Date.now() / 1000)).toBeLessThan(60);
      const hmac = createHmac('sha256', 's3cret').update(`${timestamp}.${signed.body}`).digest('hex');
      expect(signed.headers['x-chatwoot-signature']).toBe(`sha256=${hmac}`);
      expect(signed.headers['x-chatwoot-delivery']).toMatch(/^[0-9a-f-]{36}$/);
      expect(JSON.parse(signed.body)).toMatchObject({
        event: 'message_created',
        content: ARABIC,
        message_type: 'outgoing',
        private: false,
        source_id: null,
        sender: { type: 'user' },
        conversation: {
          id: 42,
          inbox_id: 5,
          contact_inbox: { source_id: WA_ID },
          additional_attributes: { wa_phone_number_id: TEST_PHONE_NUMBER_ID },
          meta: { sender: { phone_number: `+${WA_ID}`, identifier: `wa:${WA_ID}`, type: 'contact' } },
        },
      });
      expect(plain.url).toBe('/chatwoot/webhook');
      expect(plain.headers['x-chatwoot-signature']).toBeUndefined();
      expect(JSON.parse(plain.body)).toMatchObject({
        event: 'conversation_status_changed',
        id: 42,
        status: 'resolved',
        contact_inbox: { source_id: WA_ID },
        changed_attributes: [{ status: { previous_value: 'open', current_value: 'resolved' } }],
      });
    } finally {
      await new Promise((resolve) => app.close(resolve));
    }
  });
});
