import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeClinicApi } from '../fakes/fake-clinic-api.server';
import { type ChatRequestBody, type RecordedLlmRequest } from '../fakes/fake-llm.server';
import { chatLane } from '../../src/queue/lanes';
import { BotCluster } from '../utils/bot-cluster';
import {
  BOOK_APPOINTMENT,
  bookingScript,
  bookSlotScript,
  expectArgumentsRefused,
  expectStoredResultReused,
  FIND_FREE_SLOTS,
  onceAtResults,
  privateNotes,
  refusedArgumentsScript,
  toolResultsOf,
} from '../utils/clinic-tools';
import { textPayload } from '../utils/meta-payloads';
import { type SpawnedApp } from '../utils/spawn-app';
import { TEST_PHONE_NUMBER_ID } from '../utils/test-env';

/*
 * Clinic actions (docs/actions.md) end to end: a fake clinic booking API on loopback, the fake LLM
 * answering with tool calls, a receiver and worker processes. Exact counts are asserted once the
 * bot is quiet.
 */

const CLINIC_TOKEN = 'clinic-api-token-for-tests';
// Distinctive argument values: they must never show up in the workers' info logs.
const PATIENT_EN = 'Zaynab Qx7-Private';
const PATIENT_AR = 'زينب الخاصة';

const ACTIONS = {
  actions: [
    { ...FIND_FREE_SLOTS, method: 'GET', path: '/slots', sideEffects: false, timeoutMs: 2000 },
    { ...BOOK_APPOINTMENT, method: 'POST', path: '/bookings', sideEffects: true, timeoutMs: 1500 },
    {
      name: 'get_booking',
      description: 'One booking by its id.',
      parameters: {
        type: 'object',
        properties: { bookingId: { type: 'string' } },
        required: ['bookingId'],
        additionalProperties: false,
      },
      method: 'GET',
      path: '/bookings/{bookingId}',
      sideEffects: false,
      timeoutMs: 2000,
    },
  ],
};

interface WireMessage {
  role: string;
  content: string | null;
  tool_calls?: { id: string; function: { name: string; arguments: string } }[];
  tool_call_id?: string;
}

const messagesOf = (body: ChatRequestBody): WireMessage[] => body.messages;
const hasTools = (r: RecordedLlmRequest): boolean => Array.isArray(r.body.tools) && r.body.tools.length > 0;

