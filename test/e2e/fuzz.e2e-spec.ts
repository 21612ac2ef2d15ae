import { createHmac } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc, { type Arbitrary } from 'fast-check';
import { statusLane } from '../../src/queue/lanes';
import { KNOWN_MESSAGE_TYPES } from '../../src/webhook/webhook-payload';
import { BotCluster, CHATWOOT_WEBHOOK_TOKEN } from '../utils/bot-cluster';
import { agentMessage, statusChanged } from '../utils/chatwoot-payloads';
import { deadLetters } from '../utils/dead-letters';
import {
  anyJson,
  apiErrorShapeProblem,
  expectedForJsonBody,
  fuzzParams,
  isPlainObject,
  isReceiverError,
  jsonKey,
  jsonOf,
  type Json,
  mutate,
  mutation,
  named,
  encode,
  nastyString,
  nestedText,
  nestingDepth,
  orAnything,
  type RawResponse,
  send,
} from '../utils/fuzz';
import { envelope, freshWamid, nowSeconds, statusPayload, textMessage, textPayload } from '../utils/meta-payloads';
import { signBody } from '../utils/sign';
import { waitUntil } from '../utils/spawn-app';
import { TEST_PHONE_NUMBER_ID, TEST_VERIFY_TOKEN } from '../utils/test-env';

/*
 * Property-based fuzzing of every public HTTP surface (POST and GET /webhook, POST
 * /chatwoot/webhook, /v1) against the whole bot in this process: role `all`, real Redis, the fake
 * Graph API, LLM and Chatwoot. For every input: no 5xx but 503, the process never crashes, a 4xx
 * has its route's error shape; after each block, fresh and fuzzed chats still get their replies
 * and nothing was dead-lettered or failed a turn.
 *
 * FUZZ_SEED replays a run (its seed is printed first, `fuzz seed N`; a property's failure also
 * prints its path, and FUZZ_PATH narrows to the case);
 * FUZZ_RUNS sets the runs of the cheap properties (the costly ones run a fraction of it).
 */

const RUNS = 100;
const KEY = 'fuzz-api-key';
const CW_SECRET = 'fuzz-chatwoot-secret';
const PN = TEST_PHONE_NUMBER_ID;
const BODY_LIMIT = 3_145_728;
const CHATWOOT_BODY_LIMIT = 102_400;
const API_BODY_LIMIT = 16_384;
const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

let bot: BotCluster;
const crashes: unknown[] = [];
const recordCrash = (err: unknown): void => void crashes.push(err);

let senderSeq = 0;
/** A number no other chat of this file uses. */
const freshSender = (): string => `97150300${String(senderSeq++).padStart(4, '0')}`;
let probeSeq = 0;

/**
 * The chats a fuzz block wrote to. Every run gets chats of its own: more than 10 turns a minute
 * would park a chat by design (MAX_TURNS_PER_WINDOW), which is no finding.
 */
class Chats {
  readonly used: string[] = [];

  fresh(): string {
    const chat = freshSender();
    this.used.push(chat);
    return chat;
  }

  /**
   * Arbitraries name a run's chats `@chat0`, `@chat1`…: the generated values (what fast-check
   * prints and replays) stay the same while every run writes to fresh numbers.
   */
  bind(raw: string): string {
    const mine = new Map<string, string>();
    return raw.replace(/@chat\d/g, (name) => {
      if (!mine.has(name)) mine.set(name, this.fresh());
      return mine.get(name)!;
    });
  }
}

const CHAT_NAMES = ['@chat0', '@chat1', '@chat2'] as const;

beforeAll(async () => {
  process.on('unhandledRejection', recordCrash);
  process.on('uncaughtException', recordCrash);
  bot = await BotCluster.start({
    workers: 0,
    chatwoot: true,
    env: { API_KEYS: KEY, CHATWOOT_WEBHOOK_SECRET: CW_SECRET },
  });
}, 60_000);

afterAll(async () => {
  await bot?.close();
  process.off('unhandledRejection', recordCrash);
  process.off('uncaughtException', recordCrash);
});

// ---------------------------------------------------------------------------------------------
// Talking to the app

const postWebhook = (
  body: Buffer | string,
  headers: Record<string, string | string[] | undefined> = {},
  chunked = false,
) =>
  send(bot.receiver.url, {
    path: '/webhook',
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': signBody(body), ...headers },
    body,
    chunked: chunked ? 'burst' : undefined,
  });

function chatwootSignature(raw: Buffer | string, timestamp: string, secret = CW_SECRET): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.`).update(raw).digest('hex')}`;
}

const postChatwoot = (raw: Buffer | string, query = `token=${encodeURIComponent(CHATWOOT_WEBHOOK_TOKEN)}`) => {
  const timestamp = nowSeconds();
  return send(bot.receiver.url, {
    path: `/chatwoot/webhook?${query}`,
    headers: {
      'content-type': 'application/json',
      'x-chatwoot-timestamp': timestamp,
      'x-chatwoot-signature': chatwootSignature(raw, timestamp),
    },
    body: raw,
  });
};

const api = (method: string, path: string, body?: string, headers: Record<string, string | undefined> = {}) =>
  send(bot.receiver.url, {
    method,
    path,
    headers: {
      authorization: `Bearer ${KEY}`,
      ...(body !== undefined && { 'content-type': 'application/json' }),
      ...headers,
    },
    body,
  });

const describeAnswer = (res: RawResponse): string => `${res.status} ${res.text.slice(0, 300)}`;

// ---------------------------------------------------------------------------------------------
// Afterwards: nothing poisoned, nothing stuck

const root = (): string => bot.receiver.config.redisKeyRoot;

async function turnFailures(): Promise<number> {
  return (
    (await bot.metric('tawasul_turn_failures_total', 'outcome="retried"')) +
    (await bot.metric('tawasul_turn_failures_total', 'outcome="dead_lettered"'))
  );
}

/** Posts a plain text from `from` and waits for its echo reply. */
async function expectReply(from: string): Promise<void> {
  const text = `probe ${probeSeq++}`;
  const res = await bot.post(textPayload({ from, text }));
  expect({ from, status: res.status }).toEqual({ from, status: 200 });
  await waitUntil(`the reply to ${from}`, () => bot.sentTexts(from).includes(`Echo: ${text}`), 20_000);
}

/** Probing every fuzzed chat would cost a turn each: this many, spread over the block's runs. */
const PROBED_CHATS = 24;

/**
 * After a fuzz block: the process is whole, every chat settles, nothing was dead-lettered and no
 * turn threw, every fuzzed chat is readable through /v1, and fuzzed chats (given back to the bot
 * when the fuzz handed them to a human) answer a normal message, as does a sender never seen.
 */
