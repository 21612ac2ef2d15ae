import { Clock } from '../../src/time/clock';
import { chatLane } from '../../src/queue/lanes';
import { BotCluster } from '../utils/bot-cluster';
import { deadLetters } from '../utils/dead-letters';
import { agentMessage } from '../utils/chatwoot-payloads';
import { envelope, textMessage, textPayload } from '../utils/meta-payloads';
import { waitUntil } from '../utils/spawn-app';
import { startTestApp } from '../utils/test-app';
import { TEST_PHONE_NUMBER_ID } from '../utils/test-env';
import { type ApiResponse, RATES, round6, template, type V1CallOptions, v1Caller } from '../utils/v1-client';

/**
 * The 24-hour window, /v1 and the cost ledger (docs/window.md, docs/http-api.md, docs/costs.md),
 * end to end: the receiver runs role `all` in this process so the tests can move its business
 * clock (a day passes without sleeping), against real Redis, the fake Graph API and the fake LLM.
 */

const KEY = 'test-api-key-1';
const OTHER_KEY = 'test-api-key-2';
const HOUR = 3600_000;
const DAY = 24 * HOUR;

let senderSeq = 0;
const nextSender = (): string => `97150140${String(senderSeq++).padStart(4, '0')}`;

const call = v1Caller(KEY);

function statusWith(
  wamid: string,
  status: string,
  recipient: string,
  extra: Record<string, unknown> = {},
  at = Date.now(),
): Record<string, unknown> {
  return envelope({
    statuses: [{ id: wamid, status, timestamp: String(Math.floor(at / 1000)), recipient_id: recipient, ...extra }],
  });
}

