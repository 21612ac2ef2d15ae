import { readFileSync } from 'node:fs';
import { rawRequest, type RawRequest, type RawResponse } from '../utils/raw-http';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { chatLane, statusLane } from '../../src/queue/lanes';
import { envelope, freshWamid, nowSeconds, statusPayload, textMessage, textPayload } from '../utils/meta-payloads';
import { signBody } from '../utils/sign';
import { inboxItems, startTestApp, type TestApp } from '../utils/test-app';
import { TEST_D360_SECRET, TEST_PHONE_NUMBER_ID, TEST_VERIFY_TOKEN } from '../utils/test-env';

/*
 * POST /webhook and GET /webhook against the real app and a real Redis.
 * Apps run as APP_ROLE=receiver: a receiver never consumes, so whatever a test enqueues stays in
 * Redis for it to inspect, even once the worker exists.
 */

const PN = TEST_PHONE_NUMBER_ID;
/** Well formed, but over other bytes and with another key. */
const signBodyWithOtherSecret = signBody('{}', 'another_secret');
const receiver = (env: Record<string, string | undefined> = {}): Promise<TestApp> =>
  startTestApp({ APP_ROLE: 'receiver', ...env });

// ---------------------------------------------------------------------------------------------
// Helpers

/** POST /webhook (or `path`) over a raw connection: no content type, a chunked body, a body kept back. */
const rawPost = (baseUrl: string, send: Omit<RawRequest, 'path'>, path = '/webhook'): Promise<RawResponse> =>
  rawRequest(baseUrl, { ...send, path, timeoutMs: 5_000 });

const jsonHeaders = (raw: string | Buffer): Record<string, string> => ({
  'content-type': 'application/json',
  'x-hub-signature-256': signBody(raw),
});

/** Every key under the app's hash-tagged prefix (SCAN, never KEYS on a shared Redis). */
async function appKeys(t: TestApp): Promise<string[]> {
  const pattern = `${t.config.redisKeyRoot.replace(/[{}[\]*?]/g, (c) => `\\${c}`)}*`;
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await t.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    found.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return found.sort();
}

/** Keys that only exist once something was enqueued: inboxes, dedup keys, pending set, wake-up jobs. */
async function workKeys(t: TestApp): Promise<string[]> {
  const root = t.config.redisKeyRoot;
  return (await appKeys(t)).filter(
    (k) =>
      k.startsWith(`${root}:inbox:`) ||
      k.startsWith(`${root}:seen:`) ||
      k === t.keys.pending ||
      k === t.keys.unhandled ||
      /^[^:]+:turns:(?:[cs]\.|wait$)/.test(k),
  );
}

async function unhandledItems(t: TestApp): Promise<unknown[]> {
  const raw = await t.redis.lrange(t.keys.unhandled, 0, -1);
  return raw.map((r) => JSON.parse((JSON.parse(r) as { raw: string }).raw) as unknown);
}

