import { chatLane } from '../../src/queue/lanes';
import { freshWamid, textPayload } from '../utils/meta-payloads';
import { killAllPrivateRedis, startPrivateRedis, type PrivateRedis } from '../utils/private-redis';
import { inboxItems, startTestApp, type TestApp } from '../utils/test-app';
import { TEST_PHONE_NUMBER_ID } from '../utils/test-env';

/**
 * The webhook's 503, the probes and the connection kinds (docs/operations.md): a Redis that goes
 * away — killed, or frozen with SIGSTOP — gets a fast 503 from the webhook, a 503 from readiness
 * within 2 s, never a failed liveness, and the app recovers by itself when Redis returns. Meta's
 * retry of a refused message is stored once.
 */

const INGEST_TIMEOUT_MS = 500;
/** Event-loop and HTTP overhead allowed on top of INGEST_TIMEOUT_MS. */
const ANSWER_MARGIN_MS = 300;
const READY_LIMIT_MS = 2000;
const RECOVERY_DEADLINE_MS = 15_000;

describe('Redis outage: stopped or frozen', () => {
  let redis: PrivateRedis;
  let t: TestApp;
  let unavailableAnswers = 0;
  let unavailableBefore = 0;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    t = await startTestApp({
      APP_ROLE: 'receiver',
      REDIS_URL: redis.url,
      INGEST_TIMEOUT_MS: String(INGEST_TIMEOUT_MS),
    });
    unavailableBefore = await unavailableCount();
  });

  afterAll(async () => {
    redis?.thaw();
    try {
      await t?.close();
    } finally {
      await redis?.dispose();
      killAllPrivateRedis();
    }
  });

  async function get(path: string): Promise<{ status: number; ms: number }> {
    const started = Date.now();
    const res = await fetch(`${t.url}${path}`);
    await res.arrayBuffer();
    return { status: res.status, ms: Date.now() - started };
  }

  async function post(payload: string): Promise<{ status: number; ms: number }> {
    const started = Date.now();
    const res = await t.postSigned(payload);
    await res.arrayBuffer();
    if (res.status === 503) unavailableAnswers++;
    return { status: res.status, ms: Date.now() - started };
  }

  async function unavailableCount(): Promise<number> {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    const match = /^tawasul_webhook_requests_total\{outcome="unavailable"\} (\d+)/m.exec(text);
    if (!match) throw new Error('tawasul_webhook_requests_total{outcome="unavailable"} missing from /metrics');
    return Number(match[1]);
  }

  /** Polls /health/ready from `since` until it answers 503; liveness must stay 200 meanwhile. */
  async function readyTurnsUnavailable(since: number): Promise<number> {
    for (;;) {
      const ready = await get('/health/ready');
      expect((await get('/health/live')).status).toBe(200);
      const elapsed = Date.now() - since;
      if (ready.status === 503) return elapsed;
      expect(ready.status).toBe(200);
      if (elapsed > READY_LIMIT_MS) return elapsed;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** After Redis returns: ready 200, then Meta's retry of the refused payload 200, no restart. */
  async function recovers(refused: string): Promise<void> {
    const deadline = Date.now() + RECOVERY_DEADLINE_MS;
    let ready = 0;
    while (ready !== 200 && Date.now() < deadline) {
      ready = (await get('/health/ready')).status;
      expect((await get('/health/live')).status).toBe(200);
      if (ready !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(ready).toBe(200);
    let answer = 0;
    while (answer !== 200 && Date.now() < deadline) {
      answer = (await post(refused)).status;
      expect([200, 503]).toContain(answer);
      if (answer !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(answer).toBe(200);
  }

  async function copiesOf(sender: string, wamid: string): Promise<number> {
    const items = await inboxItems(t, chatLane(TEST_PHONE_NUMBER_ID, sender));
    return items.filter((item) => (item.raw as { id: string }).id === wamid).length;
  }

  /** The outage itself: a refused webhook, fast; readiness down within 2 s; liveness up. */
  async function duringOutage(since: number, refused: string): Promise<void> {
    // Probes run while the webhook waits, as a kubelet's would.
    const [answer, readyAfter] = await Promise.all([post(refused), readyTurnsUnavailable(since)]);
    expect(answer.status).toBe(503);
    expect(answer.ms).toBeLessThan(INGEST_TIMEOUT_MS + ANSWER_MARGIN_MS);
    expect(readyAfter).toBeLessThanOrEqual(READY_LIMIT_MS);
    // Still refused, still fast, a while into the outage (not only the first request).
    const again = await post(refused);
    expect(again.status).toBe(503);
    expect(again.ms).toBeLessThan(INGEST_TIMEOUT_MS + ANSWER_MARGIN_MS);
  }

  /** After recovery: the refused message is stored once, and new messages flow again. */
  async function afterRecovery(sender: string, refusedId: string, refused: string): Promise<void> {
    expect(await post(refused)).toMatchObject({ status: 200 });
    expect(await copiesOf(sender, refusedId)).toBe(1);
    const fresh = freshWamid();
    expect(await post(JSON.stringify(textPayload({ id: fresh, from: sender })))).toMatchObject({ status: 200 });
    expect(await copiesOf(sender, fresh)).toBe(1);
  }

  it('is up before the outage', async () => {
    expect((await get('/health/ready')).status).toBe(200);
    expect((await get('/health/live')).status).toBe(200);
  });

  it('Redis stopped: 503 fast, ready 503 within 2 s, live 200; recovers after a restart on the same port', async () => {
    const sender = '971500000101';
    const refusedId = freshWamid();
    const refused = JSON.stringify(textPayload({ id: refusedId, from: sender }));
    await redis.stop();
    await duringOutage(Date.now(), refused);

    await redis.restart();
    await recovers(refused);
    await afterRecovery(sender, refusedId, refused);
  });

  it('Redis frozen (SIGSTOP): 503 fast, ready 503 within 2 s, live 200; recovers after SIGCONT', async () => {
    const sender = '971500000102';
    const refusedId = freshWamid();
    const refused = JSON.stringify(textPayload({ id: refusedId, from: sender }));
    // A message that went in before the freeze must still be there, once, afterwards.
    const before = freshWamid();
    expect(await post(JSON.stringify(textPayload({ id: before, from: sender })))).toMatchObject({ status: 200 });

    redis.freeze();
    try {
      await duringOutage(Date.now(), refused);
    } finally {
      redis.thaw();
    }
    // The frozen Redis kept the refused script in its socket buffer and may run it on SIGCONT: the
    // retry must then find it already stored, never store it a second time.
    await recovers(refused);
    await afterRecovery(sender, refusedId, refused);
    expect(await copiesOf(sender, before)).toBe(1);
  });

  it('counts every 503 as tawasul_webhook_requests_total{outcome="unavailable"}', async () => {
    expect(unavailableAnswers).toBeGreaterThanOrEqual(4);
    expect((await unavailableCount()) - unavailableBefore).toBe(unavailableAnswers);
  });
});
