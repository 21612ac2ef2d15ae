import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Redis } from 'ioredis';
import { type RecordedLlmRequest } from '../fakes/fake-llm.server';
import { chatLane } from '../../src/queue/lanes';
import { BotCluster } from '../utils/bot-cluster';
import { envelope, freshWamid, nowSeconds, textMessage, textPayload } from '../utils/meta-payloads';
import { waitUntil } from '../utils/spawn-app';
import { TEST_D360_SECRET, TEST_PHONE_NUMBER_ID } from '../utils/test-env';

/*
 * What a conversation looks like to the patient, with one
 * receiver and three worker processes: debounced bursts, history, every inbound message type,
 * the closed 24-hour window, 360dialog, and the patient's language.
 */

type Json = Record<string, any>;

const FIXTURES = join(__dirname, '../fixtures/peer-payloads/pywa');
const CANNED = JSON.parse(readFileSync(join(__dirname, '../../config/messages.json'), 'utf8')) as Record<
  string,
  { en: string; ar: string }
>;

const lastUser = (r: RecordedLlmRequest): string => r.body.messages[r.body.messages.length - 1].content;
const laneOf = (from: string): string => chatLane(TEST_PHONE_NUMBER_ID, from);

/** Closes the cluster and the Redis connection its queue handle borrowed (BullMQ never closes a shared one). */
async function closeCluster(bot: BotCluster | undefined): Promise<void> {
  if (!bot) return;
  const queueConnection = bot.turnsQueue.opts.connection as Redis;
  await bot.close();
  queueConnection.disconnect();
}

/** One pywa case, a fresh copy. */
function pywa(file: string, name: string): Json {
  const cases = JSON.parse(readFileSync(join(FIXTURES, `${file}.json`), 'utf8')) as Record<string, Json>;
  if (!cases[name]) throw new Error(`no pywa case ${file}/${name}`);
  return cases[name];
}

/**
 * A pywa case as a patient of this deployment would send it now: our phone_number_id, the given
 * sender, fresh ids and timestamps (several pywa cases share ids and are years old).
 */
function asPatient(body: Json, from: string, tweak?: (message: Json) => void): Json {
  for (const entry of body.entry ?? []) {
    for (const change of entry.changes ?? []) {
      const value = change.value;
      if (value?.metadata?.phone_number_id) value.metadata.phone_number_id = TEST_PHONE_NUMBER_ID;
      for (const contact of value?.contacts ?? []) contact.wa_id = from;
      for (const message of value?.messages ?? []) {
        message.from = from;
        message.id = freshWamid();
        message.timestamp = nowSeconds();
        tweak?.(message);
      }
    }
  }
  return body;
}

const messageOf = (body: Json): Json => body.entry[0].changes[0].value.messages[0];

