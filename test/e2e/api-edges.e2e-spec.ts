import { createHash } from 'node:crypto';
import { BotCluster } from '../utils/bot-cluster';
import { agentMessage } from '../utils/chatwoot-payloads';
import { envelope, textMessage, textPayload } from '../utils/meta-payloads';
import { rawRequest } from '../utils/raw-http';
import { startTestApp } from '../utils/test-app';
import { type ApiResponse, PRICING, RATES, round6, template, type V1CallOptions, v1Caller } from '../utils/v1-client';
import { waitUntil } from '../utils/wait';

/**
 * The edges of /v1 (docs/http-api.md) and of the records behind it: one error shape for paths and
 * methods no route serves, the key checked before a body is read, bodies refused where a route
 * takes none, the billed market of a status that names the patient by business-scoped id only,
 * metrics counted exactly once, and what the idempotency record and outbound records keep.
 * Role `all` in this process, real Redis, the fake Graph API, LLM and Chatwoot.
 */

const KEY = 'test-api-key-edges';
const DAY_S = 24 * 3600;

let senderSeq = 0;
const nextSender = (): string => `97150150${String(senderSeq++).padStart(4, '0')}`;

const call = v1Caller(KEY);

const sha256 = (value: string): string => createHash('sha256').update(value, 'utf8').digest('hex');

