import { createHmac } from 'node:crypto';
import { FakeEscalationHook } from '../fakes/fake-escalation-hook.server';
import { FakeChatwootServer } from '../fakes/fake-chatwoot.server';
import { BotCluster } from '../utils/bot-cluster';
import { agentMessage, statusChanged } from '../utils/chatwoot-payloads';
import { textPayload } from '../utils/meta-payloads';
import { waitUntil } from '../utils/spawn-app';
import { startTestApp, type TestApp } from '../utils/test-app';
import { TEST_PHONE_NUMBER_ID } from '../utils/test-env';

const PAUSE_SECONDS = 4;

/**
 * Without Chatwoot (docs/handover.md §3): a hand-over pauses the bot for HANDOFF_PAUSE_SECONDS, then it
 * answers again by itself; ESCALATION_WEBHOOK_URL gets a notice (a keyed hash, never the number),
 * retried until the pager takes it; LLM exhaustion sends the apology, notifies, and does not pause.
 */
describe('hand-over without Chatwoot: the timed pause and the escalation notice', () => {
  let bot: BotCluster;
  let hook: FakeEscalationHook;

  beforeAll(async () => {
    hook = await FakeEscalationHook.start();
    bot = await BotCluster.start({
      workers: 1,
      env: {
        HANDOFF_PAUSE_SECONDS: String(PAUSE_SECONDS),
        ESCALATION_WEBHOOK_URL: hook.url,
        CLINIC_PHONE: '+971 4 000 0000',
        LLM_MAX_ATTEMPTS: '2',
      },
    });
  }, 120_000);

  afterAll(async () => {
    await bot?.close();
    await hook?.close();
  });

  beforeEach(() => {
    bot.llm.reset();
    bot.graph.reset();
    hook.reset();
  });

  it('pauses for HANDOFF_PAUSE_SECONDS, then the bot resumes by itself; the notice is retried until taken', async () => {
    const from = '971500400001';
    hook.answer(503, 500);
    const escalatedAt = Date.now();
    await bot.post(textPayload({ from, text: 'I want a refund now' }));
    await bot.graph.waitForSends(1, 20_000);
    expect(bot.sentTexts(from)[0]).toContain('+971 4 000 0000');
    await waitUntil('the notice to be taken', () => hook.accepted.length === 1, 30_000);
    expect(hook.received.map((r) => r.status)).toEqual([503, 500, 200]);
    const notice = hook.accepted[0];
    expect(notice).toMatchObject({ event: 'escalation', trigger: 'keyword', chatwootConversationId: null });
    expect(notice.chat).toMatch(/^[0-9a-f]{16}$/);
    expect(JSON.stringify(notice)).not.toContain(from);
    expect(JSON.stringify(notice)).not.toContain('refund now');

    // Within the pause: kept, not answered, no LLM call.
    await bot.post(textPayload({ from, text: 'hello?' }));
    await bot.waitQuiet();
    expect(bot.llm.requests).toHaveLength(0);
    expect(bot.sentTexts(from)).toHaveLength(1);

    // After the pause: answered again, with the message sent during the pause in the history.
    await waitUntil('the pause to lapse', () => Date.now() > escalatedAt + PAUSE_SECONDS * 1000 + 500, 20_000);
    await bot.post(textPayload({ from, text: 'are you there?' }));
    await bot.graph.waitForSends(2, 20_000);
    await bot.waitQuiet();
    expect(bot.sentTexts(from).at(-1)).toBe('Echo: are you there?');
    const history = bot.llm.requests[0].body.messages.map((m: { content: string }) => m.content);
    expect(history).toContain('hello?');
  }, 60_000);

  it('LLM exhaustion: the apology with CLINIC_PHONE, a notice, a dead letter, and no pause', async () => {
    const from = '971500400002';
    bot.llm.mode = 'error500';
    await bot.post(textPayload({ from, text: 'what are your hours?' }));
    await bot.graph.waitForSends(2, 20_000); // holding, apology
    await waitUntil('the notice', () => hook.accepted.length === 1, 20_000);
    await bot.waitQuiet();
    expect(bot.sentTexts(from)[1]).toMatch(/^Sorry, we could not answer.*\+971 4 000 0000/);
    expect(hook.accepted[0]).toMatchObject({ trigger: 'exhausted' });
    bot.llm.mode = 'ok';
    await bot.post(textPayload({ from, text: 'and on Friday?' }));
    await bot.graph.waitForSends(3, 20_000);
    expect(bot.sentTexts(from).at(-1)).toBe('Echo: and on Friday?');
  }, 60_000);

  it('POST /chatwoot/webhook does not exist without Chatwoot', async () => {
    const res = await fetch(`${bot.receiver.url}/chatwoot/webhook?token=x`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(404);
  });
});

/** POST /chatwoot/webhook at the receiver: authentication first, bad bodies never 5xx, nothing queued. */
describe('POST /chatwoot/webhook', () => {
  const TOKEN = 'cw-hook-token';
  const SECRET = 'cw-hook-secret';
  let app: TestApp;
  let chatwoot: FakeChatwootServer;
  const waId = '971500400003';
  const lane = `c.${TEST_PHONE_NUMBER_ID}.${waId}`;
  const url = (token?: string) => `${app.url}/chatwoot/webhook${token === undefined ? '' : `?token=${token}`}`;
  const inbox = async () => app.redis.lrange(app.keys.inbox(lane), 0, -1);

  beforeAll(async () => {
    chatwoot = await FakeChatwootServer.start();
    app = await startTestApp({
      APP_ROLE: 'receiver',
      CHATWOOT_BASE_URL: chatwoot.url,
      CHATWOOT_WEBHOOK_TOKEN: TOKEN,
      CHATWOOT_WEBHOOK_SECRET: SECRET,
      CHATWOOT_INBOX_ID: '5',
    });
  });

  afterAll(async () => {
    await app?.close();
    await chatwoot?.close();
  });

  afterEach(async () => {
    await app.redis.del(app.keys.inbox(lane));
  });

  it('a signed agent reply with the right token is queued on the chat lane once, however often delivered', async () => {
    const payload = agentMessage({ conversationId: 42, content: 'Hi', waId, messageId: 9001 });
    for (let i = 0; i < 3; i++) {
      expect((await chatwoot.postWebhook(url(), payload, { token: TOKEN, secret: SECRET })).status).toBe(200);
    }
    const items = (await inbox()).map((raw) => JSON.parse(raw) as { kind: string; raw: unknown });
    expect(items).toEqual([
      expect.objectContaining({
        kind: 'chatwoot',
        raw: { event: 'agent_message', messageId: '9001', conversationId: '42', content: 'Hi', attachments: 0 },
      }),
    ]);
    const resolved = statusChanged({ conversationId: 42, status: 'resolved', waId });
    expect((await chatwoot.postWebhook(url(), resolved, { token: TOKEN, secret: SECRET })).status).toBe(200);
    expect(await inbox()).toHaveLength(2);
  });

  it.each([
    ['no token', undefined, SECRET],
    ['a wrong token', 'nope', SECRET],
    ['a token of another length', `${TOKEN}x`, SECRET],
    ['no signature', TOKEN, undefined],
    ['a wrong signature', TOKEN, 'other-secret'],
  ])('%s: 401, nothing queued', async (_name, token, secret) => {
    const payload = agentMessage({ conversationId: 42, content: 'Hi', waId });
    expect((await chatwoot.postWebhook(url(), payload, { token, secret })).status).toBe(401);
    expect(await inbox()).toEqual([]);
  });

  it('the signature over the raw bytes alone is accepted too (the format of some Chatwoot releases)', async () => {
    const raw = JSON.stringify(agentMessage({ conversationId: 42, content: 'Hi', waId }));
    const signature = createHmac('sha256', SECRET).update(raw).digest('hex');
    const res = await fetch(url(TOKEN), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-chatwoot-signature': `sha256=${signature}` },
      body: raw,
    });
    expect(res.status).toBe(200);
    expect(await inbox()).toHaveLength(1);
  });

  const signedPost = (body: string, contentType = 'application/json') => {
    const timestamp = String(Math.floor(Date.now() / 1000));
    const signature = createHmac('sha256', SECRET).update(`${timestamp}.${body}`).digest('hex');
    return fetch(url(TOKEN), {
      method: 'POST',
      headers: {
        'content-type': contentType,
        'x-chatwoot-timestamp': timestamp,
        'x-chatwoot-signature': `sha256=${signature}`,
      },
      body,
    });
  };

  it.each([
    ['not JSON', '{"event": ', 400],
    ['an array', '[1,2]', 400],
    ['a string', '"message_created"', 400],
    ['null', 'null', 400],
    ['deep nesting', `${'['.repeat(5000)}${']'.repeat(5000)}`, 400],
    [
      'an agent reply without a conversation',
      JSON.stringify({
        event: 'message_created',
        id: 1,
        message_type: 'outgoing',
        private: false,
        sender: { type: 'user' },
      }),
      400,
    ],
    ['an unknown event', JSON.stringify({ event: 'contact_created', id: 1 }), 200],
    ['wrong types everywhere', JSON.stringify({ event: 7, id: { a: 1 }, conversation: 'x' }), 200],
    [
      'a conversation that is not a WhatsApp chat',
      JSON.stringify({ event: 'conversation_status_changed', id: 3, status: 'resolved' }),
      200,
    ],
  ])('%s: never 5xx, nothing queued', async (_name, body, status) => {
    const res = await signedPost(body);
    expect(res.status).toBe(status);
    expect(await inbox()).toEqual([]);
  });

  it('another content type is 415, a body over the small limit 413', async () => {
    expect((await signedPost('{}', 'text/plain')).status).toBe(415);
    const big = JSON.stringify({ event: 'message_created', content: 'x'.repeat(200_000) });
    expect((await signedPost(big)).status).toBe(413);
  });
});