async function expectNothingPoisoned(fuzzedChats: readonly string[], failuresBefore: number): Promise<void> {
  expect(crashes).toEqual([]);
  await waitSettled();
  const letters = await deadLetters(bot.redis, root());
  expect(letters.map((l) => ({ reason: l.data.reason, lane: l.data.lane, detail: l.data.err ?? l.data.code }))).toEqual(
    [],
  );
  expect((await turnFailures()) - failuresBefore).toBe(0);
  const answered: string[] = [];
  for (const from of fuzzedChats) {
    const shown = await api('GET', `/v1/conversations/${from}`);
    expect({ from, answer: describeAnswer(shown) }).toEqual({
      from,
      answer: expect.stringMatching(/^(?:200|404) /) as string,
    });
    if (shown.status !== 200) continue;
    answered.push(from);
    if ((jsonOf(shown.text) as { handoff?: string }).handoff === 'human') {
      expect((await api('POST', `/v1/conversations/${from}/resume`)).status).toBe(200);
    }
  }
  const step = Math.max(1, Math.ceil(answered.length / PROBED_CHATS));
  const probed = [freshSender(), ...answered.filter((_, i) => i % step === 0)];
  await Promise.all(probed.map((from) => expectReply(from)));
  await waitSettled();
  expect(crashes).toEqual([]);
}

/**
 * Every chat and desk lane has finished its work (twice in a row, to not catch a hand-over). A
 * status lane may stay parked: a status that comes before its message is retried for two minutes
 * by design, but it must have its wake-up, or it would wait for the sweeper.
 */