describe.each([{ reengagement: false }, { reengagement: true }])(
  'the window and /v1 (REENGAGEMENT_TEMPLATE set: $reengagement)',
  ({ reengagement }) => {
    let bot: BotCluster;
    let clock: Clock;
    let moved = 0;
    const move = (ms: number): void => {
      clock.advance(ms);
      moved += ms;
    };
    const chatKey = (from: string, suffix: string): string =>
      `${bot.receiver.config.redisKeyRoot}:chat:${chatLane(TEST_PHONE_NUMBER_ID, from)}:${suffix}`;
    const v1 = (method: string, path: string, options?: V1CallOptions): Promise<ApiResponse> =>
      call(bot.receiver.url, method, path, options);
    const sendsTo = (to: string) => bot.graph.sends().filter((r) => r.body?.to === to);
    const templatesTo = (to: string) => sendsTo(to).filter((r) => r.body?.type === 'template' && r.wamid);

    /** A patient writes now (in business time) and gets the echo reply; returns the reply's wamid. */
    async function patientWrites(from: string, text = 'hello'): Promise<string> {
      const message = textMessage({ from, text });
      message.timestamp = String(Math.floor(clock.now() / 1000));
      const before = sendsTo(from).length;
      expect((await bot.post(envelope({ messages: [message] }))).status).toBe(200);
      await waitUntil('the reply', () => Promise.resolve(sendsTo(from).length > before), 30_000);
      await bot.waitQuiet();
      return sendsTo(from).at(-1)!.wamid!;
    }

    /** Meta reports the reply `wamid` failed with 131047 (outside the window), once applied and quiet. */
    async function failedWith131047(wamid: string, from: string): Promise<void> {
      const failed = statusWith(wamid, 'failed', from, { errors: [{ code: 131047 }] });
      expect((await bot.post(failed)).status).toBe(200);
      await waitUntil(
        'the status to be applied',
        async () => (await bot.redis.hget(`${bot.receiver.config.redisKeyRoot}:out:${wamid}`, 'status')) === 'failed',
        30_000,
      );
      await bot.waitQuiet();
    }

    beforeAll(async () => {
      bot = await BotCluster.start({
        workers: 0,
        env: {
          API_KEYS: `${KEY},${OTHER_KEY}`,
          ...(reengagement && { REENGAGEMENT_TEMPLATE: 'reengage_hello:en' }),
        },
      });
      clock = bot.receiver.app.get(Clock);
    }, 60_000);

    afterEach(() => {
      clock.advance(-moved);
      moved = 0;
    });

    afterAll(async () => {
      await bot?.close();
    });

    if (!reengagement) {
      it('the window is open until 24 h after the patient’s message timestamp, then /v1 needs a template (409 without)', async () => {
        const from = nextSender();
        await patientWrites(from);
        const lastTs = Number(await bot.redis.hget(chatKey(from, 'state'), 'lastInboundTs'));
        const shown = await v1('GET', `/v1/conversations/${from}`);
        expect(shown.status).toBe(200);
        expect(shown.body).toMatchObject({
          waId: from,
          window: { open: true, closesAt: new Date(lastTs * 1000 + DAY).toISOString() },
          handoff: 'bot',
          language: 'en',
        });
        expect(shown.body.history.map((h: { role: string }) => h.role)).toEqual(['user', 'assistant']);

        // A minute before it closes: free-form, priced as a service message.
        move(lastTs * 1000 + DAY - 60_000 - clock.now());
        const inside = await v1('POST', '/v1/messages', {
          body: { to: from, text: 'Your appointment is confirmed for Sun 10:00.', template: template() },
        });
        expect(inside).toMatchObject({ status: 202, body: { mode: 'free_form', estimatedCostUsd: RATES.AE.service } });
        await bot.waitQuiet();
        expect(sendsTo(from).at(-1)!.body).toMatchObject({
          type: 'text',
          text: { body: 'Your appointment is confirmed for Sun 10:00.' },
        });

        // A minute after: closed. Text alone is refused; with a template the template goes.
        move(120_000);
        expect((await v1('GET', `/v1/conversations/${from}`)).body.window.open).toBe(false);
        const refused = await v1('POST', '/v1/messages', { body: { to: from, text: 'Reminder' } });
        expect(refused.status).toBe(409);
        expect(refused.body).toMatchObject({
          error: 'window_closed',
          closedAt: new Date(lastTs * 1000 + DAY).toISOString(),
        });
        const sendsBefore = sendsTo(from).length;
        const withTemplate = await v1('POST', '/v1/messages', {
          body: {
            to: `+${from}`,
            text: 'Reminder',
            template: template({
              headerParameters: ['Dr Salma'],
              buttons: [
                { subType: 'quick_reply', index: 0, parameter: 'CONFIRM_42' },
                { subType: 'url', index: 1, parameter: 'b42' },
              ],
            }),
          },
        });
        expect(withTemplate).toMatchObject({
          status: 202,
          body: { mode: 'template', estimatedCostUsd: RATES.AE.utility },
        });
        await bot.waitQuiet();
        expect(sendsTo(from)).toHaveLength(sendsBefore + 1);
        expect(sendsTo(from).at(-1)!.body).toMatchObject({
          to: from,
          type: 'template',
          template: {
            name: 'appointment_reminder',
            language: { policy: 'deterministic', code: 'en' },
            components: [
              { type: 'header', parameters: [{ type: 'text', text: 'Dr Salma' }] },
              {
                type: 'body',
                parameters: [
                  { type: 'text', text: 'Ahmed' },
                  { type: 'text', text: 'Sun 10:00' },
                ],
              },
              {
                type: 'button',
                sub_type: 'quick_reply',
                index: '0',
                parameters: [{ type: 'payload', payload: 'CONFIRM_42' }],
              },
              { type: 'button', sub_type: 'url', index: '1', parameters: [{ type: 'text', text: 'b42' }] },
            ],
          },
        });
        // Both API messages are in the history, as the assistant's.
        const history = (await v1('GET', `/v1/conversations/${from}`)).body.history as {
          role: string;
          text: string;
        }[];
        expect(history.map((h) => h.role)).toEqual(['user', 'assistant', 'assistant', 'assistant']);
        expect(history[2].text).toBe('Your appointment is confirmed for Sun 10:00.');
        expect(history[3].text).toBe('[template appointment_reminder: Dr Salma | Ahmed | Sun 10:00]');
      }, 90_000);

      it('a message stamped days ahead of our clock opens the window from now, not from its stamp', async () => {
        const from = nextSender();
        const message = textMessage({ from, text: 'hello from a wrong clock' });
        message.timestamp = String(Math.floor((clock.now() + 3 * DAY) / 1000));
        expect((await bot.post(envelope({ messages: [message] }))).status).toBe(200);
        await waitUntil('the reply', () => Promise.resolve(sendsTo(from).length > 0), 30_000);
        await bot.waitQuiet();
        const lastTs = Number(await bot.redis.hget(chatKey(from, 'state'), 'lastInboundTs'));
        expect(lastTs * 1000).toBeLessThanOrEqual(clock.now() + 60_000);

        move(DAY + 2 * 60_000);
        expect((await v1('GET', `/v1/conversations/${from}`)).body.window.open).toBe(false);
        expect((await v1('POST', '/v1/messages', { body: { to: from, text: 'Reminder' } })).status).toBe(409);
      }, 60_000);

      it('a late message (window already closed) skips the LLM and hands the chat over; resume gives it back', async () => {
        const from = nextSender();
        const late = textMessage({ from, text: 'are you there?' });
        late.timestamp = String(Math.floor(clock.now() / 1000) - 25 * 3600);
        expect((await bot.post(envelope({ messages: [late] }))).status).toBe(200);
        await waitUntil(
          'the hand-over',
          async () => (await bot.redis.hget(chatKey(from, 'handoff'), 'state')) === 'human',
          30_000,
        );
        await bot.waitQuiet();
        expect(sendsTo(from)).toHaveLength(0);
        expect(bot.llm.requests.some((r) => JSON.stringify(r.body).includes('are you there?'))).toBe(false);
        expect((await v1('GET', `/v1/conversations/${from}`)).body).toMatchObject({
          handoff: 'human',
          window: { open: false },
        });

        const resumed = await v1('POST', `/v1/conversations/${from}/resume`);
        expect(resumed).toMatchObject({ status: 200, body: { waId: from, handoff: 'bot', resumed: true } });
        expect((await v1('GET', `/v1/conversations/${from}`)).body.handoff).toBe('bot');
        expect((await v1('POST', `/v1/conversations/${from}/resume`)).body.resumed).toBe(false);
        await patientWrites(from, 'back again');
        expect(bot.sentTexts(from)).toEqual(['Echo: back again']);
      }, 90_000);

      it('131047 in a later failed status, without a template: the chat is handed over and flagged', async () => {
        const from = nextSender();
        const wamid = await patientWrites(from);
        move(DAY + HOUR);
        const failed = statusWith(wamid, 'failed', from, {
          errors: [{ code: 131047, title: 'Re-engagement message' }],
        });
        expect((await bot.post(failed)).status).toBe(200);
        await waitUntil(
          'the hand-over',
          async () => (await bot.redis.hget(chatKey(from, 'handoff'), 'state')) === 'human',
          30_000,
        );
        await bot.waitQuiet();
        expect(await bot.redis.hget(chatKey(from, 'state'), 'windowClosed')).toBe('1');
        expect(templatesTo(from)).toHaveLength(0);
        expect(await bot.redis.hget(`${bot.receiver.config.redisKeyRoot}:out:${wamid}`, 'status')).toBe('failed');
      }, 90_000);
    }

    if (!reengagement) {
      it('statuses move the record forward only; pricing is billed once although Meta repeats it', async () => {
        const from = nextSender();
        const sent = await v1('POST', '/v1/messages', { body: { to: from, template: template() } });
        expect(sent).toMatchObject({ status: 202, body: { mode: 'template' } });
        await bot.waitQuiet();
        const wamid = templatesTo(from)[0].wamid!;
        const record = `${bot.receiver.config.redisKeyRoot}:out:${wamid}`;
        expect(await bot.redis.hgetall(record)).toMatchObject({
          mode: 'template',
          category: 'utility',
          estimateUsd: String(RATES.AE.utility),
        });
        const priced = { pricing: { billable: true, pricing_model: 'PMP', type: 'regular', category: 'utility' } };
        const day = new Date(clock.now()).toISOString().slice(0, 10);
        const before = (await v1('GET', `/v1/costs?from=${day}&to=${day}`)).body;
        for (const [status, extra] of [
          ['sent', priced],
          ['read', {}],
          ['delivered', priced],
        ] as const) {
          expect((await bot.post(statusWith(wamid, status, from, extra, clock.now()))).status).toBe(200);
          await bot.waitQuiet();
        }
        expect(await bot.redis.hget(record, 'status')).toBe('read');
        const after = (await v1('GET', `/v1/costs?from=${day}&to=${day}`)).body;
        expect(after.billed.utility.count - (before.billed.utility?.count ?? 0)).toBe(1);
        expect(round6(after.billed.total.usd - before.billed.total.usd)).toBe(RATES.AE.utility);
      }, 90_000);

      it('a day of mixed categories in /v1/costs matches a hand computation from config/pricing.json', async () => {
        // Ten days ahead: a day no other test writes to.
        move(10 * DAY);
        const day = new Date(clock.now()).toISOString().slice(0, 10);
        const ae = nextSender();
        const sa = `9665${String(senderSeq++).padStart(8, '0')}`;
        await patientWrites(ae);
        const sends: [string, Record<string, unknown>][] = [
          [ae, { text: 'free-form one' }],
          [ae, { text: 'free-form two' }],
          [ae, { template: template() }],
          [ae, { template: template({ name: 'second_utility' }) }],
          [ae, { template: template({ name: 'offer', category: 'marketing' }) }],
          [ae, { template: template({ name: 'otp', category: 'authentication', parameters: ['123456'] }) }],
          [sa, { template: template({ name: 'offer', category: 'marketing' }) }],
        ];
        for (const [to, body] of sends) {
          expect((await v1('POST', '/v1/messages', { body: { to, ...body } })).status).toBe(202);
        }
        await bot.waitQuiet();
        const wamids = (to: string) =>
          sendsTo(to)
            .filter((r) => r.wamid)
            .map((r) => r.wamid!);
        const [, one, two, utility, , marketing] = wamids(ae);
        // Billed: the two service messages and the marketing template; a utility one was free.
        const billed: [string, string, string][] = [
          [one, 'regular', 'service'],
          [two, 'regular', 'service'],
          [marketing, 'regular', 'marketing'],
          [utility, 'free_customer_service', 'utility'],
        ];
        for (const [wamid, type, category] of billed) {
          const status = statusWith(
            wamid,
            'delivered',
            ae,
            { pricing: { pricing_model: 'PMP', type, category } },
            clock.now(),
          );
          expect((await bot.post(status)).status).toBe(200);
        }
        await bot.waitQuiet();
        const report = await v1('GET', `/v1/costs?from=${day}&to=${day}`);
        expect(report.status).toBe(200);
        const ae$ = RATES.AE;
        // The echo reply to the patient's message is a service message too: 3 service in all.
        expect(report.body).toEqual({
          from: day,
          to: day,
          currency: 'USD',
          estimated: {
            service: { count: 3, usd: round6(3 * ae$.service) },
            utility: { count: 2, usd: round6(2 * ae$.utility) },
            marketing: { count: 2, usd: round6(ae$.marketing + RATES.SA.marketing) },
            authentication: { count: 1, usd: ae$.authentication },
            total: {
              count: 8,
              usd: round6(3 * ae$.service + 2 * ae$.utility + ae$.marketing + RATES.SA.marketing + ae$.authentication),
            },
          },
          billed: {
            service: { count: 2, usd: round6(2 * ae$.service) },
            utility: { count: 1, usd: 0 },
            marketing: { count: 1, usd: ae$.marketing },
            authentication: { count: 0, usd: 0 },
            total: { count: 4, usd: round6(2 * ae$.service + ae$.marketing) },
          },
        });
        // The day before holds none of it; a range over both days does.
        const dayBefore = new Date(clock.now() - DAY).toISOString().slice(0, 10);
        expect((await v1('GET', `/v1/costs?from=${dayBefore}&to=${dayBefore}`)).body.estimated.total.count).toBe(0);
        expect((await v1('GET', `/v1/costs?from=${dayBefore}&to=${day}`)).body.estimated.total.count).toBe(8);
      }, 120_000);

      it('erase: the history, state and texts of a chat are gone; the cost counts stay', async () => {
        const from = nextSender();
        await patientWrites(from, 'my private question');
        const day = new Date(clock.now()).toISOString().slice(0, 10);
        const costs = (await v1('GET', `/v1/costs?from=${day}&to=${day}`)).body.estimated.total.count;
        const erased = await v1('DELETE', `/v1/conversations/${from}`);
        expect(erased).toMatchObject({ status: 200, body: { waId: from, erased: true } });
        expect((await v1('GET', `/v1/conversations/${from}`)).status).toBe(404);
        expect(await bot.redis.exists(chatKey(from, 'history'), chatKey(from, 'state'))).toBe(0);
        const root = bot.receiver.config.redisKeyRoot;
        const lane = chatLane(TEST_PHONE_NUMBER_ID, from);
        expect(await bot.redis.exists(`${root}:inbox:${lane}`, `${root}:turn:${lane}`)).toBe(0);
        expect((await v1('GET', `/v1/costs?from=${day}&to=${day}`)).body.estimated.total.count).toBe(costs);
        expect((await v1('DELETE', `/v1/conversations/${from}`)).status).toBe(404);
        // Dead letters keep a turn's texts for an operator: the erasure takes the chat's too.
        bot.graph.enqueue({ kind: 'graph-error', code: 131026, message: 'Message undeliverable' });
        await patientWrites(from, 'undeliverable');
        await waitUntil(
          'the dead letter',
          async () => (await deadLetters(bot.redis, root)).some((d) => d.data.lane === lane),
          20_000,
        );
        expect((await v1('DELETE', `/v1/conversations/${from}`)).status).toBe(200);
        expect((await deadLetters(bot.redis, root)).filter((d) => d.data.lane === lane)).toEqual([]);
        // The chat starts afresh when the patient writes again.
        await patientWrites(from, 'new start');
        const history = (await v1('GET', `/v1/conversations/${from}`)).body.history as { text: string }[];
        expect(history.map((h) => h.text)).toEqual(['new start', 'Echo: new start']);
      }, 90_000);

      it('auth: no key or a wrong key is a 401 with the one error shape; either configured key works', async () => {
        for (const key of [null, 'wrong-key']) {
          const denied = await v1('GET', '/v1/costs?from=2026-11-01&to=2026-11-02', { key });
          expect(denied.status).toBe(401);
          expect(denied.headers.get('www-authenticate')).toBe('Bearer');
          expect(denied.body).toEqual({ error: 'unauthorized', message: expect.any(String) });
        }
        const basic = await v1('GET', '/v1/costs?from=2026-11-01&to=2026-11-02', {
          key: null,
          headers: { authorization: `Basic ${Buffer.from(`admin:${KEY}`).toString('base64')}` },
        });
        expect(basic.status).toBe(401);
        for (const key of [KEY, OTHER_KEY]) {
          expect((await v1('GET', '/v1/costs?from=2026-11-01&to=2026-11-02', { key })).status).toBe(200);
        }
        expect(
          (await v1('POST', '/v1/messages', { key: 'wrong', body: { to: '971500000001', text: 'x' } })).status,
        ).toBe(401);
      });

      it('bad bodies and queries: a 400 naming each bad field (never a 5xx), 413 and 415 in the same shape', async () => {
        const to = nextSender();
        const cases: [unknown, string[]][] = [
          [{}, ['to']],
          [{ to }, ['text']],
          [{ to: 971500000001, text: 'x' }, ['to']],
          [{ to: '0500000001', text: 'x' }, ['to']],
          [{ to, text: '' }, ['text']],
          [{ to, text: 'x'.repeat(4097) }, ['text']],
          [{ to, text: 5 }, ['text']],
          [{ to, text: 'hi', extra: 1 }, ['extra']],
          [{ to, template: 'appointment_reminder' }, ['template']],
          [{ to, template: template({ name: 'Bad Name' }) }, ['template.name']],
          [
            { to, template: template({ language: 'english', category: 'promo' }) },
            ['template.language', 'template.category'],
          ],
          [{ to, template: template({ parameters: [1, 'ok'] }) }, ['template.parameters']],
          [{ to, template: template({ parameters: 'Ahmed' }) }, ['template.parameters']],
          [
            { to, template: template({ buttons: [{ subType: 'call', index: 12, parameter: '' }] }) },
            ['template.buttons.0.subType', 'template.buttons.0.index', 'template.buttons.0.parameter'],
          ],
          [{ to, template: template({ nope: true }) }, ['template.nope']],
          [{ to, text: 'hi', idempotencyKey: '' }, ['idempotencyKey']],
          [[{ to, text: 'hi' }], ['(body)']],
          [null, ['(body)']],
          ['"a string"', ['(body)']],
        ];
        for (const [body, fields] of cases) {
          const raw = typeof body === 'string' ? body : JSON.stringify(body);
          const answer = await v1('POST', '/v1/messages', { raw });
          expect({ body: raw.slice(0, 80), status: answer.status }).toEqual({ body: raw.slice(0, 80), status: 400 });
          expect(answer.body).toMatchObject({ error: 'invalid_body', message: expect.any(String) });
          const named = (answer.body.fields as { field: string }[]).map((f) => f.field);
          expect({ body: raw.slice(0, 80), named: [...new Set(named)].sort() }).toEqual({
            body: raw.slice(0, 80),
            named: [...fields].sort(),
          });
        }
        const mismatch = await v1('POST', '/v1/messages', {
          body: { to, text: 'hi', idempotencyKey: 'a' },
          headers: { 'idempotency-key': 'b' },
        });
        expect(mismatch.status).toBe(400);
        expect(mismatch.body.fields[0].field).toBe('idempotencyKey');
        expect((await v1('POST', '/v1/messages', { raw: '{"to": ' })).body).toEqual({
          error: 'invalid_body',
          message: expect.any(String),
        });
        const plain = await v1('POST', '/v1/messages', {
          raw: 'to=1',
          headers: { 'content-type': 'text/plain' },
        });
        expect(plain).toMatchObject({ status: 415, body: { error: 'unsupported_media_type' } });
        const huge = await v1('POST', '/v1/messages', { body: { to, text: 'x'.repeat(20_000) } });
        expect(huge).toMatchObject({ status: 413, body: { error: 'body_too_large' } });

        const queries: [string, string[]][] = [
          ['', ['from', 'to']],
          ['?from=2026-13-01&to=2026-11-01', ['from']],
          ['?from=2026-02-30&to=2026-03-01', ['from']],
          ['?from=2026-11-02&to=2026-11-01', ['to']],
          ['?from=2024-01-01&to=2026-11-01', ['to']],
          ['?from=2026-11-01&to=2026-11-02&currency=AED', ['currency']],
        ];
        for (const [query, fields] of queries) {
          const answer = await v1('GET', `/v1/costs${query}`);
          expect({ query, status: answer.status }).toEqual({ query, status: 400 });
          expect(answer.body.error).toBe('invalid_query');
          expect([...new Set((answer.body.fields as { field: string }[]).map((f) => f.field))].sort()).toEqual(fields);
        }
        for (const path of ['/v1/conversations/abc', '/v1/conversations/12', '/v1/conversations/%F0%9F%98%80']) {
          const answer = await v1('GET', path);
          expect({ path, status: answer.status, error: answer.body.error }).toEqual({
            path,
            status: 400,
            error: 'invalid_path',
          });
        }
        expect((await v1('GET', `/v1/conversations/${to}`)).status).toBe(404);
        // Nothing above reached the queue: the bot is quiet and sent nothing to this number.
        await bot.waitQuiet();
        expect(sendsTo(to)).toHaveLength(0);
      }, 90_000);

      it('the OpenAPI document at /v1/openapi.json lists every /v1 route, and only those', async () => {
        const doc = (await v1('GET', '/v1/openapi.json', { key: null })).body;
        expect(doc.openapi).toMatch(/^3\./);
        const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) =>
          Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`),
        );
        expect(documented.sort()).toEqual(
          [
            'POST /v1/messages',
            'GET /v1/conversations/{waId}',
            'POST /v1/conversations/{waId}/resume',
            'DELETE /v1/conversations/{waId}',
            'GET /v1/costs',
          ].sort(),
        );
        const fastify = bot.receiver.app.getHttpAdapter().getInstance();
        for (const entry of documented) {
          const [method, path] = entry.split(' ');
          expect({ entry, served: fastify.hasRoute({ method, url: path.replace(/\{(\w+)\}/g, ':$1') }) }).toEqual({
            entry,
            served: true,
          });
        }
        const schema = doc.components.schemas.SendMessageDto;
        expect(Object.keys(schema.properties).sort()).toEqual(['idempotencyKey', 'template', 'text', 'to']);
        expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
      });
    }

    if (reengagement) {
      it('131047 on a reply (synchronous), then again in a failed status: one re-engagement template for the closed window', async () => {
        const from = nextSender();
        const first = await patientWrites(from, 'first');
        bot.graph.enqueue({ kind: 'graph-error', code: 131047, message: 'Re-engagement message' });
        await patientWrites(from, 'second');
        const templates = templatesTo(from);
        expect(templates).toHaveLength(1);
        expect(templates[0].body.template).toEqual({
          name: 'reengage_hello',
          language: { policy: 'deterministic', code: 'en' },
        });
        const lastTs = Number(await bot.redis.hget(chatKey(from, 'state'), 'lastInboundTs'));
        expect(Number(await bot.redis.hget(chatKey(from, 'state'), 'reengagedFor'))).toBe(lastTs);
        // The first reply also fails, later: the window's template went out already.
        await failedWith131047(first, from);
        expect(templatesTo(from)).toHaveLength(1);
        expect(await bot.redis.hget(chatKey(from, 'handoff'), 'state')).toBeNull();
        expect(await bot.metric('tawasul_templates_sent_total', 'purpose="reengagement"')).toBeGreaterThanOrEqual(1);
      }, 90_000);

      it('131047 in a later failed status (asynchronous): one re-engagement template, however often the status comes', async () => {
        const from = nextSender();
        const wamid = await patientWrites(from);
        const failed = statusWith(wamid, 'failed', from, { errors: [{ code: 131047 }] });
        expect((await bot.post(failed)).status).toBe(200);
        await waitUntil('the template', () => Promise.resolve(templatesTo(from).length === 1), 30_000);
        expect((await bot.post(failed)).status).toBe(200);
        await bot.waitQuiet();
        expect(templatesTo(from)).toHaveLength(1);
        expect(await bot.redis.hget(chatKey(from, 'handoff'), 'state')).toBeNull();
      }, 90_000);

      it('a /v1 free-form message that fails later with 131047 is the clinic system’s: no re-engagement, no hand-over, a dead letter names it', async () => {
        const from = nextSender();
        await patientWrites(from);
        const sent = await v1('POST', '/v1/messages', { body: { to: from, text: 'Your results are ready.' } });
        expect(sent).toMatchObject({ status: 202, body: { mode: 'free_form' } });
        await bot.waitQuiet();
        const wamid = sendsTo(from).at(-1)!.wamid!;
        await failedWith131047(wamid, from);
        expect(templatesTo(from)).toHaveLength(0);
        expect(await bot.redis.hget(chatKey(from, 'handoff'), 'state')).toBeNull();
        expect(await bot.redis.hget(chatKey(from, 'state'), 'reengagedFor')).toBeNull();
        const root = bot.receiver.config.redisKeyRoot;
        const mine = async () => (await deadLetters(bot.redis, root)).filter((d) => d.data.api === sent.body.id);
        await waitUntil('the dead letter', async () => (await mine()).length > 0, 10_000);
        expect((await mine()).map((d) => d.data)).toEqual([
          expect.objectContaining({ reason: 'window_closed', code: '131047', late: true }),
        ]);
      }, 90_000);

      it('a 131047 failure that arrives after the patient wrote again changes nothing: their new window is open', async () => {
        const from = nextSender();
        const first = await patientWrites(from, 'first');
        move(5000);
        await patientWrites(from, 'second');
        await failedWith131047(first, from);
        expect(templatesTo(from)).toHaveLength(0);
        expect(await bot.redis.hget(chatKey(from, 'state'), 'reengagedFor')).toBeNull();
      }, 90_000);

      it('a late message (window closed): the re-engagement template instead of the LLM, once per closed window', async () => {
        const from = nextSender();
        const ts = Math.floor(clock.now() / 1000) - 25 * 3600;
        for (const text of ['late one', 'late two']) {
          const late = textMessage({ from, text });
          late.timestamp = String(ts);
          expect((await bot.post(envelope({ messages: [late] }))).status).toBe(200);
          await waitUntil(
            'the turn',
            async () => (await bot.redis.hget(chatKey(from, 'state'), 'reengagedFor')) !== null,
            30_000,
          );
          await bot.waitQuiet();
        }
        expect(sendsTo(from).map((s) => s.body.type)).toEqual(['template']);
        expect(bot.llm.requests.some((r) => JSON.stringify(r.body).includes('late one'))).toBe(false);
      }, 90_000);
    }

    it('idempotency: concurrent duplicates send once and all get the first answer; a later repeat sends nothing', async () => {
      const from = nextSender();
      await patientWrites(from);
      const body = { to: from, text: `Confirmed (${from})`, idempotencyKey: `booking-${from}` };
      const answers = await Promise.all([
        ...Array.from({ length: 6 }, () => v1('POST', '/v1/messages', { body })),
        ...Array.from({ length: 6 }, () =>
          v1('POST', '/v1/messages', {
            body: { to: from, text: body.text },
            headers: { 'idempotency-key': body.idempotencyKey },
          }),
        ),
      ]);
      expect(answers.map((a) => a.status)).toEqual(Array(12).fill(202));
      expect(new Set(answers.map((a) => JSON.stringify(a.body))).size).toBe(1);
      expect(answers.filter((a) => a.headers.get('idempotent-replayed') !== 'true')).toHaveLength(1);
      await bot.waitQuiet();
      expect(bot.sentTexts(from).filter((t) => t === body.text)).toHaveLength(1);

      move(23 * HOUR);
      const later = await v1('POST', '/v1/messages', { body });
      expect(later).toMatchObject({ status: 202, body: answers[0].body });
      expect(later.headers.get('idempotent-replayed')).toBe('true');
      await bot.waitQuiet();
      expect(bot.sentTexts(from).filter((t) => t === body.text)).toHaveLength(1);
    }, 90_000);

    it('an API send and a bot turn for the same chat never interleave', async () => {
      const from = nextSender();
      bot.llm.enqueue({ latencyMs: 1500 });
      const message = textMessage({ from, text: 'slow question' });
      message.timestamp = String(Math.floor(clock.now() / 1000));
      const requestsBefore = bot.llm.requests.length;
      expect((await bot.post(envelope({ messages: [message] }))).status).toBe(200);
      await bot.llm.waitForRequests(requestsBefore + 1, 10_000);
      // The window is open (the waiting message's timestamp) although no turn has committed it yet.
      const api = await v1('POST', '/v1/messages', {
        body: { to: from, text: 'From the booking system', template: template() },
      });
      expect(api).toMatchObject({ status: 202, body: { mode: 'free_form' } });
      await bot.waitQuiet();
      expect(sendsTo(from).map((s) => s.body.text?.body)).toEqual(['Echo: slow question', 'From the booking system']);
    }, 90_000);
  },
);

describe('/v1 without API_KEYS', () => {
  it('is absent: every route, the OpenAPI document included, answers 404', async () => {
    const app = await startTestApp();
    try {
      for (const [method, path] of [
        ['POST', '/v1/messages'],
        ['GET', '/v1/conversations/971500000001'],
        ['POST', '/v1/conversations/971500000001/resume'],
        ['DELETE', '/v1/conversations/971500000001'],
        ['GET', '/v1/costs?from=2026-11-01&to=2026-11-02'],
        ['GET', '/v1/openapi.json'],
      ]) {
        const response = await fetch(`${app.url}${path}`, {
          method,
          headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
          body: method === 'POST' ? JSON.stringify({ to: '971500000001', text: 'x' }) : undefined,
        });
        expect({ method, path, status: response.status }).toEqual({ method, path, status: 404 });
      }
    } finally {
      await app.close();
    }
  });
});

describe('an agent reply into a closed window, with REENGAGEMENT_TEMPLATE and Chatwoot', () => {
  let bot: BotCluster;

  beforeAll(async () => {
    bot = await BotCluster.start({
      workers: 0,
      chatwoot: true,
      env: { REENGAGEMENT_TEMPLATE: 'reengage_hello:ar:marketing' },
    });
  }, 60_000);

  afterAll(async () => {
    await bot?.close();
  });

  it('sends the re-engagement template once, and tells the agent to write again when the patient answers', async () => {
    const from = nextSender();
    expect((await bot.post(textPayload({ from, text: 'I need a human' }))).status).toBe(200);
    const { id } = await bot.handedOver(from);
    bot.receiver.app.get(Clock).advance(DAY + HOUR);
    bot.graph.reset();
    for (const content of ['Are you still there?', 'Please call us.']) {
      const before = bot.chatwoot.messagesOf(id).length;
      expect((await bot.postChatwoot(agentMessage({ conversationId: id, content, waId: from }))).status).toBe(200);
      await bot.chatwoot.waitForMessages(id, before + 1, 20_000);
      await bot.waitQuiet();
    }
    const sends = bot.graph.sends().filter((r) => r.body?.to === from);
    expect(sends.map((r) => r.body.type)).toEqual(['template']);
    expect(sends[0].body.template).toEqual({
      name: 'reengage_hello',
      language: { policy: 'deterministic', code: 'ar' },
    });
    const notes = bot.chatwoot
      .messagesOf(id)
      .filter((m) => m.private)
      .slice(-2);
    expect(notes[0].content).toMatch(/window is closed.*re-engagement template went out/s);
    expect(notes[1].content).toMatch(/window is closed/);
    expect(notes[1].content).not.toMatch(/re-engagement template went out/);
    expect(await bot.metric('tawasul_sends_total', 'mode="template",category="marketing",outcome="ok"')).toBe(1);
  }, 90_000);
});
