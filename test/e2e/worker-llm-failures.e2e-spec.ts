import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type FakeLlmMode, type RecordedLlmRequest } from '../fakes/fake-llm.server';
import { type BotCluster } from '../utils/bot-cluster';
import { arrivalGaps, botPerSuite } from '../utils/bot-suite';
import { deadLetters } from '../utils/dead-letters';
import { envelope, textMessage, textPayload } from '../utils/meta-payloads';
import { waitUntil } from '../utils/spawn-app';
import { TEST_PHONE_NUMBER_ID } from '../utils/test-env';

/**
 * The LLM failure policy (docs/architecture.md §6), end to end: one receiver, three worker
 * processes, a fake vLLM that fails in every way a real one does, and a fake Graph API that records
 * what the patient got. Exact counts are asserted only once the whole bot is quiet.
 */

const BACKOFF_MS = 500;
const LLM_TIMEOUT_MS = 1500;
const MAX_ATTEMPTS = 3;
const MAX_CONCURRENCY = 3;
const CLINIC_NAME = 'Al Noor Clinic';
const CLINIC_PHONE = '+971 4 555 0100';

type Language = 'en' | 'ar';
type Texts = Record<Language, string>;

const messages = JSON.parse(readFileSync(resolve(__dirname, '../../config/messages.json'), 'utf8')) as {
  holding: Texts;
  apology: { withPhone: Texts };
};
const fill = (text: string, phone: string): string =>
  text.split('{{clinicName}}').join(CLINIC_NAME).split('{{clinicPhone}}').join(phone);
const HOLDING: Texts = { en: fill(messages.holding.en, ''), ar: fill(messages.holding.ar, '') };
// Arabic wraps the number in a left-to-right isolate so it is not laid out backwards.
const APOLOGY: Texts = {
  en: fill(messages.apology.withPhone.en, CLINIC_PHONE),
  ar: fill(messages.apology.withPhone.ar, `\u2066${CLINIC_PHONE}\u2069`),
};
const CANNED = new Set([...Object.values(HOLDING), ...Object.values(APOLOGY)]);

interface Patient {
  from: string;
  text: string;
  language: Language;
}

let senderSeq = 0;
const nextSender = (): string => `97150120${String(senderSeq++).padStart(4, '0')}`;

const enPatient = (): Patient => {
  const from = nextSender();
  return { from, text: `Can I see the dentist tomorrow? (${from})`, language: 'en' };
};
const arPatient = (): Patient => {
  const from = nextSender();
  return { from, text: `مرحبا، هل يمكنني زيارة طبيب الأسنان غدا؟ (${from})`, language: 'ar' };
};

/** Both patients' messages in one webhook, so their turns start together. */
const batch = (...patients: Patient[]): Record<string, unknown> =>
  envelope({
    contacts: patients.map((p) => ({ profile: { name: 'Patient' }, wa_id: p.from })),
    messages: patients.map((p) => textMessage({ from: p.from, text: p.text })),
  });

const lastUser = (r: RecordedLlmRequest): string =>
  [...r.body.messages].reverse().find((m) => m.role === 'user')?.content ?? '';

const HOLDING_TOTAL = 'tawasul_holding_messages_total';
const failures = (kind: string): string => `tawasul_llm_failures_total{kind="${kind}"}`;
const EXHAUSTED = 'tawasul_dead_letters_total{reason="llm_exhausted"}';

