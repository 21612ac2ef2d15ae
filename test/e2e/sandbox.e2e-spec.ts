import { Redis } from 'ioredis';
import { sandboxOutboxKey, type SandboxOutboxEntry } from '../../src/bsp/sandbox-bsp.client';
import { Pricing } from '../../src/costs/pricing';
import { chatLane } from '../../src/queue/lanes';
import { SANDBOX_CSP } from '../../src/sandbox/sandbox-assets';
import { BotCluster } from '../utils/bot-cluster';
import { envelope } from '../utils/meta-payloads';
import { pageMessage, postUnsigned, SandboxEventStream } from '../utils/sandbox-stream';
import { waitUntil } from '../utils/spawn-app';
import { startTestApp, type TestApp } from '../utils/test-app';

/**
 * GET /sandbox and its endpoints (docs/http-api.md): present only with the sandbox BSP on
 * receivers and `all`; the event stream carries a number's replies and mark-reads as the sandbox
 * BSP records them, from this process or a worker process; the state endpoint shows the chat's
 * window, hand-over, language, cost and turn timings; resolve hands a chat back to the bot.
 * The page's own behaviour in a browser: sandbox-browser.e2e-spec.ts.
 */

const SANDBOX = {
  BSP_PROVIDER: 'sandbox',
  WHATSAPP_APP_SECRET: undefined,
  WHATSAPP_VERIFY_TOKEN: undefined,
  WHATSAPP_PHONE_NUMBER_ID: undefined,
  META_ACCESS_TOKEN: undefined,
  LLM_PROVIDER: 'offline',
  TURN_DEBOUNCE_MS: '0',
};
const API_KEY = 'test-sandbox-api-key';
const HOUR_S = 3600;

let senderSeq = 0;
const nextSender = (): string => `9715030${String(senderSeq++).padStart(5, '0')}`;

const get = (t: TestApp, path: string, init?: RequestInit): Promise<Response> => fetch(`${t.url}${path}`, init);

describe('GET /sandbox exists only with the sandbox BSP, on receivers and all', () => {
  it.each([
    ['BSP_PROVIDER=meta, role all', { APP_ROLE: 'all' }],
    ['BSP_PROVIDER=meta, role receiver', { APP_ROLE: 'receiver' }],
    ['BSP_PROVIDER=sandbox, role worker', { ...SANDBOX, APP_ROLE: 'worker' }],
  ])('%s: every /sandbox path is 404', async (_, env) => {
    const t = await startTestApp({ META_GRAPH_URL: 'http://127.0.0.1:9', ...env });
    try {
      for (const path of [
        '/sandbox',
        '/sandbox/app.js',
        '/sandbox/app.css',
        '/sandbox/api/config',
        '/sandbox/api/state?waId=971500000001',
        '/sandbox/api/events?waId=971500000001',
        '/sandbox/clinic/slots?date=2030-01-07',
        '/sandbox/clinic/appointments?patientName=Sara',
      ]) {
        const res = await get(t, path);
        await res.text();
        expect({ path, status: res.status }).toEqual({ path, status: 404 });
      }
      const resolve = await get(t, '/sandbox/api/resolve', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ waId: '971500000001' }),
      });
      expect(resolve.status).toBe(404);
    } finally {
      await t.close();
    }
  });

  it('role receiver with the sandbox serves the page', async () => {
    const t = await startTestApp({ ...SANDBOX, APP_ROLE: 'receiver' });
    try {
      expect((await get(t, '/sandbox')).status).toBe(200);
    } finally {
      await t.close();
    }
  });
});