describe('/v1 edges', () => {
  let bot: BotCluster;
  const api = (method: string, path: string, options?: V1CallOptions): Promise<ApiResponse> =>
    call(bot.receiver.url, method, path, options);
  const sendsTo = (to: string) => bot.graph.sends().filter((r) => r.body?.to === to && r.wamid);
  const record = (wamid: string) => bot.redis.hgetall(bot.receiver.keys.outbound(wamid));

  /** A patient writes now and gets the echo reply; returns the reply's wamid. */
  async function patientWrites(from: string, text = 'hello'): Promise<string> {
    const before = sendsTo(from).length;
    expect((await bot.post(envelope({ messages: [textMessage({ from, text })] }))).status).toBe(200);
    await waitUntil('the reply', () => sendsTo(from).length > before, 30_000);
    await bot.waitQuiet();
    return sendsTo(from).at(-1)!.wamid!;
  }

  function status(
    wamid: string,
    state: string,
    recipient: Record<string, string>,
    extra = {},
  ): Record<string, unknown> {
    const at = String(Math.floor(Date.now() / 1000));
    return envelope({ statuses: [{ id: wamid, status: state, timestamp: at, ...recipient, ...extra }] });
  }

  beforeAll(async () => {
    bot = await BotCluster.start({
      workers: 0,
      chatwoot: true,
      env: { API_KEYS: KEY, REENGAGEMENT_TEMPLATE: 'reengage_hello:en' },
    });
  }, 60_000);

  afterAll(async () => {
    await bot?.close();
  });

  it('a path or method no /v1 route serves: 404 or 405 (with Allow) in the /v1 error shape, 401 without a key', async () => {
    const cases: [string, string, number, string | null][] = [
      ['GET', '/v1/nope', 404, null],
      ['GET', '/v1', 404, null],
      ['GET', '/v1/', 404, null],
      ['POST', '/v1/conversations/971500000001/extra', 404, null],
      ['GET', '/v1/costs/2026-11-01', 404, null],
      ['PUT', '/v1/messages', 405, 'POST'],
      ['GET', '/v1/messages', 405, 'POST'],
      ['PATCH', '/v1/conversations/971500000001', 405, 'DELETE, GET, HEAD'],
      ['GET', '/v1/conversations/971500000001/resume', 405, 'POST'],
      ['POST', '/v1/costs', 405, 'GET, HEAD'],
    ];
    for (const [method, path, code, allow] of cases) {
      const answer = await api(method, path);
      expect({ method, path, status: answer.status, body: answer.body }).toEqual({
        method,
        path,
        status: code,
        body: { error: code === 404 ? 'not_found' : 'method_not_allowed', message: expect.any(String) },
      });
      const allowed = answer.headers.get('allow');
      expect({ method, path, allow: allowed && allowed.split(/,\s*/).sort().join(', ') }).toEqual({
        method,
        path,
        allow,
      });
      // Without a key nothing tells which routes exist.
      const denied = await api(method, path, { key: null });
      expect({ method, path, status: denied.status, body: denied.body }).toEqual({
        method,
        path,
        status: 401,
        body: { error: 'unauthorized', message: expect.any(String) },
      });
    }
    // A body on an unknown route is read like any other /v1 body, then refused for the route.
    const withBody = await api('PUT', '/v1/messages', { body: { to: '971500000001', text: 'x' } });
    expect(withBody).toMatchObject({ status: 405, body: { error: 'method_not_allowed' } });
  });

  it('without a valid key: 401 before the body is read, whatever the body (not JSON, too large, wrong type, never sent)', async () => {
    const bad: { name: string; raw: string; type?: string }[] = [
      { name: 'not JSON', raw: '{"to": ' },
      { name: 'too large', raw: JSON.stringify({ to: '971500000001', text: 'x'.repeat(20_000) }) },
      { name: 'not JSON content', raw: 'to=1', type: 'text/plain' },
      { name: 'fields wrong', raw: JSON.stringify({ to: 5, nope: true }) },
    ];
    for (const key of [null, 'wrong-key']) {
      for (const { name, raw, type } of bad) {
        const answer = await api('POST', '/v1/messages', {
          raw,
          key,
          headers: { 'content-type': type ?? 'application/json' },
        });
        expect({ key, name, status: answer.status, body: answer.body }).toEqual({
          key,
          name,
          status: 401,
          body: { error: 'unauthorized', message: expect.any(String) },
        });
        expect(answer.headers.get('www-authenticate')).toBe('Bearer');
      }
    }
    // Headers only, the body held back: the answer cannot wait for a body it was never sent.
    const withheld = await rawRequest(bot.receiver.url, {
      path: '/v1/messages',
      headers: { 'content-type': 'application/json', authorization: 'Bearer wrong-key' },
      withholdBody: true,
      timeoutMs: 5000,
    });
    expect({ status: withheld.status, body: JSON.parse(withheld.text) }).toEqual({
      status: 401,
      body: { error: 'unauthorized', message: expect.any(String) },
    });
    // With the key the same bodies meet the body checks, in the same shape.
    const answers = [];
    for (const { raw, type } of bad) {
      answers.push(
        (await api('POST', '/v1/messages', { raw, headers: { 'content-type': type ?? 'application/json' } })).body,
      );
    }
    expect(answers.map((b) => b.error)).toEqual([
      'invalid_body',
      'body_too_large',
      'unsupported_media_type',
      'invalid_body',
    ]);
    // The OpenAPI document stays open.
    expect((await api('GET', '/v1/openapi.json', { key: null })).status).toBe(200);
  });

  it('resume and DELETE take no body: a field or a non-object is a 400 naming it, and nothing is done', async () => {
    const from = nextSender();
    await patientWrites(from);
    for (const [method, path] of [
      ['POST', `/v1/conversations/${from}/resume`],
      ['DELETE', `/v1/conversations/${from}`],
    ]) {
      const field = await api(method, path, { body: { x: 1, reason: 'gdpr' } });
      expect({ path, status: field.status, body: field.body }).toEqual({
        path,
        status: 400,
        body: {
          error: 'invalid_body',
          message: expect.any(String),
          fields: [
            { field: 'x', problem: 'is not a known field' },
            { field: 'reason', problem: 'is not a known field' },
          ],
        },
      });
      for (const raw of ['[]', '"erase"', 'null', '1']) {
        const other = await api(method, path, { raw });
        expect({ path, raw, status: other.status, error: other.body.error, fields: other.body.fields }).toEqual({
          path,
          raw,
          status: 400,
          error: 'invalid_body',
          fields: [{ field: '(body)', problem: expect.any(String) }],
        });
      }
    }
    // Nothing was erased by the refused DELETEs.
    expect((await api('GET', `/v1/conversations/${from}`)).body.history).toHaveLength(2);
    // No body, or an empty object, is fine.
    expect((await api('POST', `/v1/conversations/${from}/resume`)).status).toBe(200);
    expect((await api('POST', `/v1/conversations/${from}/resume`, { body: {} })).status).toBe(200);
    expect((await api('DELETE', `/v1/conversations/${from}`, { body: {} })).status).toBe(200);
    expect((await api('GET', `/v1/conversations/${from}`)).status).toBe(404);
    // The document says so: no request body, a 400.
    const doc = (await api('GET', '/v1/openapi.json')).body;
    for (const operation of [
      doc.paths['/v1/conversations/{waId}/resume'].post,
      doc.paths['/v1/conversations/{waId}'].delete,
    ]) {
      expect(operation.requestBody).toBeUndefined();
      expect(Object.keys(operation.responses)).toContain('400');
    }
  }, 60_000);

  it('a status naming the patient only by business-scoped id is billed at its market, not the default one', async () => {
    expect(RATES.AE.marketing).not.toBe(RATES[PRICING.defaultMarket].marketing);
    const to = nextSender();
    const sent = await api('POST', '/v1/messages', {
      body: { to, template: template({ name: 'offer', category: 'marketing' }) },
    });
    expect(sent).toMatchObject({ status: 202, body: { mode: 'template', estimatedCostUsd: RATES.AE.marketing } });
    await bot.waitQuiet();
    const wamid = sendsTo(to)[0].wamid!;
    const day = new Date().toISOString().slice(0, 10);
    const before = (await api('GET', `/v1/costs?from=${day}&to=${day}`)).body;
    const delivered = status(
      wamid,
      'delivered',
      { recipient_user_id: 'AE.1234567890123' },
      { pricing: { billable: true, pricing_model: 'PMP', type: 'regular', category: 'marketing' } },
    );
    expect((await bot.post(delivered)).status).toBe(200);
    await waitUntil('the status', async () => (await record(wamid)).status === 'delivered', 20_000);
    await bot.waitQuiet();
    const after = (await api('GET', `/v1/costs?from=${day}&to=${day}`)).body;
    expect(after.billed.marketing.count - (before.billed.marketing?.count ?? 0)).toBe(1);
    expect(round6(after.billed.total.usd - before.billed.total.usd)).toBe(RATES.AE.marketing);
  }, 60_000);

  it('a replayed 409 is counted once in tawasul_window_closed_total{source="api"}', async () => {
    const to = nextSender();
    const series = 'tawasul_window_closed_total{source="api"}';
    const before = await bot.metrics([series]);
    const body = { to, text: 'Reminder', idempotencyKey: `closed-${to}` };
    const first = await api('POST', '/v1/messages', { body });
    expect(first).toMatchObject({ status: 409, body: { error: 'window_closed' } });
    const again = await Promise.all([
      api('POST', '/v1/messages', { body }),
      api('POST', '/v1/messages', { body }),
      api('POST', '/v1/messages', {
        body: { to, text: 'Reminder' },
        headers: { 'idempotency-key': body.idempotencyKey },
      }),
    ]);
    expect(again.map((a) => [a.status, a.headers.get('idempotent-replayed')])).toEqual(Array(3).fill([409, 'true']));
    expect(await bot.metricDeltas(before)).toEqual({ [series]: 1 });
    // A request without a key is a decision of its own each time.
    await api('POST', '/v1/messages', { body: { to, text: 'Reminder' } });
    expect(await bot.metricDeltas(before)).toEqual({ [series]: 2 });
  });

  it('an idempotency key is kept 24 h in Redis, whatever the answer', async () => {
    const to = nextSender();
    for (const [key, body] of [
      [`ttl-template-${to}`, { to, template: template() }],
      [`ttl-closed-${to}`, { to, text: 'Reminder' }],
    ] as const) {
      const answer = await api('POST', '/v1/messages', { body: { ...body, idempotencyKey: key } });
      expect([202, 409]).toContain(answer.status);
      const ttl = await bot.redis.ttl(bot.receiver.keys.apiIdempotency(sha256(key)));
      expect({ key, ttl }).toEqual({ key, ttl: expect.any(Number) });
      expect(ttl).toBeGreaterThan(DAY_S - 60);
      expect(ttl).toBeLessThanOrEqual(DAY_S);
    }
    await bot.waitQuiet();
  });

  it('a failed status keeps its error code on the outbound record; a later status never undoes it', async () => {
    const from = nextSender();
    const wamid = await patientWrites(from);
    const failed = status(
      wamid,
      'failed',
      { recipient_id: from },
      { errors: [{ code: 131026, title: 'Undeliverable' }] },
    );
    expect((await bot.post(failed)).status).toBe(200);
    await waitUntil('the failure', async () => (await record(wamid)).status === 'failed', 20_000);
    await bot.waitQuiet();
    expect(await record(wamid)).toMatchObject({ status: 'failed', errorCode: '131026' });
    expect((await bot.post(status(wamid, 'read', { recipient_id: from }))).status).toBe(200);
    await bot.waitQuiet();
    expect(await record(wamid)).toMatchObject({ status: 'failed', errorCode: '131026' });
  }, 60_000);

  it('an agent’s reply is in GET /v1/conversations history with the role agent', async () => {
    const from = nextSender();
    expect((await bot.post(textPayload({ from, text: 'I need a human' }))).status).toBe(200);
    const { id } = await bot.handedOver(from);
    const content = 'Hello, this is Sara from the clinic.';
    expect((await bot.postChatwoot(agentMessage({ conversationId: id, content, waId: from }))).status).toBe(200);
    await waitUntil('the agent reply', () => bot.sentTexts(from).includes(content), 20_000);
    await bot.waitQuiet();
    const shown = await api('GET', `/v1/conversations/${from}`);
    expect(shown).toMatchObject({ status: 200, body: { handoff: 'human' } });
    const history = shown.body.history as { role: string; text: string }[];
    expect(history.at(-1)).toEqual({ role: 'agent', text: content, at: expect.any(String) });
    expect(history.filter((h) => h.role === 'agent')).toHaveLength(1);
    expect(history[0]).toMatchObject({ role: 'user', text: 'I need a human' });
  }, 60_000);

  it('tawasul_templates_sent_total grows by exactly one per template Meta accepted, by purpose', async () => {
    const series = [
      'tawasul_templates_sent_total{purpose="api"}',
      'tawasul_templates_sent_total{purpose="reengagement"}',
    ];
    const before = await bot.metrics(series);
    const to = nextSender();
    expect((await api('POST', '/v1/messages', { body: { to, template: template() } })).status).toBe(202);
    await bot.waitQuiet();
    expect(await bot.metricDeltas(before)).toEqual({ [series[0]]: 1, [series[1]]: 0 });

    // A reply that fails later with 131047: the re-engagement template, once however often Meta says so.
    const from = nextSender();
    const wamid = await patientWrites(from);
    const failed = status(wamid, 'failed', { recipient_id: from }, { errors: [{ code: 131047 }] });
    expect((await bot.post(failed)).status).toBe(200);
    await waitUntil('the template', () => sendsTo(from).some((s) => s.body.type === 'template'), 30_000);
    expect((await bot.post(failed)).status).toBe(200);
    await bot.waitQuiet();
    expect(sendsTo(from).filter((s) => s.body.type === 'template')).toHaveLength(1);
    expect(await bot.metricDeltas(before)).toEqual({ [series[0]]: 1, [series[1]]: 1 });
  }, 90_000);
});

describe('/v1 edges without API_KEYS', () => {
  it('a path or method no route serves is the app’s plain 404, as for every /v1 path', async () => {
    const app = await startTestApp();
    try {
      for (const [method, path] of [
        ['GET', '/v1/nope'],
        ['GET', '/v1'],
        ['PUT', '/v1/messages'],
        ['PATCH', '/v1/conversations/971500000001'],
      ]) {
        const answer = await call(app.url, method, path);
        expect({ method, path, status: answer.status, body: answer.body }).toEqual({
          method,
          path,
          status: 404,
          body: expect.objectContaining({ statusCode: 404 }),
        });
      }
    } finally {
      await app.close();
    }
  });
});