describe('conversations (debounce 1 s, history of 4)', () => {
  let bot: BotCluster;

  beforeAll(async () => {
    bot = await BotCluster.start({ workers: 3, env: { TURN_DEBOUNCE_MS: '1000', HISTORY_MAX_MESSAGES: '4' } });
  }, 180_000);

  afterAll(async () => {
    await closeCluster(bot);
  });

  beforeEach(async () => {
    await bot.waitQuiet(60_000);
    bot.llm.reset();
    bot.graph.reset();
  }, 90_000);

  const key = (suffix: string): string => `${bot.receiver.config.redisKeyRoot}:${suffix}`;
  const chatState = (from: string): Promise<Record<string, string>> =>
    bot.redis.hgetall(key(`chat:${laneOf(from)}:state`));

  it('a burst 150 ms apart is one turn: one LLM call with the texts joined in order, one reply', async () => {
    const from = '971500004001';
    let lastPost = 0;
    for (const text of ['Hello', 'I would like an appointment', 'tomorrow if possible']) {
      if (lastPost) await new Promise((r) => setTimeout(r, 150));
      lastPost = Date.now();
      expect((await bot.post(textPayload({ from, text }))).status).toBe(200);
    }
    await bot.llm.waitForRequests(1, 30_000);
    // The turn waits for a quiet window after the last message, not only after the first.
    expect(Date.now() - lastPost).toBeGreaterThanOrEqual(1000);
    await bot.graph.waitForSends(1, 30_000);
    await bot.waitQuiet(60_000);
    expect(bot.llm.requests).toHaveLength(1);
    expect(lastUser(bot.llm.requests[0])).toBe('Hello\nI would like an appointment\ntomorrow if possible');
    expect(bot.sentTexts(from)).toEqual(['Echo: Hello\nI would like an appointment\ntomorrow if possible']);

    // A message after the turn (well past the window) is a turn of its own.
    expect((await bot.post(textPayload({ from, text: 'and at 10 am' }))).status).toBe(200);
    await bot.graph.waitForSends(2, 30_000);
    await bot.waitQuiet(60_000);
    expect(bot.llm.requests).toHaveLength(2);
    expect(lastUser(bot.llm.requests[1])).toBe('and at 10 am');
    expect(bot.sentTexts(from)).toHaveLength(2);
  }, 120_000);

  it('the next turns carry the history, bounded by HISTORY_MAX_MESSAGES (the newest kept)', async () => {
    const from = '971500004002';
    for (let turn = 1; turn <= 5; turn++) {
      expect((await bot.post(textPayload({ from, text: `question ${turn}` }))).status).toBe(200);
      await bot.graph.waitForSends(turn, 30_000);
      await bot.waitQuiet(60_000);
    }
    const history = (r: RecordedLlmRequest) => r.body.messages.slice(1, -1);
    expect(history(bot.llm.requests[1])).toEqual([
      { role: 'user', content: 'question 1' },
      { role: 'assistant', content: 'Echo: question 1' },
    ]);
    for (const request of bot.llm.requests) expect(history(request).length).toBeLessThanOrEqual(4);
    expect(bot.llm.requests[4].body.messages[0].role).toBe('system');
    expect(history(bot.llm.requests[4])).toEqual([
      { role: 'user', content: 'question 3' },
      { role: 'assistant', content: 'Echo: question 3' },
      { role: 'user', content: 'question 4' },
      { role: 'assistant', content: 'Echo: question 4' },
    ]);
    expect(lastUser(bot.llm.requests[4])).toBe('question 5');
    const stored = (await bot.redis.lrange(key(`chat:${laneOf(from)}:history`), 0, -1)).map((e) => JSON.parse(e));
    expect(stored.map((e: { text: string }) => e.text)).toEqual([
      'question 4',
      'Echo: question 4',
      'question 5',
      'Echo: question 5',
    ]);
  }, 120_000);

  /**
   * Every inbound type (docs/integrations.md, payload fields), from pywa's real-world-shaped
   * payloads, one sender each.
   * llm: what the LLM must see (exact text, or checks of it); canned: the only reply, no LLM call;
   * nothing: no reply and no LLM call, but the turn ran (the chat state records the message).
   */
  type Expectation = { llm: string | ((text: string) => void) } | { canned: string } | 'nothing';
  const noCaption = (type: string) => (m: Json) => delete m[type].caption;
  const CASES: [string, string, Expectation, ((m: Json) => void)?][] = [
    ['message', 'text', { llm: 'Body Text' }],
    ['message', 'reply', { llm: 'replied text' }],
    ['message', 'forwarded', { llm: 'forwarded text' }],
    ['message', 'referral', { llm: 'BODY' }],
    ['callback_button', 'button', { llm: 'title' }],
    ['callback_button', 'quick_reply', { llm: 'title' }],
    ['callback_button', 'quick_reply_without_context', { llm: 'title' }],
    ['callback_selection', 'callback', { llm: 'title' }],
    ['callback_selection', 'description', { llm: 'title' }],
    [
      'flow_completion',
      'completion',
      {
        llm: (text) => {
          for (const part of ['comment_text', 'Comment Text', 'delivery_rating', '4']) expect(text).toContain(part);
          expect(text).not.toContain('AQAAAAACS5FpgQ'); // the flow token is not the patient's words
          expect(text.length).toBeLessThan(600);
        },
      },
    ],
    ['flow_completion', 'without_flow_token', { llm: (text) => expect(text).toContain('Comment Text') }],
    [
      'message',
      'chosen_location',
      {
        llm: (text) => {
          expect(text).toContain('Facebook HQ');
          expect(text).toContain('1 Hacker Way, Menlo Park, CA 94025');
        },
      },
    ],
    [
      'message',
      'current_location',
      {
        llm: (text) => {
          expect(text).toContain('12.25089');
          expect(text).toContain('43.90539');
        },
      },
    ],
    [
      'message',
      'contacts',
      { llm: (text) => ['Chandler Bing', 'Monica', 'Rachel Green'].forEach((n) => expect(text).toContain(n)) },
    ],
    [
      'message',
      'image',
      {
        llm: (text) => {
          expect(text).toContain('Is this rash serious?');
          expect(text).toMatch(/image/i);
        },
      },
      (m) => (m.image.caption = 'Is this rash serious?'),
    ],
    [
      'message',
      'video',
      {
        llm: (text) => {
          expect(text).toContain('caption');
          expect(text).toMatch(/video/i);
        },
      },
    ],
    ['message', 'document', { llm: (text) => expect(text).toContain('caption') }],
    ['edited_message', 'image', { llm: 'Updated image caption' }],
    ['message', 'image', { canned: 'unsupported_media' }],
    ['message', 'media_with_url', { canned: 'unsupported_media' }],
    ['message', 'video', { canned: 'unsupported_media' }, noCaption('video')],
    ['message', 'document', { canned: 'unsupported_media' }, noCaption('document')],
    ['message', 'audio', { canned: 'unsupported_media' }],
    ['message', 'voice', { canned: 'unsupported_media' }],
    ['message', 'static_sticker', { canned: 'unsupported_media' }],
    ['message', 'animated_sticker', { canned: 'unsupported_media' }],
    ['message', 'unsupported', { canned: 'resend_as_text' }],
    ['message', 'unsupported_with_type', { canned: 'resend_as_text' }],
    ['message', 'reaction', 'nothing'],
    ['message', 'unreaction_empty', 'nothing'],
    ['message', 'unreaction_no_emoji', 'nothing'],
    ['system', 'identity_change', 'nothing'],
    ['call_permission_update', 'accept', 'nothing'],
    ['call_permission_update', 'reject', 'nothing'],
  ];

  it('every inbound type gets its answer: LLM text, canned text, or nothing', async () => {
    const skippedBefore = await bot.metric('tawasul_turns_total', 'outcome="skipped"');
    const cases = CASES.map(([file, name, expectation, tweak], i) => {
      const from = `9715000042${String(i).padStart(2, '0')}`;
      return { label: `${file}/${name}`, from, expectation, body: asPatient(pywa(file, name), from, tweak) };
    });
    for (const c of cases) expect([c.label, (await bot.post(c.body)).status]).toEqual([c.label, 200]);
    const answered = cases.filter((c) => c.expectation !== 'nothing');
    await bot.graph.waitForSends(answered.length, 60_000);
    await bot.waitQuiet(60_000);

    for (const { label, from, expectation } of cases) {
      const sent = bot.sentTexts(from);
      if (expectation === 'nothing') {
        expect([label, sent]).toEqual([label, []]);
        // The turn ran (the message counts for the window) and decided to say nothing.
        expect([label, Number((await chatState(from)).lastInboundTs) > 0]).toEqual([label, true]);
      } else if ('canned' in expectation) {
        expect([label, sent]).toEqual([label, [CANNED[expectation.canned].en]]);
      } else {
        expect([label, sent.length]).toEqual([label, 1]);
        expect(sent[0].startsWith('Echo: ')).toBe(true);
        const seen = sent[0].slice('Echo: '.length);
        if (typeof expectation.llm === 'string') expect([label, seen]).toEqual([label, expectation.llm]);
        else expectation.llm(seen);
      }
    }
    // The LLM was asked once per LLM case and never for canned or silent ones.
    expect(bot.llm.requests).toHaveLength(
      cases.filter((c) => c.expectation !== 'nothing' && 'llm' in c.expectation).length,
    );
    const silent = cases.filter((c) => c.expectation === 'nothing').length;
    expect(await bot.metric('tawasul_turns_total', 'outcome="skipped"')).toBe(skippedBefore + silent);
  }, 150_000);

  it('an edit of a message in the same turn: the LLM sees the edited text only', async () => {
    const from = '971500004003';
    const original = asPatient(pywa('message', 'image'), from, (m) => (m.image.caption = 'old caption, ignore me'));
    const originalId = messageOf(original).id as string;
    const edit = asPatient(pywa('edited_message', 'image'), from, (m) => (m.edit.original_message_id = originalId));
    expect((await bot.post(original)).status).toBe(200);
    expect((await bot.post(edit)).status).toBe(200);
    await bot.graph.waitForSends(1, 30_000);
    await bot.waitQuiet(60_000);
    expect(bot.llm.requests).toHaveLength(1);
    expect(lastUser(bot.llm.requests[0])).toBe('Updated image caption');
    expect(bot.sentTexts(from)).toEqual(['Echo: Updated image caption']);
  }, 90_000);

  it('a revoke of a message not yet answered withdraws it', async () => {
    // The only message of the turn withdrawn: no LLM call, no reply.
    const alone = '971500004004';
    const lonely = textPayload({ from: alone, text: 'sent to the wrong chat' });
    const lonelyId = messageOf(lonely).id as string;
    const revoke = (from: string, target: string): Json =>
      asPatient(pywa('deleted_message', 'revoke'), from, (m) => (m.revoke.original_message_id = target));
    // Withdrawn from a turn of two: the LLM sees only the other one.
    const pair = '971500004005';
    const kept = textPayload({ from: pair, text: 'what are your opening hours?' });
    const regretted = textPayload({ from: pair, text: 'my card number is 4111' });
    const regrettedId = messageOf(regretted).id as string;

    for (const body of [lonely, revoke(alone, lonelyId), kept, regretted, revoke(pair, regrettedId)]) {
      expect((await bot.post(body)).status).toBe(200);
    }
    await bot.graph.waitForSends(1, 30_000);
    await bot.waitQuiet(60_000);
    expect(bot.llm.requests.map(lastUser)).toEqual(['what are your opening hours?']);
    expect(bot.sentTexts(pair)).toEqual(['Echo: what are your opening hours?']);
    expect(bot.sentTexts(alone)).toEqual([]);
    expect(Number((await chatState(alone)).lastInboundTs)).toBeGreaterThan(0);
  }, 90_000);

  it('statuses for our replies and webhook fields other than messages get no reply', async () => {
    const from = '971500004006';
    await bot.post(textPayload({ from, text: 'status test' }));
    const [reply] = await bot.graph.waitForSends(1, 30_000);
    await bot.waitQuiet(60_000);

    const bodies: Json[] = [];
    for (const name of ['sent', 'delivered', 'read', 'played', 'failed', 'with_tracker', 'group']) {
      const body = pywa('message_status', name);
      const value = body.entry[0].changes[0].value;
      value.metadata.phone_number_id = TEST_PHONE_NUMBER_ID;
      for (const status of value.statuses) {
        Object.assign(status, { id: reply.wamid, recipient_id: from, timestamp: nowSeconds() });
      }
      bodies.push(body);
    }
    for (const file of [
      'account_update',
      'call_connect',
      'call_status',
      'call_terminate',
      'template_category_update',
      'template_components_update',
      'template_quality_update',
      'template_status_update',
      'user_marketing_preferences',
      'outgoing_message',
    ]) {
      const cases = JSON.parse(readFileSync(join(FIXTURES, `${file}.json`), 'utf8')) as Record<string, Json>;
      bodies.push(...Object.values(cases));
    }
    for (const body of bodies) expect((await bot.post(body)).status).toBe(200);
    // The statuses found the outbound record: the status lane ran, and answered nobody.
    await waitUntil(
      'the statuses to be applied',
      async () => !!(await bot.redis.hget(key(`out:${reply.wamid}`), 'statusAt')),
      30_000,
    );
    await bot.waitQuiet(60_000);
    expect(bot.graph.sends()).toHaveLength(1);
    expect(bot.llm.requests).toHaveLength(1);
  }, 90_000);

  it('a message from a closed 24-hour window: no LLM call, no reply, a flagged chat handed over (no template configured)', async () => {
    const from = '971500004007';
    const escalated = await bot.metric('tawasul_turns_total', 'outcome="escalated"');
    const closed = await bot.metric('tawasul_escalations_total', 'trigger="window_closed"');
    const found = await bot.metric('tawasul_window_closed_total', 'source="turn"');
    const late = textMessage({ from, text: 'are you still there?' });
    late.timestamp = String(Math.floor(Date.now() / 1000) - 25 * 3600);
    expect((await bot.post(envelope({ messages: [late] }))).status).toBe(200);
    await waitUntil('the turn to finish', async () => (await chatState(from)).windowClosed !== undefined, 30_000);
    await bot.waitQuiet(60_000);
    expect(bot.llm.requests).toHaveLength(0);
    expect(bot.graph.sends()).toHaveLength(0);
    expect(await bot.metric('tawasul_turns_total', 'outcome="escalated"')).toBe(escalated + 1);
    expect(await bot.metric('tawasul_escalations_total', 'trigger="window_closed"')).toBe(closed + 1);
    expect(await bot.metric('tawasul_window_closed_total', 'source="turn"')).toBe(found + 1);
    expect((await chatState(from)).windowClosed).toBe('1');
    // A person must reach the patient: the bot is paused for this chat.
    expect(await bot.redis.hget(key(`chat:c.${TEST_PHONE_NUMBER_ID}.${from}:handoff`), 'state')).toBe('human');
  }, 90_000);

  it('an Arabic patient gets Arabic canned texts, and the chat remembers its language', async () => {
    const from = '971500004008';
    expect((await bot.post(textPayload({ from, text: 'مرحبا، أريد حجز موعد' }))).status).toBe(200);
    await bot.graph.waitForSends(1, 30_000);
    await bot.waitQuiet(60_000);
    expect(bot.sentTexts(from)).toEqual(['Echo: مرحبا، أريد حجز موعد']);
    expect((await chatState(from)).language).toBe('ar');

    // A picture without a caption has no words: the remembered language decides.
    expect((await bot.post(asPatient(pywa('message', 'image'), from))).status).toBe(200);
    await bot.graph.waitForSends(2, 30_000);
    await bot.waitQuiet(60_000);
    expect(bot.sentTexts(from)[1]).toBe(CANNED.unsupported_media.ar);
    expect((await bot.post(asPatient(pywa('message', 'unsupported'), from))).status).toBe(200);
    await bot.graph.waitForSends(3, 30_000);
    await bot.waitQuiet(60_000);
    expect(bot.sentTexts(from)[2]).toBe(CANNED.resend_as_text.ar);
    expect(bot.llm.requests).toHaveLength(1);
    expect((await chatState(from)).language).toBe('ar');

    // The patient switches to English: the chat follows, and so do the canned texts.
    expect((await bot.post(textPayload({ from, text: 'Do you speak English?' }))).status).toBe(200);
    await bot.graph.waitForSends(4, 30_000);
    await bot.waitQuiet(60_000);
    expect((await chatState(from)).language).toBe('en');
    expect((await bot.post(asPatient(pywa('message', 'voice'), from))).status).toBe(200);
    await bot.graph.waitForSends(5, 30_000);
    await bot.waitQuiet(60_000);
    expect(bot.sentTexts(from)).toEqual([
      'Echo: مرحبا، أريد حجز موعد',
      CANNED.unsupported_media.ar,
      CANNED.resend_as_text.ar,
      'Echo: Do you speak English?',
      CANNED.unsupported_media.en,
    ]);
  }, 120_000);
});

