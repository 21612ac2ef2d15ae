import { sandboxOutboxKey, type SandboxOutboxEntry } from '../../src/bsp/sandbox-bsp.client';
import { clinicNow, DOCTORS, isWorkingDay } from '../../src/sandbox/demo-clinic.calendar';
import { DEMO_CLINIC_TTL_S } from '../../src/sandbox/demo-clinic.service';
import { Clock } from '../../src/time/clock';
import { type ChatRequestBody, FakeLlmServer } from '../fakes/fake-llm.server';
import { pageMessage, postUnsigned } from '../utils/sandbox-stream';
import { waitUntil } from '../utils/spawn-app';
import { startTestApp, type TestApp } from '../utils/test-app';

/**
 * The sandbox's demo clinic API (docs/actions.md, "The sandbox's demo clinic"): the contract of
 * config/examples/actions.clinic.json over HTTP against the real app, its keys, where it is absent,
 * and ClinicActions reaching it for real in a turn (the fake LLM scripting the tool calls).
 */

const SANDBOX = {
  BSP_PROVIDER: 'sandbox',
  WHATSAPP_APP_SECRET: undefined,
  WHATSAPP_VERIFY_TOKEN: undefined,
  WHATSAPP_PHONE_NUMBER_ID: undefined,
  META_ACCESS_TOKEN: undefined,
  TURN_DEBOUNCE_MS: '0',
};
const DAY_MS = 24 * 3600_000;
const JSON_HEADERS = { 'content-type': 'application/json' };

/** The clinic's day `days` from today (UAE time, as the clinic counts). */
const clinicDay = (days: number): string => clinicNow(Date.now() + days * DAY_MS).date;
/** Working days from a week ahead on: never today, so no slot of theirs passes during the run. */
const WORKING_DAYS = Array.from({ length: 40 }, (_, i) => clinicDay(7 + i)).filter(isWorkingDay);
const SATURDAY = Array.from({ length: 7 }, (_, i) => clinicDay(7 + i)).find(
  (d) => new Date(`${d}T00:00:00Z`).getUTCDay() === 6,
)!;
const PAST_WEEKDAY = Array.from({ length: 7 }, (_, i) => clinicDay(-8 - i)).find(isWorkingDay)!;
let nextDay = 0;
/** A working day no other test uses. */
const freshDay = (): string => WORKING_DAYS[nextDay++];