async function waitSettled(): Promise<void> {
  const busy = async (): Promise<string[]> => {
    const notStatus = (lane: string): boolean => !lane.startsWith('s.');
    const pending = (await bot.redis.zrange(`${root()}:pending`, 0, -1)).filter(notStatus);
    const jobs = (await bot.turnsQueue.getJobs(['waiting', 'active', 'delayed', 'prioritized']))
      .filter((j) => j && j.name !== 'sweep' && notStatus(String(j.data?.lane)))
      .map((j) => `job ${j.id}`);
    const keys = (await scanKeys(/:(?:inbox|lease|turn):(?!s\.)/)).map((k) => `key ${k}`);
    return [...pending.map((l) => `pending ${l}`), ...jobs, ...keys];
  };
  let last: string[] = [];
  let quietChecks = 0;
  try {
    await waitUntil(
      'every chat to settle',
      async () => {
        last = await busy();
        quietChecks = last.length === 0 ? quietChecks + 1 : 0;
        return quietChecks >= 2;
      },
      30_000,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; still busy: ${last.slice(0, 20).join(', ')}`);
  }
  // Between a turn's end and its re-arm a lane has neither for a moment: asked again before it counts.
  let orphans: string[] = [];
  await waitUntil(
    'every parked status lane to have its wake-up',
    async () => {
      const parked = (await bot.redis.zrange(`${root()}:pending`, 0, -1)).filter((l) => l.startsWith('s.'));
      const jobs = await bot.turnsQueue.getJobs(['waiting', 'active', 'delayed', 'prioritized']);
      const woken = new Set(jobs.map((j) => String(j?.data?.lane)));
      const held = new Set((await scanKeys(/:lease:s\./)).map((k) => k.slice(k.indexOf(':lease:') + 7)));
      orphans = parked.filter((lane) => !woken.has(lane) && !held.has(lane));
      return orphans.length === 0;
    },
    3_000,
  ).catch(() => undefined);
  expect(orphans).toEqual([]);
}

async function scanKeys(pattern: RegExp): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await bot.redis.scan(
      cursor,
      'MATCH',
      `${root().replace(/[{}]/g, (c) => `\\${c}`)}:*`,
      'COUNT',
      1000,
    );
    keys.push(...batch.filter((k) => pattern.test(k)));
    cursor = next;
  } while (cursor !== '0');
  return keys;
}

// ---------------------------------------------------------------------------------------------
// Meta payload arbitraries

/** Timestamps as Meta sends them (now, as a string), and every way one can be wrong. */
const timestamp: Arbitrary<Json> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(null).map(() => nowSeconds()) },
  fc.constantFrom('0', '1', '-1', '1e20', '99999999999999', '9'.repeat(400), 'Infinity', 'NaN', ''),
  fc.integer().map(String),
  fc.double({ noNaN: true }).map(String),
);

/** A wamid no run used before: accepted items must not be deduplicated away. */
const wamid: Arbitrary<string> = fc.constant(null).map(() => freshWamid());

/** A wamid of one of the bot's own sends: a status for it reaches the outbound record and the cost ledger. */
const ownWamid: Arbitrary<string> = fc.nat().map((i) => {
  const sent = bot.graph.sends().filter((r) => r.wamid);
  return sent.length > 0 ? sent[i % sent.length].wamid! : freshWamid();
});

const messageTypes = [...KNOWN_MESSAGE_TYPES, 'poll', 'Text'];

/** A message from one of `chats`, each field possibly missing or of another type. */
function messageArb(chats: readonly string[]): Arbitrary<Json> {
  const fields = fc.record(
    {
      from: orAnything(fc.constantFrom(...chats), 4),
      id: orAnything(wamid, 4),
      timestamp: orAnything(timestamp, 4),
      type: orAnything(fc.constantFrom(...messageTypes), 4),
      context: anyJson,
      errors: anyJson,
    },
    { requiredKeys: ['from', 'id', 'type'] },
  );
  // The payload under the message's own type: real-shaped for text, anything for the others.
  const payload = orAnything(fc.record({ body: orAnything(nastyString) }), 2);
  return fc.tuple(fields, payload).map(([m, p]) => (typeof m.type === 'string' ? { ...m, [m.type]: p } : m));
}

/** Meta's pricing object, real-shaped or not: a category or type that is no category name too. */
const PRICING = orAnything(
  fc.record({
    billable: anyJson,
    pricing_model: orAnything(fc.constant('PMP')),
    type: orAnything(fc.constantFrom('regular', 'free_customer_service', 'free_entry_point', 'total', ' ', 'a:b')),
    category: orAnything(
      fc.constantFrom('service', 'utility', 'marketing', 'authentication', 'referral_conversion', 'total', 'a:b'),
    ),
  }),
  3,
);

function statusArb(chats: readonly string[]): Arbitrary<Json> {
  return fc.record(
    {
      id: orAnything(fc.oneof(wamid, ownWamid, ownWamid), 4),
      status: orAnything(fc.constantFrom('sent', 'delivered', 'read', 'failed', 'played', 'deleted'), 4),
      timestamp: orAnything(timestamp, 4),
      recipient_id: orAnything(fc.constantFrom(...chats), 4),
      recipient_type: fc.constantFrom('individual', 'group'),
      biz_opaque_callback_data: anyJson,
      conversation: anyJson,
      errors: orAnything(fc.array(fc.record({ code: orAnything(fc.constantFrom(131047, 131026, 130429)) }))),
      pricing: PRICING,
    },
    { requiredKeys: ['id', 'status', 'recipient_id'] },
  );
}

/** A whole Meta envelope where any level (entry, change, value, messages, statuses, contacts) may be of a wrong type. */
function envelopeArb(chats: readonly string[]): Arbitrary<Json> {
  const contact = orAnything(
    fc.record({
      profile: orAnything(fc.record({ name: orAnything(nastyString) })),
      wa_id: orAnything(fc.constantFrom(...chats)),
    }),
    4,
  );
  const value = orAnything(
    fc.record(
      {
        messaging_product: orAnything(fc.constant('whatsapp'), 6),
        metadata: orAnything(
          fc.record({
            display_phone_number: fc.constant('15550001111'),
            phone_number_id: orAnything(fc.constant(PN), 6),
          }),
          6,
        ),
        contacts: orAnything(fc.array(contact, { maxLength: 3 }), 4),
        messages: orAnything(fc.array(messageArb(chats), { maxLength: 3 }), 6),
        statuses: orAnything(fc.array(statusArb(chats), { maxLength: 3 }), 4),
        errors: fc.array(anyJson, { maxLength: 2 }),
      },
      { requiredKeys: ['metadata'] },
    ),
    6,
  );
  const change = orAnything(fc.record({ field: orAnything(fc.constant('messages'), 6), value }), 6);
  const entry = orAnything(
    fc.record({
      id: orAnything(fc.constant('200000000000002')),
      changes: orAnything(fc.array(change, { maxLength: 3 }), 6),
    }),
    6,
  );
  return fc.record({
    object: orAnything(fc.constant('whatsapp_business_account'), 8),
    entry: orAnything(fc.array(entry, { minLength: 1, maxLength: 3 }), 6),
  });
}

// ---------------------------------------------------------------------------------------------
// Fixtures: every real-shaped Meta payload the repository holds

type Case = [name: string, body: Json];

const PYWA = join(__dirname, '../fixtures/peer-payloads/pywa');
const FIXTURE_CASES: Case[] = [
  ...readdirSync(PYWA)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .flatMap((file) =>
      Object.entries(JSON.parse(readFileSync(join(PYWA, file), 'utf8')) as Record<string, Json>).map(
        ([name, body]): Case => [`${file.replace(/\.json$/, '')}/${name}`, body],
      ),
    ),
  ['arabic-escaped', JSON.parse(readFileSync(join(__dirname, '../fixtures/arabic-escaped.json'), 'utf8')) as Json],
  ['meta-payloads/text', textPayload() as Json],
  ['meta-payloads/status', statusPayload('wamid.X', 'delivered') as Json],
];

/** The case as it would reach this deployment from `chat`: our number, fresh ids, current timestamps. */
function forThisDeployment(body: Json, chat: string): Json {
  const copy = structuredClone(body) as any;
  for (const entry of Array.isArray(copy?.entry) ? copy.entry : []) {
    for (const change of Array.isArray(entry?.changes) ? entry.changes : []) {
      const value = change?.value;
      if (typeof value !== 'object' || value === null) continue;
      if (value.metadata?.phone_number_id) value.metadata.phone_number_id = PN;
      for (const contact of Array.isArray(value.contacts) ? value.contacts : []) contact.wa_id = chat;
      for (const item of [...(value.messages ?? []), ...(value.statuses ?? [])]) {
        item.id = freshWamid();
        item.timestamp = nowSeconds();
        if ('from' in item) item.from = chat;
        if ('recipient_id' in item) item.recipient_id = chat;
      }
    }
  }
  return copy as Json;
}

// =============================================================================================

describe('POST /webhook (Meta) under fuzzing', () => {
  const chats = new Chats();
  let failuresBefore = 0;
  beforeAll(async () => {
    failuresBefore = await turnFailures();
  });

  /** The one answer rule of a signed body: 200 "OK" for a clean JSON object, else 400 `{ error }`. */
  async function expectSignedAnswer(raw: Buffer | string, chunked = false): Promise<void> {
    const res = await postWebhook(raw, {}, chunked);
    const expected = Buffer.byteLength(raw) > BODY_LIMIT ? 413 : expectedForJsonBody(raw);
    expect({ answer: describeAnswer(res), expected }).toEqual({
      answer: expect.stringMatching(new RegExp(`^${expected} `)) as string,
      expected,
    });
    if (expected === 200) expect(res.text).toBe('OK');
    else expect(isReceiverError(res.text)).toBe(true);
  }

  it('signed arbitrary JSON (and not JSON): 200 for an object, 400 for anything else', async () => {
    const body = fc.oneof(
      fc.json(),
      anyJson.map((v) => JSON.stringify(v)),
      anyJson.map((v) => JSON.stringify({ object: 'whatsapp_business_account', entry: v })),
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.dictionary(jsonKey, anyJson).map((v) => JSON.stringify(v)),
    );
    await fc.assert(
      fc.asyncProperty(body, (raw) => expectSignedAnswer(raw)),
      fuzzParams(RUNS),
    );
  });

  it('a real envelope with wrong types at every level: 200, never a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(envelopeArb(CHAT_NAMES), (payload) => expectSignedAnswer(chats.bind(JSON.stringify(payload)))),
      fuzzParams(RUNS, 2),
    );
  });

  it(`every Meta payload of the fixtures (${FIXTURE_CASES.length}), mutated: fields dropped, types swapped, values replaced`, async () => {
    const mutationsPerCase = fc.array(fc.array(mutation, { minLength: 1, maxLength: 3 }), {
      minLength: FIXTURE_CASES.length,
      maxLength: FIXTURE_CASES.length,
    });
    await fc.assert(
      fc.asyncProperty(mutationsPerCase, async (perCase) => {
        for (const [i, [name, body]] of FIXTURE_CASES.entries()) {
          const raw = JSON.stringify(mutate(forThisDeployment(body, chats.fresh()), perCase[i]));
          const res = await postWebhook(raw);
          const expected = expectedForJsonBody(raw);
          expect({ name, answer: describeAnswer(res) }).toEqual({
            name,
            answer: expect.stringMatching(new RegExp(`^${expected} `)) as string,
          });
        }
      }),
      fuzzParams(RUNS, 0.1),
    );
  });

  it('invalid UTF-8 bytes inside a signed text message: 200 or 400 as the bytes parse, never a 5xx', async () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.array(fc.integer({ min: 0x80, max: 0xff }), { minLength: 1, maxLength: 16 }).map((b) => Uint8Array.from(b)),
    );
    await fc.assert(
      fc.asyncProperty(bytes, fc.constantFrom('text', 'name', 'key'), async (b, where) => {
        const from = chats.fresh();
        const payload = textPayload({
          from,
          text: where === 'text' ? 'MARK' : 'hello',
          name: where === 'name' ? 'MARK' : 'P',
        });
        const json = JSON.stringify(where === 'key' ? { ...payload, MARK: 1 } : payload);
        const [head, tail] = json.split('MARK');
        await expectSignedAnswer(Buffer.concat([Buffer.from(head), b, Buffer.from(tail)]));
      }),
      fuzzParams(RUNS),
    );
  });

  it('huge strings, up to past the body limit, with content-length or chunked: 200, 400 or 413, never a 5xx', async () => {
    // The size, not the string, is the generated value: a counterexample stays short enough to read.
    const huge = fc.record({
      chunk: fc.string({ unit: 'binary', minLength: 1, maxLength: 24 }),
      bytes: fc.integer({ min: 50_000, max: 3_300_000 }),
    });
    await fc.assert(
      fc.asyncProperty(
        huge,
        fc.constantFrom('text', 'id', 'key', 'contact'),
        fc.boolean(),
        async ({ chunk, bytes }, where, chunked) => {
          const s = chunk.repeat(Math.ceil(bytes / Buffer.byteLength(chunk)));
          const from = chats.fresh();
          const message = textMessage({ from, text: where === 'text' ? s : 'hello' });
          if (where === 'id') message.id = s;
          const contacts = [{ profile: { name: where === 'contact' ? s : 'P' }, wa_id: from }];
          const payload = envelope({ messages: [message], contacts });
          await expectSignedAnswer(JSON.stringify(where === 'key' ? { ...payload, [s]: 1 } : payload), chunked);
        },
      ),
      fuzzParams(RUNS, 0.15),
    );
  });

  it('deep nesting anywhere in a signed envelope: 200, never a 5xx', async () => {
    const pattern = fc.array(fc.constantFrom<'[' | '{'>('[', '{'), { minLength: 1, maxLength: 6 });
    await fc.assert(
      fc.asyncProperty(
        nestingDepth,
        pattern,
        fc.constantFrom('text', 'message', 'entry', 'value', 'extra'),
        async (depth, shape, where) => {
          const wrappers = Array.from({ length: depth }, (_, i) => shape[i % shape.length]);
          const deep = nestedText('"leaf"', wrappers);
          const payload = JSON.stringify(textPayload({ from: chats.fresh(), text: 'DEEP' }));
          const raw =
            where === 'text'
              ? payload.replace('"DEEP"', deep)
              : where === 'message'
                ? payload.replace(/"messages":\[/, `"messages":[${deep},`)
                : where === 'entry'
                  ? payload.replace(/"entry":\[/, `"entry":[${deep},`)
                  : where === 'value'
                    ? payload.replace(/"value":\{/, `"value":{"deep":${deep},`)
                    : `${payload.slice(0, -1)},"extra":${deep}}`;
          await expectSignedAnswer(raw);
        },
      ),
      fuzzParams(RUNS, 0.5),
    );
  });

  it('unsigned, badly signed and wrongly typed requests: 415, then 401, before anything is stored', async () => {
    const contentType = fc.option(
      fc.oneof(
        fc.constantFrom(
          'application/json',
          'application/json; charset=utf-8',
          'Application/JSON',
          'application/vnd.api+json',
          'application/jsonx',
          'application/json-patch',
          'text/plain',
          'text/json',
          'application/x-www-form-urlencoded',
          'multipart/form-data; boundary=x',
          '',
        ),
        fc.string({ unit: 'grapheme-ascii', maxLength: 40 }),
      ),
      { nil: undefined },
    );
    type Signing = (raw: string) => string | string[] | undefined;
    const signing: Arbitrary<Signing> = fc.oneof(
      fc.constant(named('the right signature', (raw: string) => signBody(raw))),
      fc.constant(
        named('the right one in upper case', (raw: string) => `sha256=${signBody(raw).slice(7).toUpperCase()}`),
      ),
      fc.constant(named('none', () => undefined)),
      fc.constant(named('signed with another secret', (raw: string) => signBody(raw, 'another_secret'))),
      fc.constant(named('over other bytes', (raw: string) => signBody(`${raw} `))),
      fc.constant(named('the right one twice', (raw: string) => [signBody(raw), signBody(raw)])),
      fc.constant(named('without sha256=', (raw: string) => signBody(raw).slice(7))),
      fc.constant(named('sha1= instead', (raw: string) => `sha1=${signBody(raw).slice(7)}`)),
      fc.constant(named('the right one after a space', (raw: string) => ` ${signBody(raw)}`)),
      fc.constant(named('one digit short', (raw: string) => signBody(raw).slice(0, -1))),
      fc.stringMatching(/^[0-9a-f]{64}$/).map((h) => named(`sha256=${h}`, () => `sha256=${h}`)),
      fc.string({ unit: 'grapheme-ascii', maxLength: 80 }).map((v) => named(JSON.stringify(v), () => v)),
    );
    await fc.assert(
      fc.asyncProperty(contentType, signing, fc.boolean(), async (type, sign, useGarbage) => {
        // Never answered: nothing of it may be stored, so its sender is no chat to probe later.
        const message = textMessage({ from: freshSender() });
        const raw = useGarbage
          ? '{"object":"whatsapp_business_account","entry":'
          : JSON.stringify(envelope({ messages: [message] }));
        const signature = sign(raw);
        const res = await postWebhook(raw, { 'content-type': type, 'x-hub-signature-256': signature });
        const signatureOk =
          typeof signature === 'string' &&
          // HTTP drops the whitespace around a header value before anyone sees it.
          /^sha256=[0-9a-fA-F]{64}$/.test(signature.trim()) &&
          signature.trim().slice(7).toLowerCase() === signBody(raw).slice(7);
        const expected = !JSON_TYPE.test(type ?? '') ? 415 : !signatureOk ? 401 : useGarbage ? 400 : 200;
        expect(describeAnswer(res)).toMatch(new RegExp(`^${expected} `));
        if (expected !== 200) {
          expect(isReceiverError(res.text)).toBe(true);
          expect(await bot.redis.exists(bot.receiver.keys.dedup(`m:${String(message.id)}`))).toBe(0);
        }
      }),
      fuzzParams(RUNS, 2),
    );
  });

  it('GET /webhook with arbitrary query strings: the challenge only for the right mode and token', async () => {
    const key = fc.oneof(
      fc.constantFrom('hub.mode', 'hub.verify_token', 'hub.challenge'),
      fc.string({ maxLength: 12 }),
    );
    const value = fc.oneof(
      fc.constantFrom('subscribe', TEST_VERIFY_TOKEN, ''),
      fc.string({ unit: 'grapheme', maxLength: 30 }),
    );
    const pairs = fc.array(fc.tuple(key, value), { maxLength: 6 });
    // The right handshake with any challenge, and now and then a parameter more.
    const handshake = fc.tuple(
      fc.string({ unit: 'grapheme', maxLength: 60 }),
      fc.array(fc.tuple(key, value), { maxLength: 2 }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          pairs,
          handshake.map(
            ([challenge, extra]) =>
              [
                ['hub.mode', 'subscribe'],
                ['hub.verify_token', TEST_VERIFY_TOKEN],
                ['hub.challenge', challenge],
                ...extra,
              ] as [string, string][],
          ),
        ),
        async (query) => {
          const qs = query.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
          const res = await send(bot.receiver.url, { method: 'GET', path: `/webhook?${qs}` });
          const only = (k: string): string | undefined => {
            const found = query.filter(([name]) => name === k);
            return found.length === 1 ? found[0][1] : undefined;
          };
          const ok =
            only('hub.mode') === 'subscribe' &&
            only('hub.verify_token') === TEST_VERIFY_TOKEN &&
            only('hub.challenge') !== undefined;
          expect(res.headers['content-type']).toMatch(/^text\/plain\b/);
          expect({ status: res.status, text: res.text }).toEqual(
            ok ? { status: 200, text: only('hub.challenge') } : { status: 403, text: 'forbidden' },
          );
        },
      ),
      fuzzParams(RUNS),
    );
    // Bytes that are not UTF-8, and percent signs that decode to nothing.
    const rawQuery = fc.oneof(
      fc.uint8Array({ maxLength: 40 }).map((b) => [...b].map((x) => `%${x.toString(16).padStart(2, '0')}`).join('')),
      fc.string({ unit: 'grapheme-ascii', maxLength: 60 }).map((s) => s.replace(/[ #]/g, (c) => encodeURIComponent(c))),
    );
    await fc.assert(
      fc.asyncProperty(rawQuery, fc.boolean(), async (junk, withHandshake) => {
        const prefix = withHandshake ? `hub.mode=subscribe&hub.verify_token=${TEST_VERIFY_TOKEN}&hub.challenge=` : '';
        const res = await send(bot.receiver.url, { method: 'GET', path: `/webhook?${prefix}${junk}` });
        expect([200, 403]).toContain(res.status);
      }),
      fuzzParams(RUNS),
    );
  });

  // Found by the fuzz: a `from` of another type than string counted as absent, so the message was
  // keyed by its from_user_id, while the worker answers `from`: every turn of it failed.
  it.each([
    ['a number', 971500000009],
    ['an object', { wa_id: '971500000009' }],
    ['true', true],
  ])('a message whose `from` is %s beside a good from_user_id is kept raw like any bad sender', async (_, from) => {
    const id = freshWamid();
    const message = { ...textMessage({ text: 'which sender?' }), id, from, from_user_id: `AE.${freshSender()}` };
    expect((await postWebhook(JSON.stringify(envelope({ messages: [message] })))).status).toBe(200);
    expect(await bot.redis.exists(bot.receiver.keys.dedup(`m:${id}`))).toBe(0);
    const kept = (await bot.redis.lrange(bot.receiver.keys.unhandled, 0, 9)).map(
      (r) => JSON.parse(r) as { kind: string; raw: string },
    );
    expect(kept.find((k) => k.raw.includes(id))?.kind).toBe('message_sender');
  });

  it('afterwards: nothing poisoned, no chat stuck, no dead letter', async () => {
    await expectNothingPoisoned(chats.used, failuresBefore);
  });
});

// =============================================================================================

describe('POST /chatwoot/webhook under fuzzing', () => {
  const chats = [freshSender(), freshSender(), freshSender()];
  /** Each chat's conversation in the fake Chatwoot. */
  const conversations = new Map<string, number>();
  let failuresBefore = 0;

  beforeAll(async () => {
    failuresBefore = await turnFailures();
    // A patient wrote (the window is open) and each chat has its conversation, as after a hand-over.
    for (const waId of chats) {
      const contact = bot.chatwoot.seedContact({ name: 'Fuzz', phoneNumber: `+${waId}`, identifier: `wa:${waId}` });
      conversations.set(waId, bot.chatwoot.seedConversation({ contactId: contact.id, sourceId: waId }).id);
    }
    await Promise.all(chats.map((waId) => expectReply(waId)));
    await waitSettled();
  });

  /** 200 (relayed, or ignored with a reason) or 400 `{ error }`; 400 for a body that is not a clean object. */
  async function expectChatwootAnswer(raw: string): Promise<void> {
    const res = await postChatwoot(raw);
    const expected =
      Buffer.byteLength(raw) > CHATWOOT_BODY_LIMIT
        ? /^413 /
        : expectedForJsonBody(raw) === 400
          ? /^400 /
          : /^(?:200|400) /;
    expect(describeAnswer(res)).toMatch(expected);
    const body = jsonOf(res.text);
    if (res.status === 200)
      expect(isPlainObject(body) && (body.ok === true || typeof body.ignored === 'string')).toBe(true);
    else expect(isReceiverError(res.text)).toBe(true);
  }

  it('arbitrary signed bodies: 200 or 400, never a 5xx', async () => {
    const body = fc.oneof(
      fc.json(),
      anyJson.map((v) => JSON.stringify(v)),
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc
        .record(
          { event: orAnything(fc.constantFrom('message_created', 'conversation_status_changed', 'message_updated')) },
          { requiredKeys: [] },
        )
        .chain((head) => fc.dictionary(jsonKey, anyJson).map((rest) => JSON.stringify({ ...rest, ...head }))),
    );
    await fc.assert(fc.asyncProperty(body, expectChatwootAnswer), fuzzParams(RUNS));
  });

  it('deep nesting in a signed body: 400 (or 413 over the 100 KB limit), never a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(nestingDepth, fc.constantFrom<'[' | '{'>('[', '{'), (depth, w) =>
        expectChatwootAnswer(`{"event":"message_created","conversation":${nestedText('1', Array(depth).fill(w))}}`),
      ),
      fuzzParams(RUNS, 0.5),
    );
  });

  it("Chatwoot's real payloads, mutated: 200 or 400, never a 5xx", async () => {
    const payload = fc
      .tuple(fc.constantFrom(...chats), fc.constantFrom('message', 'resolved', 'reopened'), nastyString)
      .map(
        ([waId, kind, content]) =>
          (kind === 'message'
            ? agentMessage({ conversationId: conversations.get(waId)!, content: `agent says ${content}`, waId })
            : statusChanged({
                conversationId: conversations.get(waId)!,
                status: kind === 'resolved' ? 'resolved' : 'open',
                waId,
              })) as Json,
      );
    await fc.assert(
      fc.asyncProperty(payload, fc.array(mutation, { maxLength: 3 }), (body, mutations) =>
        expectChatwootAnswer(JSON.stringify(mutate(body, mutations))),
      ),
      fuzzParams(RUNS),
    );
  });

  it('tokens, signatures and content types: 401 and 415 before the body is looked at', async () => {
    type Query = (token: string) => string;
    const query: Arbitrary<Query> = fc.oneof(
      fc.constant(named('token=<token>', (t: string) => `token=${encode(t)}`)),
      fc.constant(named('no query', () => '')),
      fc.constant(named('token=<token>&token=<token>', (t: string) => `token=${encode(t)}&token=${encode(t)}`)),
      fc.constant(named('token=<token>x', (t: string) => `token=${encode(t)}x`)),
      fc.constant(named('token[]=<token>', (t: string) => `token[]=${encode(t)}`)),
      fc
        .string({ unit: 'grapheme', maxLength: 40 })
        .map((v) => named(`token=${JSON.stringify(v)}`, () => `token=${encode(v)}`)),
    );
    /** Signature headers for a body, and whether they are right. */
    interface Signing {
      ok: boolean;
      headers(raw: string, ts: string): Record<string, string>;
    }
    const signing: Arbitrary<Signing> = fc.oneof(
      fc.constant(
        named<Signing>('signed with the timestamp', {
          ok: true,
          headers: (raw, ts) => ({ 'x-chatwoot-timestamp': ts, 'x-chatwoot-signature': chatwootSignature(raw, ts) }),
        }),
      ),
      fc.constant(
        named<Signing>('signed over the bare body', {
          ok: true,
          headers: (raw) => ({
            'x-chatwoot-signature': `sha256=${createHmac('sha256', CW_SECRET).update(raw).digest('hex')}`,
          }),
        }),
      ),
      fc.constant(named<Signing>('unsigned', { ok: false, headers: () => ({}) })),
      fc.constant(
        named<Signing>('signed with another secret', {
          ok: false,
          headers: (raw, ts) => ({
            'x-chatwoot-timestamp': ts,
            'x-chatwoot-signature': chatwootSignature(raw, ts, 'wrong'),
          }),
        }),
      ),
      fc.constant(
        named<Signing>('another timestamp than the signed one', {
          ok: false,
          headers: (raw, ts) => ({
            'x-chatwoot-timestamp': `${ts}1`,
            'x-chatwoot-signature': chatwootSignature(raw, ts),
          }),
        }),
      ),
      fc.string({ unit: 'grapheme-ascii', maxLength: 80 }).map((v) =>
        named<Signing>(`signature ${JSON.stringify(v)}`, {
          ok: false,
          headers: (_, ts) => ({ 'x-chatwoot-timestamp': ts, 'x-chatwoot-signature': v }),
        }),
      ),
    );
    const contentType = fc.oneof(
      fc.constantFrom(
        'application/json',
        'application/json; charset=utf-8',
        'text/plain',
        'application/x-www-form-urlencoded',
      ),
      fc.string({ unit: 'grapheme-ascii', maxLength: 30 }),
    );
    await fc.assert(
      fc.asyncProperty(
        query,
        fc.oneof(fc.constant(CHATWOOT_WEBHOOK_TOKEN), fc.string({ maxLength: 30 })),
        signing,
        contentType,
        async (q, token, sign, type) => {
          const waId = chats[0];
          const raw = JSON.stringify(statusChanged({ conversationId: 999_999, status: 'pending', waId }));
          const ts = nowSeconds();
          const path = `/chatwoot/webhook?${q(token)}`;
          const res = await send(bot.receiver.url, {
            path,
            headers: { 'content-type': type, ...sign.headers(raw, ts) },
            body: raw,
          });
          const tokenOk =
            new URLSearchParams(q(token)).getAll('token').length === 1 &&
            new URLSearchParams(q(token)).get('token') === CHATWOOT_WEBHOOK_TOKEN;
          const typeOk = JSON_TYPE.test(type);
          // Without the token nothing gets further than 401; a content type the framework has no
          // parser for is refused (415) before the route's own checks run.
          const expected = !tokenOk ? /^(?:401|415) / : !typeOk ? /^415 / : sign.ok ? /^200 / : /^401 /;
          expect(describeAnswer(res)).toMatch(expected);
          if (res.status !== 200) expect(isReceiverError(res.text)).toBe(true);
        },
      ),
      fuzzParams(RUNS),
    );
  });

  it('afterwards: nothing poisoned, no chat stuck, no dead letter (chats resolved back to the bot)', async () => {
    await waitSettled();
    for (const waId of chats) {
      const resolved = statusChanged({ conversationId: conversations.get(waId)!, status: 'resolved', waId });
      expect((await postChatwoot(JSON.stringify({ ...resolved, updated_at: Date.now() }))).status).toBe(200);
    }
    await expectNothingPoisoned(chats, failuresBefore);
  });
});

// =============================================================================================

describe('/v1 under fuzzing', () => {
  const chats = [freshSender(), freshSender(), freshSender()];
  let failuresBefore = 0;
  beforeAll(async () => {
    failuresBefore = await turnFailures();
    // Open the window of one chat, so that free-form sends go out too.
    await expectReply(chats[0]);
    await waitSettled();
  });

  /** A /v1 answer: never a 5xx but 503, and every error in the one documented shape. */
  function expectApiAnswer(res: RawResponse, allowed: readonly number[]): void {
    expect(describeAnswer(res)).toMatch(new RegExp(`^(?:${[...allowed, 503].join('|')}) `));
    if (res.status >= 400) expect(apiErrorShapeProblem(res.text)).toBe('');
  }

  const template = fc.record(
    {
      name: orAnything(fc.constantFrom('appointment_reminder', 'Bad Name', 'x'.repeat(513)), 3),
      language: orAnything(fc.constantFrom('en', 'ar', 'en_US', 'english'), 3),
      category: orAnything(fc.constantFrom('utility', 'marketing', 'authentication', 'promo'), 3),
      parameters: orAnything(fc.array(orAnything(nastyString, 4), { maxLength: 22 }), 3),
      headerParameters: orAnything(fc.array(nastyString, { maxLength: 2 }), 3),
      buttons: orAnything(
        fc.array(
          fc.record({
            subType: orAnything(fc.constantFrom('quick_reply', 'url', 'call')),
            index: orAnything(fc.integer({ min: -1, max: 11 })),
            parameter: orAnything(nastyString),
          }),
          { maxLength: 11 },
        ),
        3,
      ),
    },
    { requiredKeys: ['name', 'language', 'category'] },
  );
  const to = fc.oneof(
    {
      weight: 3,
      arbitrary: fc.tuple(fc.constantFrom(...chats), fc.boolean()).map(([c, plus]) => (plus ? `+${c}` : c)),
    },
    fc.stringMatching(/^\+?\d{1,17}$/),
    nastyString,
  );
  const messageBody = fc.record(
    {
      to: orAnything(to, 4),
      text: orAnything(
        fc.oneof(
          nastyString,
          fc.integer({ min: 4090, max: 4100 }).map((n) => 'x'.repeat(n)),
        ),
        4,
      ),
      template: orAnything(template, 4),
      idempotencyKey: orAnything(fc.string({ maxLength: 300 }), 4),
    },
    { requiredKeys: [] },
  );

  it('POST /v1/messages with arbitrary bodies and headers: 202, 400, 401, 409, 413 or 415 in the one error shape', async () => {
    const raw = fc.oneof(
      {
        weight: 4,
        arbitrary: fc
          .tuple(messageBody, fc.dictionary(jsonKey, anyJson, { maxKeys: 1 }), fc.boolean())
          .map(([b, extra, more]) => JSON.stringify(more ? { ...extra, ...b } : b)),
      },
      anyJson.map((v) => JSON.stringify(v)),
      fc.string({ unit: 'binary', maxLength: 100 }),
      fc.integer({ min: 16_000, max: 17_000 }).map((n) => JSON.stringify({ to: chats[0], text: 'y'.repeat(n) })),
    );
    const authorization = fc.oneof(
      { weight: 4, arbitrary: fc.constant(`Bearer ${KEY}`) },
      fc.constantFrom(
        undefined,
        `bearer ${KEY}`,
        `Bearer  ${KEY}`,
        `Bearer ${KEY} `,
        `Bearer ${KEY}x`,
        `Basic ${KEY}`,
        'Bearer',
        '',
      ),
      fc.string({ unit: 'grapheme-ascii', maxLength: 40 }),
    );
    const contentType = fc.oneof(
      { weight: 4, arbitrary: fc.constant('application/json') },
      fc.constantFrom(undefined, 'text/plain', 'application/json; charset=latin1', 'application/problem+json'),
      fc.string({ unit: 'grapheme-ascii', maxLength: 30 }),
    );
    const idempotencyKey = fc.option(fc.string({ unit: 'grapheme-ascii', maxLength: 300 }), {
      nil: undefined,
      freq: 3,
    });
    await fc.assert(
      fc.asyncProperty(raw, authorization, contentType, idempotencyKey, async (body, auth, type, key) => {
        const res = await api('POST', '/v1/messages', body, {
          authorization: auth,
          'content-type': type,
          'idempotency-key': key,
        });
        expectApiAnswer(res, [202, 400, 401, 409, 413, 415]);
        // A wrong key never gets further than the content checks that come before it.
        const authOk = auth !== undefined && /^Bearer \S+$/i.test(auth.trim()) && auth.trim().slice(7) === KEY;
        if (!authOk) expect([400, 401, 413, 415]).toContain(res.status);
      }),
      fuzzParams(RUNS, 2),
    );
  });

  it('POST /v1/messages nested deep at any field: 400 or 413, never a 5xx', async () => {
    const field = fc.constantFrom('to', 'text', 'template', 'idempotencyKey', 'extra');
    await fc.assert(
      fc.asyncProperty(nestingDepth, fc.constantFrom<'[' | '{'>('[', '{'), field, async (depth, w, at) => {
        const raw = JSON.stringify({ to: chats[1], text: 'x', [at]: 'DEEP' }).replace(
          '"DEEP"',
          nestedText('1', Array<'[' | '{'>(depth).fill(w)),
        );
        const res = await api('POST', '/v1/messages', raw);
        expectApiAnswer(res, raw.length > API_BODY_LIMIT ? [413] : [202, 400, 409]);
      }),
      fuzzParams(RUNS, 0.5),
    );
  });

  it('GET, DELETE and resume of /v1/conversations/:waId with arbitrary ids: 200, 400 or 404', async () => {
    const otherChats = () => [...Array(senderSeq).keys()].map((i) => `97150300${String(i).padStart(4, '0')}`);
    const id = fc.oneof(
      fc.nat().map((i) => otherChats()[i % senderSeq]),
      fc.string({ unit: 'binary', maxLength: 40 }).map(encode),
      fc.string({ unit: 'binary-ascii', maxLength: 40 }).map(encode),
      fc.constantFrom(
        '..%2F',
        '..%2F..%2Fhealth',
        '%2e%2e',
        '.',
        '..',
        '%00',
        '%c0%ae',
        '%ff',
        '%',
        '%zz',
        '+',
        '%2B971500000001',
        '971500000001%2F..',
        encodeURIComponent('٩٧١٥٠٠٠٠٠٠٠١'),
        '971500000001%0A',
      ),
      fc.stringMatching(/^\+?\d{1,20}$/),
      fc.integer({ min: 200, max: 6000 }).map((n) => '9'.repeat(n)),
    );
    const route = fc.constantFrom('GET', 'DELETE', 'RESUME');
    await fc.assert(
      fc.asyncProperty(id, route, async (waId, which) => {
        // Erasing the chats of the other blocks would also erase what their checks look at.
        if (which === 'DELETE' && otherChats().includes(waId) && !chats.includes(waId)) return;
        const res =
          which === 'RESUME'
            ? await api('POST', `/v1/conversations/${waId}/resume`)
            : await api(which, `/v1/conversations/${waId}`);
        // An empty id matches no route at all: Nest's own 404 answers it (noted, not a /v1 route's answer).
        if (waId === '') expect(res.status).toBe(404);
        else expectApiAnswer(res, [200, 400, 404]);
      }),
      fuzzParams(RUNS, 2),
    );
  });

  it('GET /v1/costs with arbitrary query strings: 200 or 400', async () => {
    const day = fc.oneof(
      fc
        .date({ min: new Date('0000-01-01T00:00:00Z'), max: new Date('9999-12-31T00:00:00Z'), noInvalidDate: true })
        .map((d) => d.toISOString().slice(0, 10)),
      fc.stringMatching(/^\d{4}-\d{2}-\d{2}$/),
      nastyString,
    );
    const pairs = fc.array(
      fc.tuple(
        fc.oneof(fc.constantFrom('from', 'to', 'currency', 'from[]', 'to[]', '__proto__'), fc.string({ maxLength: 8 })),
        day,
      ),
      { maxLength: 5 },
    );
    const query = fc.oneof(
      pairs.map((ps) => ps.map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&')),
      fc
        .uint8Array({ maxLength: 30 })
        .map((b) => `from=${[...b].map((x) => `%${x.toString(16).padStart(2, '0')}`).join('')}&to=2026-01-01`),
      fc.string({ unit: 'grapheme-ascii', maxLength: 60 }).map((s) => s.replace(/[ #]/g, (c) => encodeURIComponent(c))),
    );
    await fc.assert(
      fc.asyncProperty(query, async (q) => expectApiAnswer(await api('GET', `/v1/costs?${q}`), [200, 400])),
      fuzzParams(RUNS, 2),
    );
  });

  // Found by the fuzz: class-transformer turns an array where the DTO nests an object into an array
  // of DTOs, and @ValidateNested passes an empty one. POST answered 500 for `template: []`.
  it.each([
    ['template: []', { template: [] }],
    ['template: [a valid template]', { template: [{ name: 'x', language: 'en', category: 'utility' }] }],
    ['buttons: [[]]', { template: { name: 'x', language: 'en', category: 'utility', buttons: [[]] } }],
  ])('POST /v1/messages with %s: 400 naming the field, not 500', async (_, fields) => {
    const res = await api('POST', '/v1/messages', JSON.stringify({ to: freshSender(), ...fields }));
    expect(describeAnswer(res)).toMatch(/^400 /);
    expect(apiErrorShapeProblem(res.text)).toBe('');
    expect((jsonOf(res.text) as { fields: { field: string }[] }).fields.map((f) => f.field)).toEqual([
      expect.stringMatching(/^template\b/),
    ]);
  });

  // Found by the fuzz: class-transformer takes a nested object's `constructor` key for its class and
  // calls it, and recurses as deep as the body nests: both were a 500.
  it.each([
    ['to: { constructor: 1 }', '{"to":{"constructor":1},"text":"x"}', ['to.constructor']],
    [
      'an unknown field holding { constructor: true }',
      '{"to":"971500000001","text":"x","extra":{"constructor":true}}',
      ['extra.constructor'],
    ],
    [
      'template.constructor',
      '{"to":"971500000001","template":{"constructor":1,"name":"a","language":"en","category":"utility"}}',
      ['template.constructor'],
    ],
    [
      'a button index { "": { constructor: true } }',
      '{"to":"971500000001","template":{"name":"a","language":"en","category":"utility","buttons":[{"subType":"url","index":{"":{"constructor":true}},"parameter":"x"}]}}',
      ['template.buttons.0.index..constructor'],
    ],
    [
      'a template nested 5000 arrays deep',
      `{"to":"971500000001","template":${'['.repeat(5000)}1${']'.repeat(5000)}}`,
      ['(body)'],
    ],
  ])('POST /v1/messages with %s: 400 naming the field, not 500', async (_, raw, named) => {
    const res = await api('POST', '/v1/messages', raw);
    expect(describeAnswer(res)).toMatch(/^400 /);
    expect(apiErrorShapeProblem(res.text)).toBe('');
    const fields = (jsonOf(res.text) as { fields: { field: string }[] }).fields.map((f) => f.field);
    expect([...new Set(fields)].sort()).toEqual(named);
  });

  // Found by the fuzz: a signed message whose timestamp no Date can hold (Meta sends seconds as a
  // string; these are its digits, a few too many) made the chat's window end after year 275760,
  // and GET answered 500 for that chat from then on.
  it.each([
    ['99999999999999', '99999999999999'],
    ['1e20', '1e20'],
    ["'9' × 400", '9'.repeat(400)],
  ])('GET /v1/conversations/:waId of a chat whose message carried the timestamp %s: 200, not 500', async (_, ts) => {
    const from = freshSender();
    const message = textMessage({ from, text: 'from the far future' });
    message.timestamp = ts;
    expect((await bot.post(envelope({ messages: [message] }))).status).toBe(200);
    await waitUntil('the reply', () => bot.sentTexts(from).length > 0, 20_000);
    await waitSettled();
    const shown = await api('GET', `/v1/conversations/${from}`);
    expect(describeAnswer(shown)).toMatch(/^200 /);
    expect(jsonOf(shown.text)).toMatchObject({ waId: from, window: { open: true } });
  });

  it('afterwards: nothing poisoned, no chat stuck, no dead letter', async () => {
    await expectNothingPoisoned(chats, failuresBefore);
  });
});

// =============================================================================================

/*
 * What the fuzz found in the worker, behind the HTTP surfaces: signed items the receiver rightly
 * accepts (their ids are fine) but whose other fields a turn trusted. Each pins its fix.
 */
describe('fields of signed items the worker once trusted', () => {
  let kb: BotCluster;
  beforeAll(async () => {
    kb = await BotCluster.start({ workers: 0 });
  }, 60_000);
  afterAll(() => kb?.close());

  /** The wamid of the bot's reply to a fresh patient. */
  async function ownWamidOf(from: string): Promise<string> {
    await kb.post(textPayload({ from, text: 'hello' }));
    await waitUntil('the reply', () => kb.graph.sends().some((r) => r.body?.to === from && r.wamid), 10_000);
    return kb.graph.sends().find((r) => r.body?.to === from && r.wamid)!.wamid!;
  }

  /**
   * Posts a status for our own message and waits for its lane to finish (or its turn to fail):
   * the status must be applied, by a turn that never failed.
   */
  async function expectApplied(status: Record<string, unknown>, wamid: string, recipient: string): Promise<void> {
    expect((await kb.post(envelope({ statuses: [status] }))).status).toBe(200);
    const record = `${kb.receiver.config.redisKeyRoot}:out:${wamid}`;
    const lane = statusLane(PN, recipient);
    const failed = async (): Promise<number> => Number(await kb.redis.hget(kb.receiver.keys.lane(lane), 'failures'));
    const finished = async (): Promise<boolean> =>
      (await kb.redis.zscore(kb.receiver.keys.pending, lane)) === null &&
      (await kb.redis.exists(kb.receiver.keys.turnItems(lane), kb.receiver.keys.inbox(lane))) === 0;
    await waitUntil('the status lane to finish or fail', async () => (await failed()) > 0 || (await finished()), 3_000);
    expect({ failures: await failed(), status: await kb.redis.hget(record, 'status') }).toEqual({
      failures: 0,
      status: status.status,
    });
  }

  it('pricing whose category is not a category name (a number): applied, never a failed turn', async () => {
    const from = freshSender();
    const wamid = await ownWamidOf(from);
    const pricing = { billable: true, pricing_model: 'PMP', type: 'regular', category: 1 };
    await expectApplied(
      { id: wamid, status: 'delivered', timestamp: nowSeconds(), recipient_id: from, pricing },
      wamid,
      from,
    );
  });

  it('pricing with a timestamp no Date can hold (99999999999999): applied, never a failed turn', async () => {
    const from = freshSender();
    const wamid = await ownWamidOf(from);
    const pricing = { billable: true, pricing_model: 'PMP', type: 'regular', category: 'service' };
    await expectApplied(
      { id: wamid, status: 'delivered', timestamp: '99999999999999', recipient_id: from, pricing },
      wamid,
      from,
    );
  });

  it.each([
    ['timestamp', { timestamp: { toString: 1 } }],
    ['location latitude', { type: 'location', location: { latitude: { valueOf: 'x', toString: [] }, longitude: 1 } }],
  ])(
    'a message whose %s is an object with a toString or valueOf key: answered, never a failed turn',
    async (_, extra) => {
      const from = freshSender();
      const message = { ...textMessage({ from, text: 'trap' }), ...extra };
      expect((await kb.post(envelope({ messages: [message] }))).status).toBe(200);
      const lane = kb.receiver.keys.lane(`c.${PN}.${from}`);
      await waitUntil(
        'the reply or a failed turn',
        async () => kb.sentTexts(from).length > 0 || Number(await kb.redis.hget(lane, 'failures')) > 0,
        5_000,
      );
      expect({ failures: Number(await kb.redis.hget(lane, 'failures')), sent: kb.sentTexts(from).length }).toEqual({
        failures: 0,
        sent: 1,
      });
    },
  );

  it('a timestamp that is an array: applied, not a turn that loses its lease forever', async () => {
    const from = freshSender();
    const wamid = await ownWamidOf(from);
    await expectApplied({ id: wamid, status: 'read', timestamp: [], recipient_id: from }, wamid, from);
  });
});