describe('GET /sandbox with the sandbox BSP, role all', () => {
  let t: TestApp;
  let pricing: Pricing;
  const streams: SandboxEventStream[] = [];

  const open = async (waId: string): Promise<SandboxEventStream> => {
    const stream = await SandboxEventStream.open(t.url, waId);
    streams.push(stream);
    expect(stream.status).toBe(200);
    await stream.waitFor('ready', (e) => e.event === 'ready');
    return stream;
  };
  const state = async (waId: string): Promise<any> => {
    const res = await get(t, `/sandbox/api/state?waId=${waId}`);
    expect(res.status).toBe(200);
    return res.json();
  };
  const say = async (waId: string, text: string, options: { timestamp?: number } = {}) => {
    const sent = pageMessage(t.config.phoneNumberId, waId, { type: 'text', text: { body: text } }, options);
    expect(await postUnsigned(t.url, sent.payload)).toBe(200);
    return sent;
  };
  const outbox = async (): Promise<SandboxOutboxEntry[]> =>
    (await t.redis.lrange(sandboxOutboxKey(t.keys), 0, -1)).map((raw) => JSON.parse(raw) as SandboxOutboxEntry);
  const repliesTo = async (waId: string): Promise<SandboxOutboxEntry[]> =>
    (await outbox()).filter((e) => e.operation === 'text' && e.payload.to === waId);

  beforeAll(async () => {
    t = await startTestApp({
      ...SANDBOX,
      API_KEYS: API_KEY,
      // A short request timeout: the event stream must outlive the server's idle-socket cut.
      HTTP_REQUEST_TIMEOUT_MS: '1000',
    });
    pricing = t.app.get(Pricing, { strict: false });
  });

  afterEach(async () => {
    await Promise.all(streams.splice(0).map((s) => s.close()));
  });

  afterAll(async () => {
    await t?.close();
  });

  it('serves the page and its files with a strict Content-Security-Policy and no inline script', async () => {
    const page = await get(t, '/sandbox');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toBe(SANDBOX_CSP);
    expect(SANDBOX_CSP).toContain("script-src 'self'");
    expect(SANDBOX_CSP).not.toMatch(/unsafe-inline|unsafe-eval|https?:|\*/);
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await page.text();
    // Every script is a same-origin file; no handler attributes, no inline styles, nothing remote.
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.map((m) => m[1].trim())).toEqual(['src="/sandbox/app.js" defer']);
    expect(scripts.every((m) => m[2].trim() === '')).toBe(true);
    expect(html).not.toMatch(/\son[a-z]+\s*=/i);
    expect(html).not.toMatch(/\sstyle\s*=/i);
    expect(html).not.toMatch(/(?:src|href)="(?:https?:)?\/\//i);
    expect(html).toMatch(/<input\s+id="text"\s+dir="auto"/);

    for (const [path, type] of [
      ['/sandbox/app.js', /^text\/javascript/],
      ['/sandbox/app.css', /^text\/css/],
      ['/sandbox/icon.svg', /^image\/svg\+xml/],
    ] as const) {
      const res = await get(t, path);
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
      expect(res.headers.get('content-type')).toMatch(type);
      const body = await res.text();
      expect(body).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    }
    const script = await (await get(t, '/sandbox/app.js')).text();
    // Data reaches the page as text only.
    expect(script).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/);
  });

  it("GET /sandbox/api/config names the deployment's phone_number_id, as /v1 uses", async () => {
    const res = await get(t, '/sandbox/api/config');
    expect(await res.json()).toEqual({
      phoneNumberId: t.config.phoneNumberId,
      displayPhoneNumber: expect.stringMatching(/^\d+$/),
      clinicName: t.config.env.CLINIC_NAME,
    });
    expect(t.config.phoneNumberId).toBe('100000000000001');
  });

  it('the event stream carries the mark-read (typing) and the reply of a posted message, and only to its number', async () => {
    const me = nextSender();
    const other = nextSender();
    const mine = await open(me);
    const theirs = await open(other);
    expect(mine.contentType).toMatch(/^text\/event-stream/);
    // Longer than the server's idle-socket cut (request timeout + ingest timeout): still open.
    await new Promise((r) => setTimeout(r, 3500));
    expect(mine.ended).toBe(false);

    const sent = await say(me, 'Hello, I would like an appointment');
    const read = await mine.waitFor('the mark-read', (e) => e.event === 'read');
    expect(read).toMatchObject({ messageId: sent.id, typing: true });
    const reply = await mine.waitFor('the reply', (e) => e.event === 'message');
    const [recorded] = await repliesTo(me);
    expect(reply).toMatchObject({
      id: recorded.id,
      kind: 'text',
      text: (recorded.payload.text as { body: string }).body,
      callbackData: recorded.payload.biz_opaque_callback_data,
      pricing: { pricing_model: 'PMP', category: 'service' },
    });
    expect(reply.text.length).toBeGreaterThan(0);

    await say(other, 'Hi');
    await theirs.waitFor('the other number’s reply', (e) => e.event === 'message');
    await new Promise((r) => setTimeout(r, 300));
    expect(mine.named('message')).toHaveLength(1);
    expect(mine.named('read')).toHaveLength(1);
    expect(theirs.named('message')).toHaveLength(1);
    expect(theirs.named('message')[0].id).not.toBe(reply.id);
  });

  it('a duplicate delivery (the same wamid again) gets one reply', async () => {
    const me = nextSender();
    const stream = await open(me);
    const sent = await say(me, 'Hello');
    await stream.waitFor('the reply', (e) => e.event === 'message');
    expect(await postUnsigned(t.url, sent.payload)).toBe(200);
    await say(me, 'My name is Sara Ali');
    await waitUntil('the second reply', async () => (await repliesTo(me)).length >= 2, 15_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(stream.named('message')).toHaveLength(2);
    expect(await repliesTo(me)).toHaveLength(2);
  });

  it('the statuses the page posts for a reply move its record to read and bill it; the state shows window, language, cost and timings', async () => {
    const me = nextSender();
    const stream = await open(me);
    const sent = await say(me, 'مرحبا، أريد حجز موعد');
    const reply = await stream.waitFor('the reply', (e) => e.event === 'message');
    for (const status of ['sent', 'delivered', 'read']) {
      const s: Record<string, unknown> = {
        id: reply.id,
        status,
        timestamp: String(Math.floor(Date.now() / 1000)),
        recipient_id: me,
        biz_opaque_callback_data: reply.callbackData,
      };
      if (status !== 'read') s.pricing = reply.pricing;
      expect(await postUnsigned(t.url, envelope({ statuses: [s] }, t.config.phoneNumberId))).toBe(200);
    }
    await waitUntil(
      'the record to be read',
      async () => (await t.redis.hget(t.keys.outbound(reply.id), 'status')) === 'read',
      15_000,
    );
    // The pricing on the statuses reached the billed side of the ledger.
    expect(await t.redis.exists(t.keys.costOnce('billed', reply.id))).toBe(1);

    const shown = await state(me);
    const ts = Number((sent.payload as any).entry[0].changes[0].value.messages[0].timestamp);
    const estimate = pricing.estimate({ to: me, category: 'service', at: Date.now(), inWindow: true });
    expect(shown).toMatchObject({
      waId: me,
      window: { open: true, closesAt: new Date((ts + 24 * HOUR_S) * 1000).toISOString() },
      handoff: { state: 'bot', since: null },
      language: 'ar',
      name: 'Sara',
      costUsd: estimate,
    });
    expect(shown.turns).toEqual([{ at: expect.any(String), ms: expect.any(Number), outcome: 'replied' }]);
    expect(shown.turns[0].ms).toBeGreaterThanOrEqual(0);
    expect(shown.turns[0].ms).toBeLessThan(15_000);
    expect(shown.history.map((h: { role: string }) => h.role)).toEqual(['user', 'assistant']);
    expect(shown.history[0].text).toBe('مرحبا، أريد حجز موعد');

    // The sandbox's demo clinic: its API's path and its upcoming bookings, every patient's.
    expect(shown.clinic.api).toBe('/sandbox/clinic');
    expect(Array.isArray(shown.clinic.bookings)).toBe(true);
    const booked = await get(t, '/sandbox/clinic/bookings', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ slotId: '2030-01-07T09:00', patientName: 'مريم علي', reason: 'cleaning' }),
    });
    expect(booked.status).toBe(201);
    const booking = await booked.json();
    const after = await state(me);
    expect(after.clinic.bookings[0]).toEqual(booking);
    expect(after.clinic.bookings[0]).toMatchObject({ date: '2030-01-07', time: '09:00', patientName: 'مريم علي' });
  });

  it('keeps the last 10 turn timings, newest first, as long as the history', async () => {
    const me = nextSender();
    const lane = chatLane(t.config.phoneNumberId, me);
    // An older turn's timing: ten more turns (the most a chat gets in a minute) push it out.
    const oldest = { at: Date.now() - 60_000, ms: 1, outcome: 'oldest' };
    await t.redis.lpush(t.keys.chatTurns(lane), JSON.stringify(oldest));
    const stream = await open(me);
    for (let i = 0; i < 10; i++) {
      await say(me, `message ${i}`);
      await stream.waitFor(`reply ${i}`, () => stream.named('message').length > i);
    }
    await waitUntil('10 turns committed', async () => (await state(me)).history.length >= 20, 15_000);
    const shown = await state(me);
    expect(shown.turns).toHaveLength(10);
    expect(shown.turns.map((turn: { outcome: string }) => turn.outcome)).not.toContain('oldest');
    const times = shown.turns.map((turn: { at: string }) => Date.parse(turn.at));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    const [turnsTtl, historyTtl] = await Promise.all([
      t.redis.ttl(t.keys.chatTurns(lane)),
      t.redis.ttl(t.keys.history(lane)),
    ]);
    expect(Math.abs(turnsTtl - historyTtl)).toBeLessThanOrEqual(2);
    expect(await t.redis.ttl(t.keys.chatCost(lane))).toBeGreaterThan(0);
  });

  it('a message written 25 h ago takes the closed-window path (a hand-over, no reply); resolve hands the chat back', async () => {
    const me = nextSender();
    const stream = await open(me);
    await say(me, 'Are you open tomorrow?', { timestamp: Math.floor(Date.now() / 1000) - 25 * HOUR_S });
    await waitUntil('the hand-over', async () => (await state(me)).handoff.state === 'human', 15_000);
    const shown = await state(me);
    expect(shown.window.open).toBe(false);
    expect(shown.handoff.since).toEqual(expect.any(String));
    expect(shown.turns[0].outcome).toBe('escalated');
    expect(stream.named('message')).toEqual([]);

    const resolved = await get(t, '/sandbox/api/resolve', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ waId: me }),
    });
    expect(resolved.status).toBe(200);
    expect(await resolved.json()).toEqual({ waId: me, resumed: true });
    expect((await state(me)).handoff).toEqual({ state: 'bot', since: null });

    // The bot answers the patient's next message.
    await say(me, 'Hello again');
    await stream.waitFor('the reply after resolve', (e) => e.event === 'message');

    const again = await get(t, '/sandbox/api/resolve', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ waId: me }),
    });
    expect(await again.json()).toEqual({ waId: me, resumed: false });
  });

  it('erasing a chat (DELETE /v1/conversations) erases its cost counter and turn timings too', async () => {
    const me = nextSender();
    const stream = await open(me);
    await say(me, 'Hello');
    await stream.waitFor('the reply', (e) => e.event === 'message');
    const lane = chatLane(t.config.phoneNumberId, me);
    await waitUntil('the turn to commit', async () => (await t.redis.exists(t.keys.chatTurns(lane))) === 1, 15_000);
    expect(await t.redis.exists(t.keys.chatCost(lane))).toBe(1);
    const erased = await get(t, `/v1/conversations/${me}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(erased.status).toBe(200);
    expect(await t.redis.exists(t.keys.chatTurns(lane), t.keys.chatCost(lane))).toBe(0);
    expect(await state(me)).toMatchObject({ costUsd: 0, turns: [], history: [], language: null });
  });

  it('refuses a bad number (400) and a resolve that is not JSON (415)', async () => {
    for (const path of [
      '/sandbox/api/state',
      '/sandbox/api/state?waId=abc',
      '/sandbox/api/state?waId=%2B971500000001',
      '/sandbox/api/events?waId=12',
    ]) {
      const res = await get(t, path);
      expect({ path, status: res.status }).toEqual({ path, status: 400 });
      expect(await res.json()).toMatchObject({ error: 'invalid_query' });
    }
    const bad = await get(t, '/sandbox/api/resolve', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ waId: '1' }),
    });
    expect(bad.status).toBe(400);
    // A cross-site form can only send text/plain or form bodies: never taken.
    const form = await get(t, '/sandbox/api/resolve', {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: JSON.stringify({ waId: '971500000001' }),
    });
    expect(form.status).toBe(415);
  });
});

describe('the event stream and shutdown', () => {
  it('closing the app ends open streams at once, and closes its subscriber connection', async () => {
    const t = await startTestApp(SANDBOX);
    const probe = new Redis(t.config.env.REDIS_URL, { maxRetriesPerRequest: 1 });
    // Other apps may share this Redis: the subscriber is told apart by its id, not its name.
    const subscribers = async (): Promise<string[]> =>
      ((await probe.call('CLIENT', 'LIST')) as string)
        .split('\n')
        .filter((line) => / name=tawasul-sandbox-events /.test(line))
        .map((line) => /(?:^| )id=(\d+)/.exec(line)![1]);
    try {
      const before = await subscribers();
      const stream = await SandboxEventStream.open(t.url, '971500000001');
      await stream.waitFor('ready', (e) => e.event === 'ready');
      const ours = (await subscribers()).filter((id) => !before.includes(id));
      expect(ours).toHaveLength(1);
      const started = Date.now();
      await t.close();
      expect(Date.now() - started).toBeLessThan(5_000);
      await stream.waitEnded();
      expect(stream.ended).toBe(true);
      await stream.close();
      await waitUntil('the subscriber to disconnect', async () => !(await subscribers()).includes(ours[0]), 5_000);
    } finally {
      probe.disconnect();
    }
  });
});

describe('the event stream with the worker in another process', () => {
  let bot: BotCluster;

  beforeAll(async () => {
    bot = await BotCluster.start({ workers: 1, env: { ...SANDBOX, LLM_PROVIDER: 'openai' } });
  }, 60_000);

  afterAll(async () => {
    await bot?.close();
  });

  it('a reply sent by the worker process reaches the page served by the receiver', async () => {
    const me = '971503099999';
    const stream = await SandboxEventStream.open(bot.receiver.url, me);
    try {
      await stream.waitFor('ready', (e) => e.event === 'ready');
      const sent = pageMessage(bot.receiver.config.phoneNumberId, me, { type: 'text', text: { body: 'Hello' } });
      expect(await postUnsigned(bot.receiver.url, sent.payload)).toBe(200);
      const reply = await stream.waitFor('the reply', (e) => e.event === 'message', 30_000);
      expect(reply.text.length).toBeGreaterThan(0);
      expect(bot.llm.requests.length).toBeGreaterThan(0);
    } finally {
      await stream.close();
    }
  });
});