describe('the demo clinic API (sandbox BSP, no CLINIC_API_BASE_URL)', () => {
  let t: TestApp;
  let llm: FakeLlmServer;

  const call = async (
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: any; headers: Headers }> => {
    const res = await fetch(`${t.url}/sandbox/clinic${path}`, {
      method,
      headers: body === undefined ? headers : { ...JSON_HEADERS, ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
  };
  const slots = (query: string) => call('GET', `/slots?${query}`);
  const book = (body: unknown, key?: string) =>
    call('POST', '/bookings', body, key === undefined ? {} : { 'idempotency-key': key });
  const freeIds = async (date: string): Promise<string[]> =>
    (await slots(`date=${date}`)).body.slots.map((s: { id: string }) => s.id);
  const bookingCount = (): Promise<number> => t.redis.hlen(t.keys.demoClinic('bookings'));
  /** The demo clinic keys of every app on this Redis (SCAN: it may be shared). */
  const allDemoKeys = async (): Promise<string[]> => {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await t.redis.scan(cursor, 'MATCH', '*democlinic*', 'COUNT', 1000);
      cursor = next;
      found.push(...batch);
    } while (cursor !== '0');
    return found;
  };
  const demoKeys = async (): Promise<string[]> =>
    (await allDemoKeys()).filter((key) => key.startsWith(`${t.config.redisKeyRoot}:`));

  beforeAll(async () => {
    llm = await FakeLlmServer.start();
    t = await startTestApp({ ...SANDBOX, LLM_PROVIDER: 'openai', LLM_BASE_URL: llm.url, LLM_BACKOFF_MS: '200' });
    expect(t.config.demoClinic).toBe(true);
    expect(t.config.clinicApiBaseUrl).toBe(`${t.url}/sandbox/clinic`);
  });

  afterAll(async () => {
    await t?.close();
    await llm?.close();
  });

  it('GET /slots lists the free slots of a working day in time order, one doctor each, with ids <date>T<HH:MM>', async () => {
    const date = freshDay();
    const res = await slots(`date=${date}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.body).toEqual({ date, open: true, slots: expect.any(Array) });
    const times = ['09', '10', '11', '12', '13', '14', '15', '16'].flatMap((h) => [`${h}:00`, `${h}:30`]);
    expect(res.body.slots).toEqual(
      times.map((time, i) => ({ id: `${date}T${time}`, date, time, doctor: DOCTORS[i % 2] })),
    );

    // `doctor` filters on a part of the name, in any case; `service` is accepted and changes nothing.
    const sara = await slots(`date=${date}&doctor=haddad`);
    expect(sara.body.slots).toHaveLength(8);
    expect(sara.body.slots.every((s: { doctor: string }) => s.doctor === 'Dr. Sara Haddad')).toBe(true);
    const omar = await slots(`date=${date}&doctor=DR.%20OMAR&service=cleaning`);
    expect(omar.body.slots.map((s: { time: string }) => s.time)).toEqual(times.filter((_, i) => i % 2 === 1));
    expect((await slots(`date=${date}&service=check-up`)).body.slots).toHaveLength(16);
    // Open, but no such doctor: nothing free, and the next day to look at.
    const nobody = await slots(`date=${date}&doctor=house`);
    expect(nobody.status).toBe(200);
    expect(nobody.body).toEqual({ date, open: true, slots: [], nextOpenDate: expect.any(String) });
    expect(nobody.body.nextOpenDate > date).toBe(true);
  });

  it('a weekend day or a past day is closed, with the next open day; a malformed date is a 400', async () => {
    const weekend = await slots(`date=${SATURDAY}`);
    expect(weekend.status).toBe(200);
    const monday = new Date(Date.parse(`${SATURDAY}T00:00:00Z`) + 2 * DAY_MS).toISOString().slice(0, 10);
    expect(weekend.body).toEqual({ date: SATURDAY, open: false, slots: [], nextOpenDate: monday });

    const past = await slots(`date=${PAST_WEEKDAY}`);
    expect(past.status).toBe(200);
    expect(past.body).toEqual({ date: PAST_WEEKDAY, open: false, slots: [], nextOpenDate: expect.any(String) });
    expect(past.body.nextOpenDate >= clinicDay(0)).toBe(true);
    expect(isWorkingDay(past.body.nextOpenDate)).toBe(true);

    for (const query of [
      'date=tomorrow',
      'date=2026-02-30',
      'date=2026-1-5',
      'date=',
      '',
      `date=${freshDay()}&date=${freshDay()}`,
      `date=${freshDay()}&color=blue`,
    ]) {
      const res = await slots(query);
      expect({ query, status: res.status }).toEqual({ query, status: 400 });
      expect(res.body).toMatchObject({ error: 'invalid_query', message: expect.any(String) });
    }
  });

  it('POST /bookings books a free slot (201), which is no longer free; a taken slot is a 409', async () => {
    const date = freshDay();
    const slotId = `${date}T10:00`;
    const created = await book({ slotId, patientName: '  Layla Haddad ', reason: 'check-up' });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      bookingId: expect.stringMatching(/^B-[0-9A-HJKMNP-TV-Z]{6}$/),
      slotId,
      date,
      time: '10:00',
      doctor: DOCTORS[0],
      patientName: 'Layla Haddad',
      reason: 'check-up',
    });
    expect(await freeIds(date)).not.toContain(slotId);
    expect(await freeIds(date)).toHaveLength(15);

    const again = await book({ slotId, patientName: 'Omar Said' });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ error: 'slot_taken' });
    // Without a reason the booking says so with null.
    const other = await book({ slotId: `${date}T10:30`, patientName: 'Omar Said' });
    expect(other.status).toBe(201);
    expect(other.body.reason).toBeNull();
    expect(other.body.doctor).toBe(DOCTORS[1]);
  });

  it('a slot the calendar does not have is a 404, one that has started a 400, and nothing is booked', async () => {
    const before = await bookingCount();
    for (const slotId of [`${SATURDAY}T10:00`, `${freshDay()}T17:00`, `${freshDay()}T09:15`, 'slot-0900']) {
      const res = await book({ slotId, patientName: 'Sara Ali' });
      expect({ slotId, status: res.status }).toEqual({ slotId, status: 404 });
      expect(res.body).toMatchObject({ error: 'slot_not_found' });
    }
    const past = await book({ slotId: `${PAST_WEEKDAY}T09:00`, patientName: 'Sara Ali' });
    expect(past.status).toBe(400);
    expect(past.body).toMatchObject({ error: 'slot_in_past' });
    expect(await bookingCount()).toBe(before);
  });

  it('a bad body is a 400 naming the problem, never a 500, and books nothing', async () => {
    const slotId = `${freshDay()}T11:00`;
    const before = await bookingCount();
    const bodies: [string, unknown][] = [
      ['no patientName', { slotId }],
      ['no slotId', { patientName: 'Sara Ali' }],
      ['a one-letter name', { slotId, patientName: 'S' }],
      ['a blank name', { slotId, patientName: '    ' }],
      ['a name that is a number', { slotId, patientName: 42 }],
      ['a name of 101 characters', { slotId, patientName: 'x'.repeat(101) }],
      ['a reason of 201 characters', { slotId, patientName: 'Sara Ali', reason: 'r'.repeat(201) }],
      ['an unknown field', { slotId, patientName: 'Sara Ali', doctor: 'Dr. Omar Khalil' }],
      ['an array', [{ slotId, patientName: 'Sara Ali' }]],
      ['not JSON', '{"slotId": '],
      ['no body', undefined],
      ['an empty body', ''],
      ['a __proto__ key', `{"slotId":"${slotId}","patientName":"Sara Ali","__proto__":{"x":1}}`],
    ];
    for (const [what, body] of bodies) {
      const res = await fetch(`${t.url}/sandbox/clinic/bookings`, {
        method: 'POST',
        headers: JSON_HEADERS,
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const answer = (await res.json()) as { error?: string; message?: string };
      expect({ what, status: res.status }).toEqual({ what, status: 400 });
      expect({ what, answer }).toEqual({ what, answer: expect.objectContaining({ error: expect.any(String) }) });
      expect(typeof answer.message).toBe('string');
    }
    // What a cross-site form can send is not taken.
    for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
      const res = await fetch(`${t.url}/sandbox/clinic/bookings`, {
        method: 'POST',
        headers: { 'content-type': type },
        body: type === 'text/plain' ? JSON.stringify({ slotId, patientName: 'Sara Ali' }) : `slotId=${slotId}`,
      });
      await res.text();
      expect({ type, status: res.status }).toEqual({ type, status: 415 });
    }
    const named = await book({ slotId, patientName: 'S' });
    expect(named.body).toMatchObject({ error: 'invalid_body', fields: [{ field: 'patientName' }] });
    const longKey = await book({ slotId, patientName: 'Sara Ali' }, 'k'.repeat(256));
    expect(longKey.status).toBe(400);
    expect(await bookingCount()).toBe(before);
    expect(await freeIds(slotId.slice(0, 10))).toContain(slotId);
  });

  it('Idempotency-Key: a repeat gets the same answer and books nothing more, concurrent duplicates too', async () => {
    const date = freshDay();
    const before = await bookingCount();
    const first = await book({ slotId: `${date}T09:00`, patientName: 'Huda Saleh' }, 'turn-1.1.0');
    expect(first.status).toBe(201);
    const repeat = await book({ slotId: `${date}T09:00`, patientName: 'Huda Saleh' }, 'turn-1.1.0');
    expect(repeat.status).toBe(201);
    expect(repeat.body).toEqual(first.body);
    expect(repeat.headers.get('idempotent-replayed')).toBe('true');
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    // The key decides, as for a retried call whose arguments the LLM wrote again differently.
    const differently = await book({ slotId: `${date}T09:30`, patientName: 'Huda Saleh' }, 'turn-1.1.0');
    expect(differently.body).toEqual(first.body);
    expect(await bookingCount()).toBe(before + 1);

    // Twenty at once with one key: one booking, twenty identical answers.
    const burst = await Promise.all(
      Array.from({ length: 20 }, () => book({ slotId: `${date}T11:00`, patientName: 'Huda Saleh' }, 'turn-2.1.0')),
    );
    expect(new Set(burst.map((r) => r.status))).toEqual(new Set([201]));
    expect(new Set(burst.map((r) => JSON.stringify(r.body))).size).toBe(1);
    expect(await bookingCount()).toBe(before + 2);

    // Twenty at once for one slot with different keys: one booking, nineteen 409s.
    const race = await Promise.all(
      Array.from({ length: 20 }, (_, i) => book({ slotId: `${date}T12:00`, patientName: `Patient ${i}` }, `race-${i}`)),
    );
    expect(race.filter((r) => r.status === 201)).toHaveLength(1);
    expect(race.filter((r) => r.status === 409 && r.body.error === 'slot_taken')).toHaveLength(19);
    expect(await bookingCount()).toBe(before + 3);
    // A 409 is an answer too: its key gives it again, even once the slot is free.
    const lost = race.findIndex((r) => r.status === 409);
    const winner = race.find((r) => r.status === 201)!.body.bookingId as string;
    expect((await call('DELETE', `/bookings/${winner}`)).status).toBe(200);
    const replayed = await book({ slotId: `${date}T12:00`, patientName: `Patient ${lost}` }, `race-${lost}`);
    expect(replayed.status).toBe(409);
    expect(replayed.headers.get('idempotent-replayed')).toBe('true');
  });

  it('PUT /bookings/{id} moves a booking and frees its old slot; unknown is 404, a taken slot 409', async () => {
    const date = freshDay();
    const { body: booked } = await book({ slotId: `${date}T09:00`, patientName: 'Mariam Nasser', reason: 'cleaning' });
    const { body: blocker } = await book({ slotId: `${date}T15:00`, patientName: 'Khalid Nasser' });

    const moved = await call('PUT', `/bookings/${booked.bookingId}`, { slotId: `${date}T14:30` });
    expect(moved.status).toBe(200);
    expect(moved.body).toEqual({
      ...booked,
      slotId: `${date}T14:30`,
      time: '14:30',
      doctor: DOCTORS[1],
    });
    const free = await freeIds(date);
    expect(free).toContain(`${date}T09:00`);
    expect(free).not.toContain(`${date}T14:30`);

    const taken = await call('PUT', `/bookings/${booked.bookingId}`, { slotId: blocker.slotId });
    expect(taken.status).toBe(409);
    expect(taken.body).toMatchObject({ error: 'slot_taken' });
    // To the slot it already has: nothing to move, the same booking.
    const same = await call('PUT', `/bookings/${booked.bookingId}`, { slotId: `${date}T14:30` });
    expect(same.status).toBe(200);
    expect(same.body).toEqual(moved.body);

    const unknown = await call('PUT', '/bookings/B-000000', { slotId: `${date}T16:00` });
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ error: 'booking_not_found' });
    expect((await call('PUT', `/bookings/${booked.bookingId}`, { slotId: `${SATURDAY}T09:00` })).status).toBe(404);
    expect((await call('PUT', `/bookings/${booked.bookingId}`, { slot: `${date}T16:00` })).status).toBe(400);
    expect((await call('PUT', `/bookings/${booked.bookingId}`, {})).status).toBe(400);

    // Idempotent: the repeat answers as the first did and moves nothing, though the booking moved since.
    const keyed = await call(
      'PUT',
      `/bookings/${booked.bookingId}`,
      { slotId: `${date}T16:00` },
      { 'idempotency-key': 'move-1' },
    );
    expect(keyed.status).toBe(200);
    await call('PUT', `/bookings/${booked.bookingId}`, { slotId: `${date}T16:30` });
    const repeat = await call(
      'PUT',
      `/bookings/${booked.bookingId}`,
      { slotId: `${date}T16:00` },
      { 'idempotency-key': 'move-1' },
    );
    expect(repeat).toMatchObject({ status: 200, body: keyed.body });
    const now = await call('GET', '/appointments?patientName=mariam%20nasser');
    expect(now.body.appointments.map((a: { slotId: string }) => a.slotId)).toEqual([`${date}T16:30`]);
    expect(await freeIds(date)).toContain(`${date}T16:00`);
  });

  it('DELETE /bookings/{id} cancels and frees the slot; a keyed repeat gets the same 200, an unkeyed one 404', async () => {
    const date = freshDay();
    const { body: booked } = await book({ slotId: `${date}T13:00`, patientName: 'Yousef Amin' });
    const before = await bookingCount();
    // Ids read back in lower case are the same id.
    const cancelled = await call('DELETE', `/bookings/${booked.bookingId.toLowerCase()}`, undefined, {
      'idempotency-key': 'cancel-1',
    });
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toEqual({ bookingId: booked.bookingId, cancelled: true });
    expect(await bookingCount()).toBe(before - 1);
    expect(await freeIds(date)).toContain(`${date}T13:00`);

    const repeat = await call('DELETE', `/bookings/${booked.bookingId}`, undefined, { 'idempotency-key': 'cancel-1' });
    expect(repeat).toMatchObject({ status: 200, body: cancelled.body });
    const unkeyed = await call('DELETE', `/bookings/${booked.bookingId}`);
    expect(unkeyed.status).toBe(404);
    expect(unkeyed.body).toMatchObject({ error: 'booking_not_found' });
    // The slot can be booked again.
    expect((await book({ slotId: `${date}T13:00`, patientName: 'Yousef Amin' })).status).toBe(201);
  });

  it('GET /appointments finds a patient’s upcoming bookings by name, ignoring case and spacing, soonest first', async () => {
    const [early, late] = [freshDay(), freshDay()];
    await book({ slotId: `${late}T09:00`, patientName: 'Noor  Al-Amin' });
    await book({ slotId: `${early}T16:00`, patientName: 'noor al-amin', reason: 'follow-up' });
    await book({ slotId: `${early}T16:30`, patientName: 'Noor Al-Aminah' });
    await book({ slotId: `${early}T15:30`, patientName: 'نور الأمين' });

    const found = await call('GET', '/appointments?patientName=NOOR%20AL-AMIN');
    expect(found.status).toBe(200);
    expect(found.body.appointments.map((a: { slotId: string }) => a.slotId)).toEqual([
      `${early}T16:00`,
      `${late}T09:00`,
    ]);
    expect(found.body.appointments[0]).toEqual({
      bookingId: expect.any(String),
      slotId: `${early}T16:00`,
      date: early,
      time: '16:00',
      doctor: DOCTORS[0],
      patientName: 'noor al-amin',
      reason: 'follow-up',
    });
    const arabic = await call('GET', `/appointments?patientName=${encodeURIComponent('نور الأمين')}`);
    expect(arabic.body.appointments).toHaveLength(1);
    expect((await call('GET', '/appointments?patientName=Nobody%20Here')).body).toEqual({ appointments: [] });
    expect((await call('GET', '/appointments')).status).toBe(400);
    expect((await call('GET', '/appointments?patientName=N')).status).toBe(400);
  });

  it('a booking whose time has come leaves the lists; its Idempotency-Key still answers as before', async () => {
    const date = freshDay();
    const first = await book({ slotId: `${date}T09:00`, patientName: 'Salim Past' }, 'late-retry');
    expect(first.status).toBe(201);
    const clock = t.app.get(Clock);
    const ahead = Date.parse(`${date}T12:00:00+04:00`) - Date.now();
    clock.advance(ahead);
    try {
      expect((await call('GET', '/appointments?patientName=Salim%20Past')).body).toEqual({ appointments: [] });
      expect((await slots(`date=${date}`)).body.slots[0].time).toBe('12:30');
      expect((await book({ slotId: `${date}T10:00`, patientName: 'Salim Past' })).status).toBe(400);
      const retry = await book({ slotId: `${date}T09:00`, patientName: 'Salim Past' }, 'late-retry');
      expect(retry).toMatchObject({ status: 201, body: first.body });
    } finally {
      clock.advance(-ahead);
    }
  });

  it('every key is under the app’s hash-tagged prefix and expires within a week', async () => {
    await book({ slotId: `${freshDay()}T09:00`, patientName: 'Key Check' }, 'key-check');
    // Other apps on this Redis have demo clinics of their own, each under its own prefix.
    for (const key of await allDemoKeys()) expect(key).toMatch(/^\{[^}]+\}:democlinic:/);
    const ours = await demoKeys();
    expect(ours).toEqual(expect.arrayContaining([t.keys.demoClinic('slots'), t.keys.demoClinic('bookings')]));
    expect(ours.filter((key) => key.includes(':idem:')).length).toBeGreaterThan(0);
    for (const key of ours) {
      expect(key).toMatch(/^\{[^}]+\}:democlinic:(slots|bookings|idem:[0-9a-f]{64})$/);
      const ttl = await t.redis.ttl(key);
      expect({ key, positive: ttl > 0, withinAWeek: ttl <= DEMO_CLINIC_TTL_S }).toEqual({
        key,
        positive: true,
        withinAWeek: true,
      });
    }
  });

  it('the state endpoint shows the clinic’s upcoming bookings, the last booked or moved first, at most 10', async () => {
    const date = freshDay();
    const ids: string[] = [];
    for (const time of [
      '09:00',
      '09:30',
      '10:00',
      '10:30',
      '11:00',
      '11:30',
      '12:00',
      '12:30',
      '13:00',
      '13:30',
      '14:00',
    ]) {
      ids.push((await book({ slotId: `${date}T${time}`, patientName: `Panel ${time}` })).body.bookingId);
      // Ordered by when each was booked, to the millisecond.
      await new Promise((r) => setTimeout(r, 3));
    }
    await call('PUT', `/bookings/${ids[0]}`, { slotId: `${date}T16:30` });
    const res = await fetch(`${t.url}/sandbox/api/state?waId=971500000001`);
    expect(res.status).toBe(200);
    const state = (await res.json()) as any;
    expect(state.clinic.api).toBe('/sandbox/clinic');
    expect(state.clinic.bookings).toHaveLength(10);
    expect(state.clinic.bookings.map((b: { bookingId: string }) => b.bookingId)).toEqual([
      ids[0],
      ...ids.slice(1).reverse().slice(0, 9),
    ]);
    expect(state.clinic.bookings[0]).toEqual({
      bookingId: ids[0],
      slotId: `${date}T16:30`,
      date,
      time: '16:30',
      doctor: DOCTORS[1],
      patientName: 'Panel 09:00',
      reason: null,
    });
  });

  it('ClinicActions reaches it for real: a turn finds free slots, books one, and the booking is in the state', async () => {
    const date = freshDay();
    const me = '971500004242';
    const toolResults = (body: ChatRequestBody): Record<string, any>[] =>
      body.messages.filter((m) => m.role === 'tool').map((m) => JSON.parse(m.content) as Record<string, any>);
    llm.behaviourFor = (body) => {
      const results = toolResults(body);
      if (results.length === 0) {
        return { toolCalls: [{ name: 'find_free_slots', arguments: { date, doctor: 'khalil' } }] };
      }
      if (results.length === 1) {
        const [slot] = results[0].result.slots;
        return {
          toolCalls: [
            { name: 'book_appointment', arguments: { slotId: slot.id, patientName: 'Rania Tool', reason: 'braces' } },
          ],
        };
      }
      const booking = results[1].result;
      return { content: `Booked ${booking.bookingId}: ${booking.date} at ${booking.time} with ${booking.doctor}.` };
    };
    try {
      const sent = pageMessage(t.config.phoneNumberId, me, { type: 'text', text: { body: 'Book me with Dr. Khalil' } });
      expect(await postUnsigned(t.url, sent.payload)).toBe(200);
      const replies = async (): Promise<string[]> =>
        (await t.redis.lrange(sandboxOutboxKey(t.keys), 0, -1))
          .map((raw) => JSON.parse(raw) as SandboxOutboxEntry)
          .filter((e) => e.operation === 'text' && e.payload.to === me)
          .map((e) => (e.payload.text as { body: string }).body);
      await waitUntil('the reply', async () => (await replies()).length > 0, 20_000);

      // The tools are the demo catalog's; the slots came from this API, and the booking too.
      expect((llm.requests[0].body.tools as any[]).map((tool) => tool.function.name)).toEqual([
        'find_free_slots',
        'book_appointment',
        'reschedule_appointment',
        'cancel_appointment',
        'my_appointments',
      ]);
      const results = toolResults(llm.requests[2].body);
      expect(results[0]).toMatchObject({ ok: true, status: 200, result: { date, open: true } });
      expect(results[0].result.slots[0]).toEqual({ id: `${date}T09:30`, date, time: '09:30', doctor: DOCTORS[1] });
      expect(results[1]).toMatchObject({ ok: true, status: 201, result: { slotId: `${date}T09:30` } });
      const bookingId = results[1].result.bookingId as string;
      expect(await replies()).toEqual([`Booked ${bookingId}: ${date} at 09:30 with ${DOCTORS[1]}.`]);

      const state = (await (await fetch(`${t.url}/sandbox/api/state?waId=${me}`)).json()) as any;
      expect(state.clinic.bookings[0]).toEqual({
        bookingId,
        slotId: `${date}T09:30`,
        date,
        time: '09:30',
        doctor: DOCTORS[1],
        patientName: 'Rania Tool',
        reason: 'braces',
      });
      // The booking came with the turn's Idempotency-Key: its answer is stored under it.
      const answers = await Promise.all(
        (await demoKeys()).filter((k) => k.includes(':idem:')).map((k) => t.redis.get(k)),
      );
      expect(answers.filter((a) => a?.includes(bookingId))).toHaveLength(1);
    } finally {
      llm.behaviourFor = undefined;
    }
  });
});

describe('the offline receptionist books through the demo clinic, end to end', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ ...SANDBOX, LLM_PROVIDER: 'offline', CLINIC_NAME: 'Al Noor Clinic' });
  });

  afterAll(async () => {
    await t?.close();
  });

  /** Sends the patient's messages one at a time, each after the answer to the one before. */
  async function converse(me: string, messages: string[]): Promise<string[]> {
    // The outbox is newest first.
    const replies = async (): Promise<string[]> =>
      (await t.redis.lrange(sandboxOutboxKey(t.keys), 0, -1))
        .map((raw) => JSON.parse(raw) as SandboxOutboxEntry)
        .filter((e) => e.operation === 'text' && e.payload.to === me)
        .map((e) => (e.payload.text as { body: string }).body)
        .reverse();
    for (const [i, text] of messages.entries()) {
      const sent = pageMessage(t.config.phoneNumberId, me, { type: 'text', text: { body: text } });
      expect(await postUnsigned(t.url, sent.payload)).toBe(200);
      await waitUntil(`the answer to message ${i + 1}`, async () => (await replies()).length > i, 20_000);
    }
    return replies();
  }

  const appointments = async (name: string): Promise<any[]> =>
    (
      (await (
        await fetch(`${t.url}/sandbox/clinic/appointments?patientName=${encodeURIComponent(name)}`)
      ).json()) as any
    ).appointments;

  it('English: name, reason, a list of free times from the clinic, the pick booked with its number', async () => {
    const replies = await converse('971500004301', [
      'I would like to book an appointment',
      'Sara Demo',
      'a check-up',
      '2',
    ]);
    expect(replies[2]).toMatch(/These times are free on \w+ \d{4}-\d{2}-\d{2}:\n1\) \d{2}:\d{2} — Dr\. /);
    expect(replies[2]).toMatch(/Which time suits you\? Reply with its number\.$/);
    const [booking] = await appointments('Sara Demo');
    expect(booking).toMatchObject({ patientName: 'Sara Demo', reason: 'a check-up' });
    const second = /\n2\) (\d{2}:\d{2}) — (.+)\n/.exec(replies[2])!;
    expect({ time: booking.time, doctor: booking.doctor }).toEqual({ time: second[1], doctor: second[2] });
    expect(replies[3]).toBe(
      `Your appointment is booked, Sara Demo: ${booking.date} at ${booking.time} with ${booking.doctor}. Your booking number is ${booking.bookingId}.`,
    );
  });

  it('Arabic: the same booking, picked with an Arabic-Indic digit, answered in Arabic', async () => {
    const replies = await converse('971500004302', ['أريد حجز موعد', 'اسمي ليلى', 'فحص الأسنان', '١']);
    expect(replies[2]).toContain('أي موعد يناسبك؟ أرسل رقمه.');
    const [booking] = await appointments('ليلى');
    expect(booking).toMatchObject({ patientName: 'ليلى', reason: 'فحص الأسنان' });
    expect(replies[3]).toContain('تم حجز موعدك يا ليلى');
    expect(replies[3]).toContain(booking.bookingId);
  });

  /** The clinic's next Thursday after today. */
  const thursday = (): string =>
    Array.from({ length: 7 }, (_, i) => clinicDay(1 + i)).find((d) => new Date(`${d}T00:00:00Z`).getUTCDay() === 4)!;

  it('English: a refusal books nothing; "Thursday afternoon" lists that afternoon; the pick books it; thanks repeats it', async () => {
    const replies = await converse('971500004303', [
      'I would like to book an appointment',
      'Omar Test',
      'a check-up',
      'not 2, something later',
      'Can I come on Thursday afternoon instead?',
      '1',
      'Thanks!',
    ]);
    expect(replies[3]).toMatch(/^Sorry, I could not tell which time you chose\. .*\n1\) \d{2}:\d{2} — Dr\. /s);
    const first = new RegExp(`Thursday ${thursday()}:\\n1\\) (1[2-6]:\\d{2}) — `).exec(replies[4]);
    expect(first).not.toBeNull();
    const bookings = await appointments('Omar Test');
    expect(bookings).toHaveLength(1);
    expect(bookings[0]).toMatchObject({ date: thursday(), time: first![1] });
    const { date, time, doctor, bookingId } = bookings[0];
    expect(replies[5]).toBe(
      `Your appointment is booked, Omar Test: ${date} at ${time} with ${doctor}. Your booking number is ${bookingId}.`,
    );
    expect(replies[6]).toBe(
      `You are welcome! Your appointment is on ${date} at ${time} with ${doctor}; your booking number is ${bookingId}. See you then!`,
    );
  });

  it('Arabic: "مش ٢، الخميس" books nothing and lists Thursday; "١" books it; thanks repeats the booking number', async () => {
    const replies = await converse('971500004304', ['أريد حجز موعد', 'اسمي سلمى', 'فحص', 'مش ٢، الخميس', '١', 'شكراً']);
    const plain = replies.map((r) => r.replace(/[\u200F\u2066\u2069]/g, ''));
    expect(plain[3]).toContain(`${thursday()}:\n1) 09:00 — `);
    expect(plain[3]).toContain('أي موعد يناسبك؟');
    const [booking] = await appointments('سلمى');
    expect(booking).toMatchObject({ date: thursday(), time: '09:00' });
    expect(plain[4]).toContain('تم حجز موعدك يا سلمى');
    expect(plain[5]).toBe(
      `عفواً! موعدك يوم ${booking.date} الساعة ${booking.time} مع ${booking.doctor}، ورقم الحجز ${booking.bookingId}. نراك قريباً!`,
    );
  });
});

describe('the demo clinic API is absent', () => {
  it.each<[string, Record<string, string | undefined>]>([
    ['with BSP_PROVIDER=meta', { META_GRAPH_URL: 'http://127.0.0.1:9' }],
    [
      'with CLINIC_API_BASE_URL set',
      { ...SANDBOX, LLM_PROVIDER: 'offline', CLINIC_API_BASE_URL: 'http://127.0.0.1:9/api' },
    ],
    ['on a worker', { ...SANDBOX, LLM_PROVIDER: 'offline', APP_ROLE: 'worker' }],
  ])('%s: every /sandbox/clinic path is 404', async (_, env) => {
    const t = await startTestApp(env);
    try {
      expect(t.config.demoClinic).toBe(false);
      const date = WORKING_DAYS[0];
      for (const [method, path, body] of [
        ['GET', `/sandbox/clinic/slots?date=${date}`],
        ['POST', '/sandbox/clinic/bookings', { slotId: `${date}T09:00`, patientName: 'Sara Ali' }],
        ['PUT', '/sandbox/clinic/bookings/B-000000', { slotId: `${date}T09:00` }],
        ['DELETE', '/sandbox/clinic/bookings/B-000000'],
        ['GET', '/sandbox/clinic/appointments?patientName=Sara'],
      ] as [string, string, unknown?][]) {
        const res = await fetch(`${t.url}${path}`, {
          method,
          headers: body ? JSON_HEADERS : {},
          body: body ? JSON.stringify(body) : undefined,
        });
        await res.text();
        expect({ method, path, status: res.status }).toEqual({ method, path, status: 404 });
      }
      expect(await t.redis.exists(t.keys.demoClinic('bookings'))).toBe(0);
      if (env.BSP_PROVIDER === 'sandbox' && !('APP_ROLE' in env)) {
        // The sandbox itself is there; its state says there is no demo clinic.
        const state = (await (await fetch(`${t.url}/sandbox/api/state?waId=971500000001`)).json()) as any;
        expect(state.clinic).toBeNull();
      }
    } finally {
      await t.close();
    }
  });
});