describe('360dialog in and out', () => {
  let bot: BotCluster;

  beforeAll(async () => {
    // The fake's URL is known only once the cluster runs: the first worker (pointed nowhere) is
    // replaced before any message arrives by three that send to the fake.
    bot = await BotCluster.start({
      workers: 1,
      env: {
        BSP_PROVIDER: '360dialog',
        D360_WEBHOOK_SECRET: TEST_D360_SECRET,
        D360_API_KEY: 'test-d360-key',
        D360_BASE_URL: 'http://127.0.0.1:9',
      },
    });
    const [placeholder] = bot.workers.splice(0, 1);
    placeholder.kill('SIGKILL');
    await placeholder.waitExit();
    bot.env.D360_BASE_URL = bot.graph.url;
    await Promise.all([1, 2, 3].map(() => bot.addWorker()));
  }, 180_000);

  afterAll(async () => {
    await closeCluster(bot);
  });

  it('a relayed webhook with X-Webhook-Secret is answered through {D360_BASE_URL}/messages with D360-API-KEY', async () => {
    const from = '971500004101';
    const raw = JSON.stringify(textPayload({ from, text: 'hello via 360dialog' }));
    const post = (headers: Record<string, string>) =>
      fetch(`${bot.receiver.url}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: raw,
      });
    expect((await post({ 'x-webhook-secret': 'not-the-secret' })).status).toBe(401);
    expect((await post({ 'x-webhook-secret': TEST_D360_SECRET })).status).toBe(200);
    const [send] = await bot.graph.waitForSends(1, 30_000);
    await bot.waitQuiet(60_000);
    expect(send).toMatchObject({ provider: '360dialog', path: '/messages', behaviour: 'ok' });
    expect(send.headers['d360-api-key']).toBe('test-d360-key');
    expect(send.headers.authorization).toBeUndefined();
    expect(send.body).toMatchObject({
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: from,
      type: 'text',
      text: { body: 'Echo: hello via 360dialog' },
    });
    expect(bot.graph.sends()).toHaveLength(1);
    expect(bot.llm.requests.map(lastUser)).toEqual(['hello via 360dialog']);
  }, 90_000);
});
