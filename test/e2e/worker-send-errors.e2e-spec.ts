import { statusLane } from '../../src/queue/lanes';
import { type RecordedRequest } from '../fakes/fake-graph.server';
import { type BotCluster } from '../utils/bot-cluster';
import { arrivalGaps, botPerSuite } from '../utils/bot-suite';
import { deadLetters } from '../utils/dead-letters';
import { envelope, nowSeconds, textPayload } from '../utils/meta-payloads';
import { waitUntil } from '../utils/spawn-app';
import { TEST_PHONE_NUMBER_ID } from '../utils/test-env';

/**
 * Send errors by kind, end to end: one receiver, three worker processes, the
 * fake LLM echoing, and a fake Graph API that fails the sends the way Meta does. Exact counts are
 * asserted only once the whole bot is quiet.
 */

const SEND_UNKNOWN_WAIT_MS = 3000;

let senderSeq = 0;
const nextSender = (): string => `97150130${String(senderSeq++).padStart(4, '0')}`;

interface Patient {
  from: string;
  text: string;
  /** What the echoing fake LLM answers. */
  reply: string;
}

const patient = (): Patient => {
  const from = nextSender();
  const text = `When are you open on Friday? (${from})`;
  return { from, text, reply: `Echo: ${text}` };
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const POSSIBLE_DUPLICATES = 'tawasul_possible_duplicate_sends_total';
const DEAD_TURNS = 'tawasul_turns_total{outcome="dead_lettered"}';
const REPLIED_TURNS = 'tawasul_turns_total{outcome="replied"}';
const deadLettered = (reason: string): string => `tawasul_dead_letters_total{reason="${reason}"}`;

describe.each([
  { concurrency: 50, full: true },
  { concurrency: 1, full: false },
])('send errors, three workers with WORKER_CONCURRENCY=$concurrency', ({ concurrency, full }) => {
  let bot: BotCluster;
  let gaps: (requests: readonly RecordedRequest[]) => number[];

  /** Every send attempt of `text` (accepted or not), in arrival order. */
  const attemptsOf = (text: string): RecordedRequest[] => bot.graph.sends().filter((s) => s.body?.text?.body === text);
  const laneOf = (from: string): string => `c.${TEST_PHONE_NUMBER_ID}.${from}`;
  const root = (): string => bot.receiver.config.redisKeyRoot;
  const deadEntries = async (from: string): Promise<{ reason: string; code?: number | string }[]> =>
    (await deadLetters(bot.redis, root())).map((job) => job.data).filter((data) => data.lane === laneOf(from));

  botPerSuite(
    {
      workers: 3,
      env: { WORKER_CONCURRENCY: String(concurrency), SEND_UNKNOWN_WAIT_MS: String(SEND_UNKNOWN_WAIT_MS) },
    },
    (started) => {
      bot = started;
      gaps = arrivalGaps(bot.graph.requests);
    },
  );

  /**
   * The first send of `p`'s reply goes out with a status webhook for its part key posted while
   * its outcome is unknown: Meta did accept it, so it is never sent again.
   */
  async function unknownOutcomeSettledByStatus(p: Patient): Promise<void> {
    const before = await bot.metrics([POSSIBLE_DUPLICATES, REPLIED_TURNS]);
    expect((await bot.post(textPayload({ from: p.from, text: p.text }))).status).toBe(200);
    const [first] = await bot.graph.waitForSends(1, 30_000);
    const key = first.body.biz_opaque_callback_data as string;
    expect(key).toMatch(/^t\.[\w-]+\.0$/);
    const wamid = `wamid.SETTLED_${p.from}`;
    const status = envelope({
      statuses: [
        { id: wamid, status: 'sent', timestamp: nowSeconds(), recipient_id: p.from, biz_opaque_callback_data: key },
      ],
    });
    expect((await bot.post(status)).status).toBe(200);
    await bot.waitQuiet(60_000);

    expect(attemptsOf(p.reply)).toHaveLength(1);
    expect(await bot.redis.get(`${root()}:ack:${key}`)).toBe(wamid);
    expect(await bot.metricDeltas(before)).toEqual({ [POSSIBLE_DUPLICATES]: 0, [REPLIED_TURNS]: 1 });
  }

  it('connection broken after the body was written, then a status for its part key: never resent', async () => {
    bot.graph.enqueue({ kind: 'destroy-after-body' });
    await unknownOutcomeSettledByStatus(patient());
  }, 60_000);

  it('a status accepted in time settles the part even while its status lane waits for a worker: never resent', async () => {
    const p = patient();
    const before = await bot.metrics([POSSIBLE_DUPLICATES, REPLIED_TURNS]);
    // The recipient's status lane is held by a (pretend) stalled worker: the status waits in its
    // inbox past SEND_UNKNOWN_WAIT_MS, as under starved or paused workers.
    const statusLaneKey = bot.receiver.keys.lease(statusLane(TEST_PHONE_NUMBER_ID, p.from));
    await bot.redis.set(statusLaneKey, '1.stalled-worker', 'PX', 4 * SEND_UNKNOWN_WAIT_MS);
    try {
      bot.graph.enqueue({ kind: 'destroy-after-body' });
      expect((await bot.post(textPayload({ from: p.from, text: p.text }))).status).toBe(200);
      const [first] = await bot.graph.waitForSends(1, 30_000);
      const key = first.body.biz_opaque_callback_data as string;
      const wamid = `wamid.WAITING_${p.from}`;
      const status = { id: wamid, status: 'sent', timestamp: nowSeconds(), recipient_id: p.from };
      expect((await bot.post(envelope({ statuses: [{ ...status, biz_opaque_callback_data: key }] }))).status).toBe(200);
      await sleep(SEND_UNKNOWN_WAIT_MS + 2000);
      expect(attemptsOf(p.reply)).toHaveLength(1);
      expect(await bot.redis.get(`${root()}:ack:${key}`)).toBe(wamid);
    } finally {
      await bot.redis.del(statusLaneKey);
    }
    await bot.waitQuiet(60_000);
    expect(attemptsOf(p.reply)).toHaveLength(1);
    expect(await bot.metricDeltas(before)).toEqual({ [POSSIBLE_DUPLICATES]: 0, [REPLIED_TURNS]: 1 });
  }, 60_000);

  it('connection broken after the body was written, no status: resent once after SEND_UNKNOWN_WAIT_MS', async () => {
    const p = patient();
    const before = await bot.metrics([POSSIBLE_DUPLICATES, REPLIED_TURNS]);
    bot.graph.enqueue({ kind: 'destroy-after-body' });
    expect((await bot.post(textPayload({ from: p.from, text: p.text }))).status).toBe(200);
    await waitUntil('the resend', () => attemptsOf(p.reply).length >= 2, 30_000);
    await bot.waitQuiet();

    const attempts = attemptsOf(p.reply);
    expect(attempts.map((a) => a.behaviour)).toEqual(['destroy-after-body', 'ok']);
    expect(attempts[1].body.biz_opaque_callback_data).toBe(attempts[0].body.biz_opaque_callback_data);
    // The 'sending' mark is written right before the first send: the resend waits from there.
    expect(gaps(attempts)[0]).toBeGreaterThanOrEqual(SEND_UNKNOWN_WAIT_MS - 100);
    expect(bot.sentTexts(p.from)).toEqual([p.reply]);
    expect(await bot.metricDeltas(before)).toEqual({ [POSSIBLE_DUPLICATES]: 1, [REPLIED_TURNS]: 1 });
  }, 60_000);

  it('131056 (pair rate) delays only that recipient, 4^n seconds; another chat is answered meanwhile', async () => {
    const x = patient();
    const y = patient();
    bot.graph.enqueue({ kind: 'graph-error', code: 131056 }, { kind: 'graph-error', code: 131056 });
    await bot.post(textPayload({ from: x.from, text: x.text }));
    await waitUntil('two refused sends to x', () => attemptsOf(x.reply).length >= 2, 30_000);
    await bot.post(textPayload({ from: y.from, text: y.text }));
    await waitUntil('both replies', () => bot.sentTexts(x.from).length > 0 && bot.sentTexts(y.from).length > 0, 30_000);
    await bot.waitQuiet();

    const attempts = attemptsOf(x.reply);
    expect(attempts.map((a) => a.behaviour)).toEqual(['graph-error', 'graph-error', 'ok']);
    const [first, second] = gaps(attempts);
    expect(first).toBeGreaterThanOrEqual(950);
    expect(second).toBeGreaterThanOrEqual(3950);
    // y wrote while x was parked for 4 s and was answered before x's next attempt.
    const ySend = attemptsOf(y.reply);
    expect(ySend.map((a) => a.behaviour)).toEqual(['ok']);
    expect(ySend[0].seq).toBeLessThan(attempts[2].seq);
    expect(bot.sentTexts(x.from)).toEqual([x.reply]);
    expect(bot.sentTexts(y.from)).toEqual([y.reply]);
  }, 60_000);

  it('a 9,000-character reply whose part 2 fails once with 500: every part once, in order', async () => {
    const p = patient();
    const long = Array.from({ length: 90 }, (_, i) => `Sentence ${i} ${'y'.repeat(88)}.`).join(' ');
    bot.llm.reply = () => long;
    bot.graph.enqueue({ kind: 'ok' }, { kind: 'status', httpStatus: 500 });
    await bot.post(textPayload({ from: p.from, text: p.text }));
    await waitUntil('three parts delivered', () => bot.sentTexts(p.from).length >= 3, 30_000);
    await bot.waitQuiet();

    const attempts = bot.graph.sends().filter((s) => s.body?.to === p.from);
    expect(attempts.map((a) => a.behaviour)).toEqual(['ok', 'status', 'ok', 'ok']);
    const keys = attempts.map((a) => String(a.body.biz_opaque_callback_data).split('.').pop());
    expect(keys).toEqual(['0', '1', '1', '2']);
    expect(attempts[2].body.text.body).toBe(attempts[1].body.text.body);
    const parts = bot.sentTexts(p.from);
    expect(parts).toHaveLength(3);
    expect(new Set(parts).size).toBe(3);
    for (const part of parts) expect(part.length).toBeLessThanOrEqual(4096);
    expect(parts.join(' ').replace(/\s+/g, ' ')).toBe(long.replace(/\s+/g, ' '));
  }, 60_000);

  if (!full) {
    // The Cloud API client's send timeout is 15 s (DEFAULT_SEND_TIMEOUT_MS, not configurable), so
    // this waits that long once; one worker process per slot makes the hung send hold its worker.
    it('a send that hangs until the client times out, settled by a status meanwhile: never resent', async () => {
      bot.graph.enqueue({ kind: 'hang' });
      await unknownOutcomeSettledByStatus(patient());
    }, 90_000);
    return;
  }

  it('130429 then success: retried after a backoff, one reply delivered', async () => {
    const p = patient();
    const before = await bot.metrics([POSSIBLE_DUPLICATES]);
    bot.graph.enqueue({ kind: 'graph-error', code: 130429, message: 'Rate limit hit' });
    await bot.post(textPayload({ from: p.from, text: p.text }));
    await waitUntil('the retry', () => bot.sentTexts(p.from).length > 0, 30_000);
    await bot.waitQuiet();

    const attempts = attemptsOf(p.reply);
    expect(attempts.map((a) => a.behaviour)).toEqual(['graph-error', 'ok']);
    expect(gaps(attempts)[0]).toBeGreaterThanOrEqual(700);
    expect(bot.sentTexts(p.from)).toEqual([p.reply]);
    // An error answer means "not sent": the retry is no possible duplicate.
    expect(await bot.metricDeltas(before)).toEqual({ [POSSIBLE_DUPLICATES]: 0 });
  }, 60_000);

  it('HTTP 500 then success: one reply delivered (a 5xx may have been accepted: resent after the wait)', async () => {
    const p = patient();
    const before = await bot.metrics([POSSIBLE_DUPLICATES]);
    bot.graph.enqueue({ kind: 'status', httpStatus: 500 });
    await bot.post(textPayload({ from: p.from, text: p.text }));
    await waitUntil('the retry', () => bot.sentTexts(p.from).length > 0, 30_000);
    await bot.waitQuiet();

    const attempts = attemptsOf(p.reply);
    expect(attempts.map((a) => a.behaviour)).toEqual(['status', 'ok']);
    expect(gaps(attempts)[0]).toBeGreaterThanOrEqual(SEND_UNKNOWN_WAIT_MS - 100);
    expect(bot.sentTexts(p.from)).toEqual([p.reply]);
    expect(await bot.metricDeltas(before)).toEqual({ [POSSIBLE_DUPLICATES]: 1 });
  }, 60_000);

  it('131026 (permanent): one attempt, no retry storm, dead-lettered', async () => {
    const p = patient();
    const before = await bot.metrics([deadLettered('send_permanent'), DEAD_TURNS]);
    bot.graph.enqueue({ kind: 'graph-error', code: 131026, message: 'Message undeliverable' });
    await bot.post(textPayload({ from: p.from, text: p.text }));
    await bot.graph.waitForSends(1, 30_000);
    await bot.waitQuiet();
    // Longer than any send backoff: a retry would have shown up by now.
    await sleep(SEND_UNKNOWN_WAIT_MS);

    expect(attemptsOf(p.reply).map((a) => a.behaviour)).toEqual(['graph-error']);
    expect(bot.graph.sends()).toHaveLength(1);
    expect(bot.sentTexts(p.from)).toEqual([]);
    expect(await bot.metricDeltas(before)).toEqual({ [deadLettered('send_permanent')]: 1, [DEAD_TURNS]: 1 });
    expect(await deadEntries(p.from)).toEqual([expect.objectContaining({ reason: 'send_permanent', code: 131026 })]);
  }, 60_000);

  it('131047 (window closed) without a re-engagement template: nothing dead-lettered, the chat handed over and flagged', async () => {
    const p = patient();
    const ESCALATED = 'tawasul_escalations_total{trigger="window_closed"}';
    const ESCALATED_TURNS = 'tawasul_turns_total{outcome="escalated"}';
    const FOUND = 'tawasul_window_closed_total{source="send"}';
    const before = await bot.metrics([deadLettered('window_closed'), ESCALATED, DEAD_TURNS, ESCALATED_TURNS, FOUND]);
    bot.graph.enqueue({ kind: 'graph-error', code: 131047, message: 'Re-engagement message' });
    await bot.post(textPayload({ from: p.from, text: p.text }));
    await bot.graph.waitForSends(1, 30_000);
    await bot.waitQuiet();

    expect(attemptsOf(p.reply).map((a) => a.behaviour)).toEqual(['graph-error']);
    expect(bot.graph.sends()).toHaveLength(1);
    expect(await bot.metricDeltas(before)).toEqual({
      [deadLettered('window_closed')]: 0,
      [DEAD_TURNS]: 0,
      [ESCALATED]: 1,
      [ESCALATED_TURNS]: 1,
      [FOUND]: 1,
    });
    expect(await deadEntries(p.from)).toEqual([]);
    expect(await bot.redis.hget(`${root()}:chat:${laneOf(p.from)}:state`, 'windowClosed')).toBe('1');
    expect(await bot.redis.hget(`${root()}:chat:${laneOf(p.from)}:handoff`, 'state')).toBe('human');
  }, 60_000);

  it('190 (expired token): the config alert is raised on the worker that saw it, the reply goes out after the fix', async () => {
    const p = patient();
    const ALERT = 'tawasul_config_alert{code="190"}';
    bot.graph.enqueue({
      kind: 'graph-error',
      code: 190,
      httpStatus: 401,
      message: 'Error validating access token: Session has expired',
    });
    await bot.post(textPayload({ from: p.from, text: p.text }));
    await bot.graph.waitForSends(1, 30_000);
    await waitUntil('the config alert', async () => (await bot.metrics([ALERT]))[ALERT] === 1, 10_000);
    expect((await bot.metricsPerWorker([ALERT])).map((m) => m[ALERT]).sort()).toEqual([0, 0, 1]);
    // Configuration errors back off from 30 s: the same part goes out once the token works again.
    await waitUntil('the reply', () => bot.sentTexts(p.from).length > 0, 90_000);
    await bot.waitQuiet();

    const attempts = attemptsOf(p.reply);
    expect(attempts.map((a) => a.behaviour)).toEqual(['graph-error', 'ok']);
    expect(gaps(attempts)[0]).toBeGreaterThanOrEqual(20_000);
    expect(bot.sentTexts(p.from)).toEqual([p.reply]);
  }, 150_000);
});