async function scrape(t: TestApp): Promise<string> {
  const res = await fetch(`${t.url}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/** Parses Prometheus text into samples: name, labels, value. */
function samples(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const out: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of the samples of `name` whose labels include `labels`. */
function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  return samples(text)
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

const outcomes = ['accepted', 'duplicate', 'ignored', 'unauthorized', 'invalid'] as const;
const outcomeCounts = (text: string): Record<string, number> =>
  Object.fromEntries(outcomes.map((o) => [o, metric(text, 'tawasul_webhook_requests_total', { outcome: o })]));

const keyOf = (items: Record<string, any>[]): string[] => items.map((i) => i.key as string);

// ---------------------------------------------------------------------------------------------

describe('GET /webhook (subscription handshake)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await receiver();
  });
  afterAll(() => t.close());

  const verify = (query: Record<string, string>): Promise<Response> =>
    fetch(`${t.url}/webhook?${new URLSearchParams(query).toString()}`);

  it.each(['1158201444', 'challenge "with" quotes & {json}'])(
    'answers the right mode and token with the challenge, verbatim, as text/plain: %j',
    async (challenge) => {
      const res = await verify({
        'hub.mode': 'subscribe',
        'hub.verify_token': TEST_VERIFY_TOKEN,
        'hub.challenge': challenge,
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain\b/);
      expect(await res.text()).toBe(challenge);
    },
  );

  it.each<[string, Record<string, string>]>([
    ['a wrong token', { 'hub.mode': 'subscribe', 'hub.verify_token': 'not-the-token', 'hub.challenge': '1' }],
    ['a token of another length', { 'hub.mode': 'subscribe', 'hub.verify_token': 'x', 'hub.challenge': '1' }],
    ['a wrong mode', { 'hub.mode': 'unsubscribe', 'hub.verify_token': TEST_VERIFY_TOKEN, 'hub.challenge': '1' }],
    ['no mode', { 'hub.verify_token': TEST_VERIFY_TOKEN, 'hub.challenge': '1' }],
    ['no token', { 'hub.mode': 'subscribe', 'hub.challenge': '1' }],
    ['no challenge', { 'hub.mode': 'subscribe', 'hub.verify_token': TEST_VERIFY_TOKEN }],
    ['no parameters at all', {}],
  ])('refuses %s with 403', async (_, query) => {
    const res = await verify(query);
    expect(res.status).toBe(403);
    expect(await res.text()).not.toContain('1');
  });
});

describe('POST /webhook with BSP_PROVIDER=meta', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await receiver();
  });
  afterAll(() => t.close());

  describe('signature (401 before anything is stored)', () => {
    const sender = '971500000101';
    const lane = chatLane(PN, sender);

    it('refuses a missing signature with 401', async () => {
      const raw = JSON.stringify(textPayload({ from: sender }));
      const res = await rawPost(t.url, { headers: { 'content-type': 'application/json' }, body: raw });
      expect(res.status).toBe(401);
      expect(await inboxItems(t, lane)).toEqual([]);
    });

    it('refuses a missing signature before the body is read', async () => {
      const res = await rawPost(t.url, { headers: { 'content-type': 'application/json' }, withholdBody: true });
      expect(res.status).toBe(401);
    });

    it('refuses a malformed signature before the body is read', async () => {
      const res = await rawPost(t.url, {
        headers: { 'content-type': 'application/json', 'x-hub-signature-256': 'sha256=abc' },
        withholdBody: true,
      });
      expect(res.status).toBe(401);
    });

    it.each<[string, (good: string) => string]>([
      ['without the sha256= prefix', (good) => good.slice('sha256='.length)],
      ['with another algorithm prefix', (good) => `sha1=${good.slice('sha256='.length)}`],
      ['with a short hex digest', (good) => good.slice(0, -2)],
      ['with a long hex digest', (good) => `${good}00`],
      ['with non-hex characters', () => `sha256=${'zz'.repeat(32)}`],
      ['empty', () => ''],
      ['wrong (signed with another secret)', () => signBodyWithOtherSecret],
      ['wrong by one digit', (good) => good.slice(0, -1) + (good.endsWith('0') ? '1' : '0')],
    ])('refuses a signature %s with 401 and stores nothing', async (_, corrupt) => {
      const raw = JSON.stringify(textPayload({ from: sender }));
      const res = await t.postSigned(raw, { 'x-hub-signature-256': corrupt(signBody(raw)) });
      expect(res.status).toBe(401);
      expect(await inboxItems(t, lane)).toEqual([]);
    });

    it('accepts the right signature with 200, the item already in its inbox', async () => {
      const payload = textPayload({ from: '971500000102', text: 'signed right' });
      const res = await t.postSigned(payload);
      expect(res.status).toBe(200);
      expect((await res.text()).length).toBeLessThan(64);
      const items = await inboxItems(t, chatLane(PN, '971500000102'));
      expect(items.map((i) => i.raw.text.body)).toEqual(['signed right']);
    });
  });

  describe('Meta signature test vectors', () => {
    const emptyBody = '{"object":"whatsapp_business_account","entry":[]}';
    const arabicBody =
      '{"object":"whatsapp_business_account","entry":[{"id":"200000000000002","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"100000000000001"},"contacts":[{"profile":{"name":"\\u0645\\u062d\\u0645\\u062f"},"wa_id":"971500000001"}],"messages":[{"from":"971500000001","id":"wamid.TEST_IN_0001","timestamp":"1767225600","type":"text","text":{"body":"hi"}}]}}]}]}';
    const arabicSignature = 'sha256=3309c6beb00ed905c67488e086bfe41d27b238c9f189e446a48a61af2919c7a8';

    it('signBody gives the documented values', () => {
      expect(signBody(emptyBody, 'test_app_secret')).toBe(
        'sha256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756',
      );
      expect(signBody(arabicBody, 'test_app_secret')).toBe(arabicSignature);
      expect(signBody(JSON.stringify(JSON.parse(arabicBody)), 'test_app_secret')).toMatch(/^sha256=02b0b6e4/);
    });

    it('the app accepts the documented body under the documented signature', async () => {
      const app = await receiver();
      try {
        const res = await rawPost(app.url, {
          headers: { 'content-type': 'application/json', 'x-hub-signature-256': arabicSignature },
          body: arabicBody,
        });
        expect(res.status).toBe(200);
        const items = await inboxItems(app, chatLane(PN, '971500000001'));
        expect(items).toHaveLength(1);
        expect(items[0].contact.name).toBe('محمد');
      } finally {
        await app.close();
      }
    });
  });

  describe('415: only JSON', () => {
    const raw = JSON.stringify(textPayload({ from: '971500000111' }));

    it.each<[string, Record<string, string>]>([
      ['text/plain without a signature', { 'content-type': 'text/plain' }],
      ['text/plain with a valid signature', { 'content-type': 'text/plain', 'x-hub-signature-256': signBody(raw) }],
      ['no content type, with a valid signature', { 'x-hub-signature-256': signBody(raw) }],
      ['form data', { 'content-type': 'application/x-www-form-urlencoded', 'x-hub-signature-256': signBody(raw) }],
    ])('refuses %s with 415', async (_, headers) => {
      const res = await rawPost(t.url, { headers, body: raw });
      expect(res.status).toBe(415);
      expect(await inboxItems(t, chatLane(PN, '971500000111'))).toEqual([]);
    });

    it('refuses a wrong content type before the body is read', async () => {
      const res = await rawPost(t.url, { headers: { 'content-type': 'text/plain' }, withholdBody: true });
      expect(res.status).toBe(415);
    });

    it('accepts application/json with a charset parameter', async () => {
      const body = JSON.stringify(textPayload({ from: '971500000112' }));
      const res = await rawPost(t.url, {
        headers: { 'content-type': 'application/json; charset=utf-8', 'x-hub-signature-256': signBody(body) },
        body,
      });
      expect(res.status).toBe(200);
      expect(await inboxItems(t, chatLane(PN, '971500000112'))).toHaveLength(1);
    });
  });

  describe('400: signed but not a JSON object', () => {
    it.each<[string, string]>([
      ['not JSON', '{"object": "whatsapp_business_account", '],
      ['a JSON array', '[{"object":"whatsapp_business_account","entry":[]}]'],
      ['JSON null', 'null'],
      ['a JSON string', '"str"'],
      ['a JSON number', '42'],
      ['an empty body', ''],
    ])('answers %s with 400', async (_, body) => {
      const res = await t.postSigned(body);
      expect(res.status).toBe(400);
    });

    it('answers unsigned garbage with 401, not 400: the signature comes first', async () => {
      const res = await t.postSigned('not json', { 'x-hub-signature-256': signBody('other bytes') });
      expect(res.status).toBe(401);
    });
  });

  describe('statuses deduplicate by id and status', () => {
    it("keeps one item for the same id 'sent' twice", async () => {
      const id = freshWamid();
      const recipient = '971500000121';
      expect((await t.postSigned(statusPayload(id, 'sent', recipient))).status).toBe(200);
      expect((await t.postSigned(statusPayload(id, 'sent', recipient))).status).toBe(200);
      const items = await inboxItems(t, statusLane(PN, recipient));
      expect(keyOf(items)).toEqual([`s:${id}:sent`]);
    });

    it("keeps both 'sent' and 'delivered' of one id, in order", async () => {
      const id = freshWamid();
      const recipient = '971500000122';
      expect((await t.postSigned(statusPayload(id, 'sent', recipient))).status).toBe(200);
      expect((await t.postSigned(statusPayload(id, 'delivered', recipient))).status).toBe(200);
      const items = await inboxItems(t, statusLane(PN, recipient));
      expect(keyOf(items)).toEqual([`s:${id}:sent`, `s:${id}:delivered`]);
      expect(items.map((i) => i.kind)).toEqual(['status', 'status']);
    });
  });

  describe('items we do not understand (200, kept raw, counted)', () => {
    it('keeps a new message type, a sender-less message and an id-less status raw, and enqueues the rest', async () => {
      const before = await scrape(t);
      const poll = { ...textMessage({ from: '971500000131' }), type: 'poll', poll: { question: 'Which day?' } };
      const senderless = { id: freshWamid(), timestamp: nowSeconds(), type: 'text', text: { body: 'who am I' } };
      const idless = { status: 'delivered', timestamp: nowSeconds(), recipient_id: '971500000131' };
      const good = textMessage({ from: '971500000132', text: 'understood' });
      const res = await t.postSigned(envelope({ messages: [poll, senderless, good], statuses: [idless] }));
      expect(res.status).toBe(200);

      expect(await unhandledItems(t)).toEqual(expect.arrayContaining([poll, senderless, idless]));
      expect(await inboxItems(t, chatLane(PN, '971500000131'))).toEqual([]);
      expect((await inboxItems(t, chatLane(PN, '971500000132'))).map((i) => i.raw)).toEqual([good]);

      const after = await scrape(t);
      const kinds = new Map<string, number>();
      for (const s of samples(after).filter((x) => x.name === 'tawasul_unhandled_items_total')) {
        kinds.set(s.labels.kind, s.value - metric(before, 'tawasul_unhandled_items_total', { kind: s.labels.kind }));
      }
      // One count per unhandled item, each under its own kind.
      expect([...kinds.values()].reduce((a, b) => a + b, 0)).toBe(3);
      expect([...kinds.values()].filter((v) => v === 1)).toHaveLength(3);
    });

    // V8 parses nesting far deeper than it can serialise; before the fix the first answered 500 and
    // the second 503 at every retry, with Redis healthy.
    it.each<[string, (deep: string) => string]>([
      ['inside entry[]', (deep) => `{"object":"whatsapp_business_account","entry":[${deep}]}`],
      [
        'inside a text message',
        (deep) => JSON.stringify(textPayload({ from: '971500000133', text: 'DEEP' })).replace('"DEEP"', deep),
      ],
    ])('keeps a body nested 100000 deep %s raw with 200, never a 5xx', async (_, build) => {
      const raw = build(`${'['.repeat(100_000)}${']'.repeat(100_000)}`);
      const res = await t.postSigned(raw);
      expect(res.status).toBe(200);
      // Kept raw, but capped: a 3 MB body must not become a 3 MB list entry each time Meta retries.
      const kept = JSON.parse((await t.redis.lindex(t.keys.unhandled, 0))!);
      expect(kept).toMatchObject({ kind: 'nesting', truncated: true, length: raw.length });
      expect(raw.startsWith(kept.head)).toBe(true);
      expect(kept.head.length).toBeGreaterThan(1000);
      expect(await inboxItems(t, chatLane(PN, '971500000133'))).toEqual([]);
    });

    it('keys a sender who only has a business-scoped user id (BSUID) by it', async () => {
      const bsuid = 'AE.1234567890123';
      const message = {
        id: freshWamid(),
        from_user_id: bsuid,
        timestamp: nowSeconds(),
        type: 'text',
        text: { body: 'x' },
      };
      const contacts = [{ profile: { name: 'Username User' }, user_id: bsuid }];
      expect((await t.postSigned(envelope({ contacts, messages: [message] }))).status).toBe(200);
      const items = await inboxItems(t, chatLane(PN, bsuid));
      expect(items.map((i) => i.raw)).toEqual([message]);
      expect(items[0].lane).toBe(`c.${PN}.${bsuid}`);
      expect(items[0].contact).toMatchObject({ name: 'Username User', userId: bsuid });
    });
  });

  describe('concurrent deliveries and batches', () => {
    it('enqueues one item when the same payload arrives 10 times at once', async () => {
      const sender = '971500000141';
      const raw = JSON.stringify(textPayload({ from: sender }));
      const before = outcomeCounts(await scrape(t));
      const answers = await Promise.all(
        Array.from({ length: 10 }, () => rawPost(t.url, { headers: jsonHeaders(raw), body: raw })),
      );
      expect(answers.map((a) => a.status)).toEqual(Array(10).fill(200));
      expect(await inboxItems(t, chatLane(PN, sender))).toHaveLength(1);
      const after = outcomeCounts(await scrape(t));
      expect(after.accepted - before.accepted).toBe(1);
      expect(after.duplicate - before.duplicate).toBe(9);
    });

    it('puts every item of 2 entries x 2 changes into its lane, in payload order, with a wake-up per lane', async () => {
      const [a, b, c] = ['971500000151', '971500000152', 'AE.5550000000151'];
      const [r1, r2] = ['971500000153', '971500000154'];
      const [o1, o2] = [freshWamid(), freshWamid()];
      const msg = (from: string, text: string) =>
        from.startsWith('AE.')
          ? { id: freshWamid(), from_user_id: from, timestamp: nowSeconds(), type: 'text', text: { body: text } }
          : textMessage({ from, text });
      const st = (id: string, status: string, recipient: string) => ({
        id,
        status,
        timestamp: nowSeconds(),
        recipient_id: recipient,
      });
      const change = (value: Record<string, unknown>) => envelope(value).entry as Record<string, any>[];
      const changes = (...values: Record<string, unknown>[]) => values.map((v) => change(v)[0].changes[0]);
      const payload = {
        object: 'whatsapp_business_account',
        entry: [
          {
            id: '200000000000002',
            changes: changes(
              { messages: [msg(a, 'a1'), msg(b, 'b1'), msg(a, 'a2')], statuses: [st(o1, 'sent', r1)] },
              { messages: [msg(b, 'b2'), msg(c, 'c1'), msg(a, 'a3')], statuses: [st(o1, 'delivered', r1)] },
            ),
          },
          {
            id: '200000000000002',
            changes: changes(
              { statuses: [st(o2, 'sent', r2), st(o1, 'read', r1)], messages: [msg(c, 'c2')] },
              { messages: [msg(a, 'a4'), msg(b, 'b3')] },
            ),
          },
        ],
      };
      expect((await t.postSigned(payload)).status).toBe(200);

      const texts = async (lane: string) => (await inboxItems(t, lane)).map((i) => i.raw.text.body as string);
      const statuses = async (lane: string) => (await inboxItems(t, lane)).map((i) => i.raw.status as string);
      expect(await texts(chatLane(PN, a))).toEqual(['a1', 'a2', 'a3', 'a4']);
      expect(await texts(chatLane(PN, b))).toEqual(['b1', 'b2', 'b3']);
      expect(await texts(chatLane(PN, c))).toEqual(['c1', 'c2']);
      expect(await statuses(statusLane(PN, r1))).toEqual(['sent', 'delivered', 'read']);
      expect(await statuses(statusLane(PN, r2))).toEqual(['sent']);

      const lanes = [chatLane(PN, a), chatLane(PN, b), chatLane(PN, c), statusLane(PN, r1), statusLane(PN, r2)];
      const pending = await t.redis.zrange(t.keys.pending, 0, -1);
      expect(pending).toEqual(expect.arrayContaining(lanes));

      // Looked up by data rather than by id: the id scheme (lane plus an episode tag) is the
      // queue's business; one waiting wake-up per lane, with an id BullMQ accepts, is the guarantee.
      const queue = new Queue('turns', { connection: t.redis, prefix: t.config.redisKeyRoot });
      try {
        const jobs = await queue.getJobs(['wait', 'delayed', 'prioritized', 'paused']);
        for (const lane of lanes) {
          expect(jobs.filter((j) => j.data?.lane === lane)).toHaveLength(1);
        }
        expect(jobs.filter((j) => j.id?.includes(':'))).toEqual([]);
      } finally {
        await queue.close();
      }
    });
  });
});

describe('POST /webhook: a signed body in escaped-unicode Arabic with odd whitespace (fixture)', () => {
  const raw = readFileSync(join(__dirname, '../fixtures/arabic-escaped.json'));
  const lane = chatLane(PN, '971500000001');
  let t: TestApp;
  beforeAll(async () => {
    t = await receiver();
  });
  afterAll(() => t.close());

  it('is the fixture it claims to be (escaped Arabic, tabs, CRLF)', () => {
    const text = raw.toString('latin1');
    expect(text).toContain('\\u0645\\u0631\\u062d\\u0628\\u0627');
    expect(text).toContain('\r\n');
    expect(text).toContain('\t');
    expect(raw.every((byte) => byte < 0x80)).toBe(true);
  });

  it('refuses the body re-serialised with unescaped UTF-8 under the original signature (401)', async () => {
    const reserialised = JSON.stringify(JSON.parse(raw.toString('utf8')));
    const res = await rawPost(t.url, {
      headers: { 'content-type': 'application/json', 'x-hub-signature-256': signBody(raw) },
      body: reserialised,
    });
    expect(res.status).toBe(401);
    expect(await inboxItems(t, lane)).toEqual([]);
  });

  it('accepts the exact bytes under their signature and stores the decoded Arabic', async () => {
    const res = await rawPost(t.url, { headers: jsonHeaders(raw), body: raw });
    expect(res.status).toBe(200);
    const items = await inboxItems(t, lane);
    expect(items).toHaveLength(1);
    expect(items[0].raw.text.body).toBe('مرحبا، هل يمكنني حجز موعد؟');
    expect(items[0].contact.name).toBe('محمد');
  });
});

describe('POST /webhook: 413 over WEBHOOK_BODY_LIMIT', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await receiver({ WEBHOOK_BODY_LIMIT: '2048' });
  });
  afterAll(() => t.close());

  /** A valid signed text payload padded with whitespace to exactly `size` bytes. */
  const padded = (size: number, from: string): string => {
    const raw = JSON.stringify(textPayload({ from }));
    return `${raw.slice(0, -1)}${' '.repeat(size - raw.length)}}`;
  };

  it('accepts a body just under the limit', async () => {
    const raw = padded(2000, '971500000161');
    expect(raw.length).toBe(2000);
    const res = await rawPost(t.url, { headers: jsonHeaders(raw), body: raw });
    expect(res.status).toBe(200);
  });

  it('refuses a body over the limit sent with content-length (413)', async () => {
    const raw = padded(4096, '971500000162');
    const res = await rawPost(t.url, { headers: jsonHeaders(raw), body: raw });
    expect(res.status).toBe(413);
    expect(await inboxItems(t, chatLane(PN, '971500000162'))).toEqual([]);
  });

  it('refuses a declared size over the limit before the body is read', async () => {
    const res = await rawPost(t.url, {
      headers: { ...jsonHeaders('x'), 'content-length': 4096 },
      withholdBody: true,
    });
    expect(res.status).toBe(413);
  });

  it('refuses a chunked body over the limit, without content-length (413, never 5xx)', async () => {
    const raw = padded(16_384, '971500000163');
    const res = await rawPost(t.url, { headers: jsonHeaders(raw), body: raw, chunked: 'paced' });
    expect(res.status).toBe(413);
    expect(await inboxItems(t, chatLane(PN, '971500000163'))).toEqual([]);
  });

  it('accepts a chunked body under the limit', async () => {
    const raw = padded(2000, '971500000164');
    const res = await rawPost(t.url, { headers: jsonHeaders(raw), body: raw, chunked: 'paced' });
    expect(res.status).toBe(200);
    expect(await inboxItems(t, chatLane(PN, '971500000164'))).toHaveLength(1);
  });
});

describe('POST /webhook: deliberately ignored (200, nothing stored)', () => {
  let t: TestApp;
  beforeEach(async () => {
    t = await receiver();
  });
  afterEach(() => t.close());

  const base = (): Record<string, any> => textPayload({ from: '971500000171' });

  it.each<[string, (p: Record<string, any>) => Record<string, any>]>([
    ['an object other than whatsapp_business_account', (p) => ({ ...p, object: 'page' })],
    [
      'a field other than messages',
      (p) => {
        p.entry[0].changes[0].field = 'message_template_status_update';
        return p;
      },
    ],
    [
      'another phone_number_id',
      (p) => {
        p.entry[0].changes[0].value.metadata.phone_number_id = '100000000000999';
        return p;
      },
    ],
  ])('ignores %s', async (_, change) => {
    const res = await t.postSigned(change(base()));
    expect(res.status).toBe(200);
    expect(await workKeys(t)).toEqual([]);
  });

  it('(control) stores the same payload when nothing about it is foreign', async () => {
    expect((await t.postSigned(base())).status).toBe(200);
    expect(await workKeys(t)).toEqual(
      expect.arrayContaining([t.keys.inbox(chatLane(PN, '971500000171')), t.keys.pending]),
    );
  });
});

describe('POST /webhook with BSP_PROVIDER=360dialog', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await receiver({
      BSP_PROVIDER: '360dialog',
      D360_WEBHOOK_SECRET: TEST_D360_SECRET,
      WHATSAPP_APP_SECRET: undefined,
      WHATSAPP_VERIFY_TOKEN: undefined,
    });
  });
  afterAll(() => t.close());

  const post = (from: string, headers: Record<string, string>) =>
    rawPost(t.url, {
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(textPayload({ from })),
    });

  it('accepts the right X-Webhook-Secret without any Meta signature', async () => {
    const res = await post('971500000181', { 'x-webhook-secret': TEST_D360_SECRET });
    expect(res.status).toBe(200);
    expect(await inboxItems(t, chatLane(PN, '971500000181'))).toHaveLength(1);
  });

  it.each<[string, Record<string, string>]>([
    ['a wrong secret', { 'x-webhook-secret': 'wrong-shared-secret' }],
    ['a secret of another length', { 'x-webhook-secret': 'x' }],
    ['no secret', {}],
    ['only a Meta signature', { 'x-hub-signature-256': signBody('{}') }],
  ])('refuses %s with 401', async (_, headers) => {
    const res = await post('971500000182', headers);
    expect(res.status).toBe(401);
    expect(await inboxItems(t, chatLane(PN, '971500000182'))).toEqual([]);
  });

  it('refuses a missing secret before the body is read', async () => {
    const res = await rawPost(t.url, { headers: { 'content-type': 'application/json' }, withholdBody: true });
    expect(res.status).toBe(401);
  });
});

describe('POST /webhook with BSP_PROVIDER=sandbox', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await receiver({ BSP_PROVIDER: 'sandbox', WHATSAPP_APP_SECRET: undefined, WHATSAPP_VERIFY_TOKEN: undefined });
  });
  afterAll(() => t.close());

  it('needs no credentials', async () => {
    const res = await rawPost(t.url, {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(textPayload({ from: '971500000191' })),
    });
    expect(res.status).toBe(200);
    expect(await inboxItems(t, chatLane(PN, '971500000191'))).toHaveLength(1);
  });
});

describe('GET /metrics after webhook traffic', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await receiver();
  });
  afterAll(() => t.close());

  it('counts each answer under its outcome and times every POST', async () => {
    const before = await scrape(t);
    const first = textPayload({ from: '971500000201' });
    const sent: number[] = [];
    const record = async (answer: Promise<{ status: number }>) => sent.push((await answer).status);

    await fetch(`${t.url}/webhook?hub.mode=subscribe&hub.verify_token=${TEST_VERIFY_TOKEN}&hub.challenge=42`);
    await fetch(`${t.url}/no-such-route?secret=query`);
    await record(t.postSigned(first)); // accepted
    await record(t.postSigned(textPayload({ from: '971500000202' }))); // accepted
    await record(t.postSigned(first)); // duplicate
    await record(t.postSigned({ ...first, object: 'page' })); // ignored
    await record(rawPost(t.url, { headers: { 'content-type': 'application/json' }, body: '{}' })); // unauthorized
    await record(t.postSigned(first, { 'x-hub-signature-256': signBodyWithOtherSecret })); // unauthorized
    await record(t.postSigned('[]')); // invalid (400)
    await record(rawPost(t.url, { headers: { 'content-type': 'text/plain' }, body: '{}' })); // invalid (415)
    expect(sent).toEqual([200, 200, 200, 200, 401, 401, 400, 415]);

    const after = await scrape(t);
    const delta = Object.fromEntries(
      Object.entries(outcomeCounts(after)).map(([k, v]) => [k, v - outcomeCounts(before)[k]]),
    );
    expect(delta).toEqual({ accepted: 2, duplicate: 1, ignored: 1, unauthorized: 2, invalid: 2 });
    expect(
      metric(after, 'tawasul_webhook_ack_seconds_count') - metric(before, 'tawasul_webhook_ack_seconds_count'),
    ).toBe(8);
  });

  it('never puts a raw URL with a query string into a label', async () => {
    await fetch(`${t.url}/webhook?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=42`);
    await fetch(`${t.url}/no-such-route?token=leak`);
    const text = await scrape(t);
    const values = samples(text).flatMap((s) => Object.values(s.labels));
    expect(values.length).toBeGreaterThan(0);
    expect(values.filter((v) => v.includes('?') || v.includes('verify_token') || v.includes('leak'))).toEqual([]);
    // The GET above is counted, under its route template.
    expect(metric(text, 'tawasul_http_requests_total', { route: '/webhook', method: 'GET' })).toBeGreaterThan(0);
  });
});