describe.each([
  { concurrency: 50, full: true },
  { concurrency: 1, full: false },
])('LLM failures, three workers with WORKER_CONCURRENCY=$concurrency', ({ concurrency, full }) => {
  let bot: BotCluster;
  let gaps: (requests: readonly RecordedLlmRequest[]) => number[];

  const requestsOf = (p: Patient): RecordedLlmRequest[] => bot.llm.requests.filter((r) => lastUser(r).includes(p.from));
  const replied = (p: Patient): boolean => bot.sentTexts(p.from).some((t) => t.startsWith('Echo: '));

  botPerSuite(
    {
      workers: 3,
      env: {
        WORKER_CONCURRENCY: String(concurrency),
        LLM_BACKOFF_MS: String(BACKOFF_MS),
        LLM_TIMEOUT_MS: String(LLM_TIMEOUT_MS),
        LLM_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
        LLM_MAX_CONCURRENCY: String(MAX_CONCURRENCY),
        CLINIC_NAME,
        CLINIC_PHONE,
      },
    },
    (started) => {
      bot = started;
      gaps = arrivalGaps(bot.llm.requests);
    },
  );

  afterEach(() => {
    // Raw errors never reach a patient: every text sent is a canned one or the LLM's own reply.
    const texts = bot.graph.sends().map((s) => String(s.body?.text?.body));
    expect(texts.filter((t) => !CANNED.has(t) && !t.startsWith('Echo: '))).toEqual([]);
    expect(
      texts.filter((t) => /error|exception|HTTP|ECONN|timed? ?out|context length|unauthori|not exist/i.test(t)),
    ).toEqual([]);
    // In-flight inference never exceeds LLM_MAX_CONCURRENCY, whatever failed.
    expect(bot.llm.maxInFlight).toBeLessThanOrEqual(MAX_CONCURRENCY);
  });

  /**
   * An English and an Arabic patient write while the LLM fails in `mode`; after two failed calls
   * each it recovers. Each gets exactly one holding message in their language, then one reply.
   */
  async function outageThenRecovery(mode: FakeLlmMode, kind: string): Promise<void> {
    const patients = [enPatient(), arPatient()];
    const before = await bot.metrics([HOLDING_TOTAL, failures(kind), EXHAUSTED]);
    bot.llm.mode = mode;
    try {
      expect((await bot.post(batch(...patients))).status).toBe(200);
      await waitUntil('two failed LLM calls per chat', () => patients.every((p) => requestsOf(p).length >= 2), 30_000);
    } finally {
      bot.llm.mode = 'ok';
    }
    await waitUntil('both replies', () => patients.every(replied), 30_000);
    await bot.waitQuiet();

    for (const p of patients) {
      expect(bot.sentTexts(p.from)).toEqual([HOLDING[p.language], `Echo: ${p.text}`]);
      const requests = requestsOf(p);
      expect(requests.map((r) => r.mode)).toEqual([mode, mode, 'ok']);
      for (const r of requests) expect(lastUser(r)).toBe(p.text);
      // Retried with growing delays: LLM_BACKOFF_MS, then twice that (±20 % jitter), plus the
      // time a hanging call takes to time out.
      const [first, second] = gaps(requests);
      const callMs = mode === 'hang' ? LLM_TIMEOUT_MS : 0;
      expect(first).toBeGreaterThanOrEqual(callMs + BACKOFF_MS * 0.8 - 50);
      expect(second).toBeGreaterThan(first);
      expect(second).toBeGreaterThanOrEqual(callMs + 2 * BACKOFF_MS * 0.8 - 50);
    }
    expect(await bot.metricDeltas(before)).toEqual({ [HOLDING_TOTAL]: 2, [failures(kind)]: 4, [EXHAUSTED]: 0 });
  }

  const modes: { mode: FakeLlmMode; kind: string; inBoth: boolean }[] = [
    { mode: 'error500', kind: 'error', inBoth: true },
    { mode: 'unavailable503', kind: 'error', inBoth: false },
    { mode: 'hang', kind: 'timeout', inBoth: true },
    { mode: 'empty', kind: 'empty', inBoth: false },
    { mode: 'truncated', kind: 'truncated', inBoth: false },
  ];
  for (const { mode, kind, inBoth } of modes) {
    if (!full && !inBoth) continue;
    it(`LLM ${mode}: one holding message per patient (en, ar), retries with growing delays, one reply`, async () => {
      await outageThenRecovery(mode, kind);
    }, 60_000);
  }

  it('LLM refusing connections (stopped, then restarted): one holding message each, then one reply', async () => {
    const patients = [enPatient(), arPatient()];
    const before = await bot.metrics([HOLDING_TOTAL, failures('error'), EXHAUSTED]);
    await bot.llm.stop();
    try {
      expect((await bot.post(batch(...patients))).status).toBe(200);
      await waitUntil('both holding messages', () => patients.every((p) => bot.sentTexts(p.from).length >= 1), 30_000);
    } finally {
      await bot.llm.restart();
    }
    await waitUntil('both replies', () => patients.every(replied), 30_000);
    await bot.waitQuiet();

    for (const p of patients) {
      expect(bot.sentTexts(p.from)).toEqual([HOLDING[p.language], `Echo: ${p.text}`]);
      // Refused calls never reach the fake: only the one that succeeded is recorded.
      expect(requestsOf(p).map((r) => r.mode)).toEqual(['ok']);
    }
    const delta = await bot.metricDeltas(before);
    expect(delta[HOLDING_TOTAL]).toBe(2);
    expect(delta[failures('error')]).toBeGreaterThanOrEqual(2);
    expect(delta[failures('error')]).toBeLessThanOrEqual(2 * (MAX_ATTEMPTS - 1));
    expect(delta[EXHAUSTED]).toBe(0);
  }, 60_000);

  it('a patient writing again during the outage gets one holding message and one reply to both messages', async () => {
    const p = enPatient();
    const again = `And can my son come too? (${p.from})`;
    bot.llm.enqueue('error500', 'error500');
    const before = await bot.metrics([HOLDING_TOTAL, EXHAUSTED]);
    expect((await bot.post(textPayload({ from: p.from, text: p.text }))).status).toBe(200);
    await waitUntil('the holding message', () => bot.sentTexts(p.from).length >= 1, 30_000);
    expect((await bot.post(textPayload({ from: p.from, text: again }))).status).toBe(200);
    await waitUntil('the reply', () => replied(p), 30_000);
    await bot.waitQuiet();

    expect(bot.sentTexts(p.from)).toEqual([HOLDING.en, `Echo: ${p.text}\n${again}`]);
    const requests = requestsOf(p);
    expect(requests.map((r) => r.mode)).toEqual(['error500', 'error500', 'ok']);
    expect(lastUser(requests[0])).toBe(p.text);
    expect(lastUser(requests[2])).toBe(`${p.text}\n${again}`);
    expect(await bot.metricDeltas(before)).toEqual({ [HOLDING_TOTAL]: 1, [EXHAUSTED]: 0 });
  }, 60_000);

  it('never recovering: one holding message, then the apology with CLINIC_PHONE, dead-lettered', async () => {
    const patients = [enPatient(), arPatient()];
    const DEAD_TURNS = 'tawasul_turns_total{outcome="dead_lettered"}';
    const ESCALATED = 'tawasul_escalations_total{trigger="exhausted"}';
    const before = await bot.metrics([HOLDING_TOTAL, EXHAUSTED, DEAD_TURNS, ESCALATED, failures('error')]);
    bot.llm.mode = 'error500';
    expect((await bot.post(batch(...patients))).status).toBe(200);
    await waitUntil('both apologies', () => patients.every((p) => bot.sentTexts(p.from).length >= 2), 30_000);
    await bot.waitQuiet();

    for (const p of patients) {
      expect(bot.sentTexts(p.from)).toEqual([HOLDING[p.language], APOLOGY[p.language]]);
      expect(bot.sentTexts(p.from)[1]).toContain(CLINIC_PHONE);
      expect(requestsOf(p).map((r) => r.mode)).toEqual(Array(MAX_ATTEMPTS).fill('error500'));
    }
    expect(await bot.metricDeltas(before)).toEqual({
      [HOLDING_TOTAL]: 2,
      [EXHAUSTED]: 2,
      [DEAD_TURNS]: 2,
      [ESCALATED]: 2,
      [failures('error')]: 2 * MAX_ATTEMPTS,
    });
    const dead = (await deadLetters(bot.redis, bot.receiver.config.redisKeyRoot)).map((job) => job.data);
    for (const p of patients) {
      const lane = `c.${TEST_PHONE_NUMBER_ID}.${p.from}`;
      expect(dead.filter((d) => d.lane === lane).map((d) => d.reason)).toEqual(['llm_exhausted']);
    }
  }, 60_000);

  if (!full) return;

  it('context too long: the history is trimmed and the call retried once, with no holding message', async () => {
    const p = enPatient();
    const texts = [`first question ${p.from}`, `second question ${p.from}`, `third question ${p.from}`];
    for (const [i, text] of texts.slice(0, 2).entries()) {
      await bot.post(textPayload({ from: p.from, text }));
      await waitUntil(`reply ${i + 1}`, () => bot.sentTexts(p.from).length > i, 30_000);
      await bot.waitQuiet();
    }
    const before = await bot.metrics([HOLDING_TOTAL, failures('context'), EXHAUSTED]);
    bot.llm.enqueue('context400');
    await bot.post(textPayload({ from: p.from, text: texts[2] }));
    await waitUntil('reply 3', () => bot.sentTexts(p.from).length >= 3, 30_000);
    await bot.waitQuiet();

    expect(bot.sentTexts(p.from)).toEqual(texts.map((t) => `Echo: ${t}`));
    const third = bot.llm.requests.filter((r) => lastUser(r) === texts[2]);
    expect(third.map((r) => r.mode)).toEqual(['context400', 'ok']);
    const [whole, trimmed] = third.map((r) => r.body.messages);
    // system prompt, two turns of history (4 messages), the turn
    expect(whole).toHaveLength(6);
    expect(trimmed.length).toBeLessThan(whole.length);
    expect(trimmed[0]).toEqual(whole[0]);
    // The newest history is kept, the current turn is never trimmed.
    expect(trimmed.slice(1)).toEqual(whole.slice(whole.length - (trimmed.length - 1)));
    expect(await bot.metricDeltas(before)).toEqual({ [HOLDING_TOTAL]: 0, [failures('context')]: 1, [EXHAUSTED]: 0 });
  }, 60_000);

  it('401/404: counted as config failures, not as attempts, and answered once the LLM is fixed', async () => {
    const a = enPatient();
    const b = arPatient();
    const before = await bot.metrics([HOLDING_TOTAL, failures('config'), failures('error'), EXHAUSTED]);
    // a: two counted failures, then a config one. Were it counted, a would hit LLM_MAX_ATTEMPTS (3).
    bot.llm.enqueue('error500', 'error500', 'unauthorized401');
    await bot.post(textPayload({ from: a.from, text: a.text }));
    await waitUntil('three calls for a', () => requestsOf(a).length >= 3, 30_000);
    bot.llm.enqueue('notfound404');
    await bot.post(textPayload({ from: b.from, text: b.text }));
    await waitUntil('one call for b', () => requestsOf(b).length >= 1, 30_000);
    await waitUntil(
      'the config failures counted',
      async () => (await bot.metrics([failures('config')]))[failures('config')] - before[failures('config')] >= 2,
      10_000,
    );
    // Config failures back off from 30 s: both recover on their own, without a new message.
    await waitUntil('both replies', () => replied(a) && replied(b), 90_000);
    await bot.waitQuiet(60_000);

    expect(bot.sentTexts(a.from)).toEqual([HOLDING.en, `Echo: ${a.text}`]);
    expect(bot.sentTexts(b.from)).toEqual([HOLDING.ar, `Echo: ${b.text}`]);
    expect(requestsOf(a).map((r) => r.mode)).toEqual(['error500', 'error500', 'unauthorized401', 'ok']);
    expect(requestsOf(b).map((r) => r.mode)).toEqual(['notfound404', 'ok']);
    expect(gaps(requestsOf(a))[2]).toBeGreaterThanOrEqual(20_000);
    expect(await bot.metricDeltas(before)).toEqual({
      [HOLDING_TOTAL]: 2,
      [failures('config')]: 2,
      [failures('error')]: 2,
      [EXHAUSTED]: 0,
    });
  }, 150_000);

  it(`in-flight inference never exceeds LLM_MAX_CONCURRENCY (${MAX_CONCURRENCY}): 20 chats, 500 ms each`, async () => {
    bot.llm.latencyMs = 500;
    const patients = Array.from({ length: 20 }, enPatient);
    const before = await bot.metrics([HOLDING_TOTAL]);
    const answers = await Promise.all(patients.map((p) => bot.post(textPayload({ from: p.from, text: p.text }))));
    expect(answers.map((r) => r.status)).toEqual(Array(20).fill(200));
    await waitUntil('every chat answered', () => patients.every(replied), 60_000);
    await bot.waitQuiet(60_000);

    expect(bot.llm.maxInFlight).toBeLessThanOrEqual(MAX_CONCURRENCY);
    expect(bot.llm.maxInFlight).toBeGreaterThanOrEqual(2);
    for (const p of patients) {
      expect(bot.sentTexts(p.from)).toEqual([`Echo: ${p.text}`]);
      expect(requestsOf(p)).toHaveLength(1);
    }
    // Waiting for a free slot is not an LLM failure: nobody got a holding message.
    expect(await bot.metricDeltas(before)).toEqual({ [HOLDING_TOTAL]: 0 });
  }, 90_000);
});