describe('clinic actions', () => {
  let bot: BotCluster;
  let clinic: FakeClinicApi;
  let next = 0;

  const addWorker = (): Promise<SpawnedApp> => bot.addWorker({ LOG_LEVEL: 'info', LLM_API_KEY: `worker-${++next}` });
  const workerOf = (r: RecordedLlmRequest): SpawnedApp | undefined =>
    bot.workers.find((w) => r.headers.authorization === `Bearer ${w.env.LLM_API_KEY}`);
  const ensureWorkers = async (count: number): Promise<void> => {
    while (bot.workers.length < count) await addWorker();
  };
  const key = (suffix: string): string => `${bot.receiver.config.redisKeyRoot}:${suffix}`;
  const allStdout: string[] = [];

  beforeAll(async () => {
    clinic = await FakeClinicApi.start();
    const dir = mkdtempSync(join(tmpdir(), 'tawasul-actions-'));
    const file = join(dir, 'actions.json');
    writeFileSync(file, JSON.stringify(ACTIONS));
    bot = await BotCluster.start({
      workers: 1,
      chatwoot: true,
      env: {
        ACTIONS_FILE: file,
        CLINIC_API_BASE_URL: clinic.url,
        CLINIC_API_TOKEN: CLINIC_TOKEN,
        TURN_LEASE_MS: '2000',
        LLM_API_KEY: 'worker-0',
      },
    });
    // The receiver (in this process) stays quiet; the workers log at info, as in production.
    const first = bot.workers.splice(0, 1)[0];
    first.kill('SIGKILL');
    await first.waitExit();
    await ensureWorkers(2);
  }, 180_000);

  afterAll(async () => {
    await bot?.close();
    await clinic?.close();
  });

  beforeEach(async () => {
    for (const w of bot.workers) allStdout.push(w.stdout());
    bot.llm.reset();
    bot.graph.reset();
    clinic.reset();
    await ensureWorkers(2);
    await bot.waitQuiet(60_000);
  }, 120_000);

  it('books an appointment in English: slots, then the booking, then the answer', async () => {
    const from = '971500007001';
    bot.llm.behaviourFor = bookingScript(PATIENT_EN, (r) => `Booked ${r.result.booking.id} at 09:00, see you then.`);
    expect((await bot.post(textPayload({ from, text: 'I would like an appointment on 6 January' }))).status).toBe(200);
    await bot.graph.waitForSends(1, 30_000);
    await bot.waitQuiet();

    expect(bot.sentTexts(from)).toEqual(['Booked bk-1 at 09:00, see you then.']);
    expect(clinic.bookings).toEqual([expect.objectContaining({ slotId: 'slot-0900', patientName: PATIENT_EN })]);
    const [slots, booking] = clinic.requests;
    expect(slots).toMatchObject({ method: 'GET', url: '/api/slots?date=2030-01-06' });
    expect(slots.headers.authorization).toBe(`Bearer ${CLINIC_TOKEN}`);
    expect(slots.headers['idempotency-key']).toBeUndefined();
    expect(booking).toMatchObject({
      method: 'POST',
      url: '/api/bookings',
      body: { slotId: 'slot-0900', patientName: PATIENT_EN },
    });
    expect(booking.headers['idempotency-key']).toMatch(/^[0-9a-f-]{36}\.1\.0$/);

    // Each request carries the tools; the later ones the earlier calls and their results, in order.
    expect(bot.llm.requests).toHaveLength(3);
    expect(bot.llm.requests.every(hasTools)).toBe(true);
    expect((bot.llm.requests[0].body.tools as any[]).map((t) => t.function.name)).toEqual([
      'find_free_slots',
      'book_appointment',
      'get_booking',
    ]);
    const last = messagesOf(bot.llm.requests[2].body);
    const tail = last.slice(-4);
    expect(tail.map((m) => m.role)).toEqual(['assistant', 'tool', 'assistant', 'tool']);
    expect(tail[1].tool_call_id).toBe(tail[0].tool_calls?.[0].id);
    expect(tail[3].tool_call_id).toBe(tail[2].tool_calls?.[0].id);
    expect(JSON.parse(tail[3].content ?? '')).toMatchObject({ ok: true, status: 201 });

    // The history keeps the patient's words and the answer only.
    const history = (await bot.redis.lrange(key(`chat:${chatLane(TEST_PHONE_NUMBER_ID, from)}:history`), 0, -1)).map(
      (h) => JSON.parse(h) as { role: string },
    );
    expect(history.map((h) => h.role)).toEqual(['user', 'assistant']);
    expect(await bot.metric('tawasul_actions_total', 'action="book_appointment",outcome="ok"')).toBe(1);
  }, 60_000);

  it('books an appointment in Arabic', async () => {
    const from = '971500007002';
    bot.llm.behaviourFor = bookingScript(PATIENT_AR, (r) => `تم حجز موعدك ${r.result.booking.id} الساعة 09:00`);
    expect((await bot.post(textPayload({ from, text: 'أريد حجز موعد يوم 6 يناير' }))).status).toBe(200);
    await bot.graph.waitForSends(1, 30_000);
    await bot.waitQuiet();
    expect(bot.sentTexts(from)).toEqual(['تم حجز موعدك bk-1 الساعة 09:00']);
    expect(clinic.bookings).toEqual([expect.objectContaining({ patientName: PATIENT_AR })]);
  }, 60_000);

  it('a worker SIGKILLed after the booking call and before the reply: one booking, one reply', async () => {
    const from = '971500007003';
    const script = bookingScript(PATIENT_EN, (r) => `Booked ${r.result.booking.id}.`);
    // The first call that sees the booking's result hangs: its worker is killed meanwhile.
    bot.llm.behaviourFor = onceAtResults(2, script, (behaviour) => ({ ...behaviour, latencyMs: 30_000 }));
    expect((await bot.post(textPayload({ from, text: 'book me please' }))).status).toBe(200);
    await bot.llm.waitForRequests(3, 30_000);
    const holder = workerOf(bot.llm.requests[2])!;
    expect(holder).toBeDefined();
    holder.kill('SIGKILL');
    await holder.waitExit();
    bot.workers.splice(bot.workers.indexOf(holder), 1);

    await bot.graph.waitForSends(1, 60_000);
    await bot.waitQuiet(60_000);
    expect(bot.sentTexts(from)).toEqual(['Booked bk-1.']);
    expect(clinic.bookings).toHaveLength(1);
    // The stored result was reused: one request per idempotency key (never a second booking).
    const keys = [...clinic.idempotencyKeys().values()];
    expect(keys).toEqual([1]);
    expect(clinic.requestsTo('GET /api/slots')).toHaveLength(1);
    // The takeover asked the LLM with both results, without calling the clinic again.
    const after = bot.llm.requests.slice(3);
    expect(after.length).toBeGreaterThanOrEqual(1);
    expect(after.every((r) => toolResultsOf(r.body).length === 2)).toBe(true);
  }, 120_000);

  it('the LLM failing after a tool result: the stored result is reused, the clinic not called again', async () => {
    const from = '971500007004';
    const script = bookingScript(PATIENT_EN, (r) => `Booked ${r.result.booking.id}, thank you.`);
    bot.llm.behaviourFor = onceAtResults(2, script, () => ({ mode: 'error500' }));
    expect((await bot.post(textPayload({ from, text: 'please book the first free slot' }))).status).toBe(200);
    await bot.graph.waitForSends(2, 30_000);
    await bot.waitQuiet();
    await expectStoredResultReused(bot, from, 'Booked bk-1, thank you.');
    expect(clinic.requestsTo('POST /api/bookings')).toHaveLength(1);
    expect(clinic.requestsTo('GET /api/slots')).toHaveLength(1);
  }, 60_000);

  it('the LLM slot is free while the clinic’s system works: held for each LLM call, not for the calls between', async () => {
    const from = '971500007009';
    const slots = `${bot.receiver.config.redisKeyRoot}:llm:slots`;
    // Slots held now, by holders other than those already there (a killed worker's slot lives
    // until its TTL): this chat's turn is the only one running.
    const before = new Set(await bot.redis.zrangebyscore(slots, Date.now(), '+inf'));
    const ours = async (): Promise<number> =>
      (await bot.redis.zrangebyscore(slots, Date.now(), '+inf')).filter((m) => !before.has(m)).length;
    const heldDuringLlm: number[] = [];
    bot.llm.behaviourFor = (body) => {
      void ours().then((n) => heldDuringLlm.push(n));
      return toolResultsOf(body).length === 0
        ? { toolCalls: [{ name: 'find_free_slots', arguments: { date: '2030-01-06' } }] }
        : { content: 'The calendar is slow today; a colleague will send you the free times.' };
    };
    // The slots request is read and never answered: the call waits out its 2 s timeout.
    clinic.hang('GET /api/slots');
    expect((await bot.post(textPayload({ from, text: 'a slot on 6 January please' }))).status).toBe(200);
    await clinic.waitForRequests('GET /api/slots', 1);
    const heldDuringClinic = await ours();
    await bot.graph.waitForSends(1, 30_000);
    await bot.waitQuiet();
    expect(heldDuringClinic).toBe(0);
    expect(heldDuringLlm).toEqual([1, 1]);
    expect(await ours()).toBe(0);
  }, 60_000);

  it('a booking timing out after the request was written is not repeated: the chat is handed over', async () => {
    const from = '971500007005';
    clinic.hang('POST /api/bookings');
    bot.llm.behaviourFor = bookSlotScript(
      'slot-1030',
      PATIENT_EN,
      (r) => `Result: ${r.outcome ?? 'none'}. A colleague will confirm your booking.`,
    );
    expect((await bot.post(textPayload({ from, text: 'book 10:30 for me' }))).status).toBe(200);
    await bot.graph.waitForSends(1, 30_000);
    await bot.waitQuiet();

    expect(clinic.requestsTo('POST /api/bookings')).toHaveLength(1);
    const results = toolResultsOf(bot.llm.requests[bot.llm.requests.length - 1].body);
    expect(results).toEqual([
      { ok: false, outcome: 'unknown — do not repeat; tell the patient a person will confirm' },
    ]);
    const [sent] = bot.sentTexts(from);
    expect(sent).toContain('A colleague will confirm your booking.');
    expect(await bot.metric('tawasul_escalations_total', 'trigger="action_unknown"')).toBe(1);
    expect(await bot.metric('tawasul_actions_total', 'action="book_appointment",outcome="unknown"')).toBe(1);
    // The agents' private note says which call and with which key.
    const notes = await privateNotes(bot.chatwoot);
    expect(notes.join('\n')).toMatch(
      /action_unknown \(book_appointment .*slot-1030.*Idempotency-Key [0-9a-f-]{36}\.0\.0\)/,
    );
  }, 60_000);

  it('invalid arguments get an error result the LLM can correct, and no HTTP request', async () => {
    const from = '971500007006';
    bot.llm.behaviourFor = refusedArgumentsScript('Which day would suit you?');
    expect((await bot.post(textPayload({ from, text: 'book something' }))).status).toBe(200);
    await bot.graph.waitForSends(1, 30_000);
    await bot.waitQuiet();
    expect(clinic.requests).toHaveLength(0);
    const results = expectArgumentsRefused(bot);
    expect(results[0].error).toMatch(/slotId must be string|patientName/);
    expect(bot.sentTexts(from)).toEqual(['Which day would suit you?']);
  }, 60_000);

  it('ACTIONS_MAX_STEPS rounds used: the LLM is asked once more without tools and answers politely', async () => {
    const from = '971500007007';
    bot.llm.behaviourFor = (body) =>
      Array.isArray(body.tools)
        ? { toolCalls: [{ name: 'find_free_slots', arguments: { date: '2030-01-06' } }] }
        : { content: 'Sorry, I could not finish that here; our reception will help you.' };
    expect((await bot.post(textPayload({ from, text: 'any slots?' }))).status).toBe(200);
    await bot.graph.waitForSends(1, 30_000);
    await bot.waitQuiet();
    expect(bot.llm.requests.map(hasTools)).toEqual([true, true, true, true, false]);
    expect(clinic.requestsTo('GET /api/slots')).toHaveLength(4);
    expect(bot.sentTexts(from)).toEqual(['Sorry, I could not finish that here; our reception will help you.']);
  }, 60_000);

  it('a path parameter with ../ ? or # cannot change the target', async () => {
    const from = '971500007008';
    const ids = ['../slots?date=2030-01-06#x', '..', '%2e%2e', 'bk-1/../../admin'];
    bot.llm.behaviourFor = (body) => {
      const results = toolResultsOf(body);
      if (results.length === 0)
        return { toolCalls: ids.map((bookingId) => ({ name: 'get_booking', arguments: { bookingId } })) };
      return { content: 'No such booking.' };
    };
    expect((await bot.post(textPayload({ from, text: 'show booking' }))).status).toBe(200);
    await bot.graph.waitForSends(1, 30_000);
    await bot.waitQuiet();
    // `..` alone is refused before any request; every other value stays inside its one segment.
    expect(clinic.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'GET /api/bookings/..%2Fslots%3Fdate%3D2030-01-06%23x',
      'GET /api/bookings/%252e%252e',
      'GET /api/bookings/bk-1%2F..%2F..%2Fadmin',
    ]);
    const results = toolResultsOf(bot.llm.requests[1].body);
    expect(results.map((r) => r.status ?? 'refused')).toEqual([404, 'refused', 404, 404]);
  }, 60_000);

  it('tool arguments and results never reach the info logs', () => {
    const logs = [...allStdout, ...bot.workers.map((w) => w.stdout())].join('\n');
    expect(logs).toMatch(/"msg":"clinic action"/);
    for (const secret of [PATIENT_EN, PATIENT_AR, 'slot-0900', 'slot-1030', 'bk-1', CLINIC_TOKEN, '2030-01-06']) {
      expect(logs).not.toContain(secret);
    }
  });
});
