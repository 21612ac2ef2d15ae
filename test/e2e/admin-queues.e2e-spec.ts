import { BotCluster } from '../utils/bot-cluster';
import { textPayload } from '../utils/meta-payloads';
import { freePort, httpStatus, spawnApp, waitUntil, type SpawnedApp } from '../utils/spawn-app';
import { startTestApp, type TestApp } from '../utils/test-app';
import { TEST_PHONE_NUMBER_ID } from '../utils/test-env';

/**
 * GET /admin/queues: the BullMQ dashboard on receivers with ADMIN_PASSWORD, behind basic
 * auth, on MANAGEMENT_PORT when set; and a dead letter retried from it, end to end.
 */

const PASSWORD = 'test-admin-password-1234';
const basic = (user: string, password: string): Record<string, string> => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});
const ADMIN = basic('admin', PASSWORD);

async function get(url: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { headers, signal: AbortSignal.timeout(5000) });
}

describe('/admin/queues without ADMIN_PASSWORD', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ ADMIN_PASSWORD: undefined });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('does not exist: 404, with or without credentials', async () => {
    for (const path of ['/admin/queues', '/admin/queues/api/queues']) {
      expect(await httpStatus(`${t.url}${path}`)).toBe(404);
      expect(await httpStatus(`${t.url}${path}`, { headers: ADMIN })).toBe(404);
    }
  });
});

describe('/admin/queues with ADMIN_PASSWORD and no MANAGEMENT_PORT: on the public port', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ ADMIN_PASSWORD: PASSWORD });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('401 asking for basic auth without credentials, with a wrong password or user, or another scheme', async () => {
    const refused = [
      {},
      basic('admin', 'wrong-password'),
      basic('admin', `${PASSWORD}x`),
      basic('root', PASSWORD),
      basic('admin', ''),
      { authorization: `Bearer ${PASSWORD}` },
      { authorization: 'Basic not-base64!' },
    ];
    for (const headers of refused) {
      for (const path of ['/admin/queues', '/admin/queues/api/queues', '/admin/queues/static/images/logo.svg']) {
        const res = await get(`${t.url}${path}`, headers);
        expect({ path, headers, status: res.status }).toEqual({ path, headers, status: 401 });
        expect(res.headers.get('www-authenticate')).toBe('Basic realm="tawasul admin", charset="UTF-8"');
        expect(await res.json()).toEqual({ error: 'unauthorized', message: 'basic authentication required' });
      }
    }
  });

  it('200 with user admin and ADMIN_PASSWORD: the board, its assets, and the turns and dead-letters queues', async () => {
    const page = await get(`${t.url}/admin/queues`, ADMIN);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain('<base href="/admin/queues/"');
    const script = /src="(static\/js\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    expect(await httpStatus(`${t.url}/admin/queues/${script}`, { headers: ADMIN })).toBe(200);

    const api = await get(`${t.url}/admin/queues/api/queues`, ADMIN);
    expect(api.status).toBe(200);
    const { queues } = (await api.json()) as { queues: { name: string; readOnlyMode: boolean }[] };
    expect(queues.map((q) => [q.name, q.readOnlyMode])).toEqual([
      ['turns', true],
      ['dead-letters', false],
    ]);
  });

  it('wake-ups are read only, and no job or job data can be written by hand', async () => {
    const put = (path: string, body?: unknown): Promise<Response> =>
      fetch(`${t.url}/admin/queues/api/queues/${path}`, {
        method: path.endsWith('update-data') ? 'PATCH' : path.endsWith('/add') ? 'POST' : 'PUT',
        headers: { ...ADMIN, ...(body !== undefined && { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    expect((await put('turns/pause')).status).toBe(405);
    expect((await put('turns/empty')).status).toBe(405);
    expect((await put('dead-letters/add', { name: 'send_permanent', data: { items: [] } })).status).toBe(405);
    expect((await put('dead-letters/some-id/update-data', { items: [] })).status).toBe(405);
  });

  it('is not on a worker, even with ADMIN_PASSWORD', async () => {
    const worker = await startTestApp({ ADMIN_PASSWORD: PASSWORD, APP_ROLE: 'worker' });
    try {
      expect(await httpStatus(`${worker.url}/admin/queues`, { headers: ADMIN })).toBe(404);
      expect(await httpStatus(`${worker.url}/metrics`)).toBe(200);
    } finally {
      await worker.close();
    }
  });
});

describe('/admin/queues with MANAGEMENT_PORT: there, and not on the public port', () => {
  let app: SpawnedApp;
  let management: string;

  beforeAll(async () => {
    const port = await freePort();
    management = `http://127.0.0.1:${port}`;
    app = await spawnApp({ env: { APP_ROLE: 'receiver', ADMIN_PASSWORD: PASSWORD, MANAGEMENT_PORT: String(port) } });
    await app.waitForLive();
  }, 60_000);

  afterAll(async () => {
    if (app?.running()) {
      app.kill('SIGKILL');
      await app.waitExit(5000);
    }
    await app?.deleteRedisKeys();
  });

  it('serves the board and /metrics on the management port only', async () => {
    expect(await httpStatus(`${management}/admin/queues`, { headers: ADMIN })).toBe(200);
    expect(await httpStatus(`${management}/admin/queues/api/queues`, { headers: ADMIN })).toBe(200);
    const refused = await get(`${management}/admin/queues`, basic('admin', 'wrong-password'));
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    expect(await httpStatus(`${management}/metrics`)).toBe(200);
    expect(await httpStatus(`${management}/health/live`)).toBe(404);

    expect(await httpStatus(`${app.url}/admin/queues`, { headers: ADMIN })).toBe(404);
    expect(await httpStatus(`${app.url}/admin/queues/api/queues`, { headers: ADMIN })).toBe(404);
    expect(await httpStatus(`${app.url}/metrics`)).toBe(404);
    expect(await httpStatus(`${app.url}/health/live`)).toBe(200);
  });

  it('closes with the app on SIGTERM', async () => {
    app.kill('SIGTERM');
    const exit = await app.waitExit(15_000);
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(await httpStatus(`${management}/metrics`)).toBe(0);
  }, 20_000);
});

interface BoardJob {
  id: string;
  name: string;
  failedReason?: string;
  returnValue?: Record<string, unknown> | null;
  data: { reason: string; lane: string; items: Record<string, unknown>[] };
}

describe('a dead letter retried from the dashboard (receiver and a worker process)', () => {
  let bot: BotCluster;
  let board: string;

  beforeAll(async () => {
    bot = await BotCluster.start({ workers: 1, env: { ADMIN_PASSWORD: PASSWORD } });
    board = `${bot.receiver.url}/admin/queues`;
  }, 120_000);

  afterAll(async () => {
    await bot?.close();
  });

  const failedDeadLetters = async (): Promise<BoardJob[]> => {
    const res = await get(`${board}/api/queues?activeQueue=dead-letters&status=failed&page=1&jobsPerPage=50`, ADMIN);
    expect(res.status).toBe(200);
    const { queues } = (await res.json()) as { queues: { name: string; jobs: BoardJob[] }[] };
    return queues.find((q) => q.name === 'dead-letters')!.jobs;
  };
  const deadLetter = async (id: string): Promise<{ job: BoardJob; status: string }> => {
    const res = await get(`${board}/api/queues/dead-letters/${encodeURIComponent(id)}`, ADMIN);
    expect(res.status).toBe(200);
    return (await res.json()) as { job: BoardJob; status: string };
  };
  /** What the board's Retry button sends: a PUT without a body. */
  const retry = (id: string): Promise<Response> =>
    fetch(`${board}/api/queues/dead-letters/${encodeURIComponent(id)}/retry`, { method: 'PUT', headers: ADMIN });

  it('a reply refused for good (131026) is listed as failed; Retry re-runs the turn and the patient is answered once', async () => {
    const from = '971500170001';
    const lane = `c.${TEST_PHONE_NUMBER_ID}.${from}`;
    const text = `Can I move my appointment to Sunday? (${from})`;
    const reply = `Echo: ${text}`;
    const REPLIED = 'tawasul_turns_total{outcome="replied"}';
    const DEAD = 'tawasul_dead_letters_total{reason="send_permanent"}';
    const before = await bot.metrics([REPLIED, DEAD]);

    bot.graph.enqueue({ kind: 'graph-error', code: 131026, message: 'Message undeliverable' });
    expect((await bot.post(textPayload({ from, text }))).status).toBe(200);
    let job: BoardJob | undefined;
    await waitUntil(
      'the dead letter, failed, on the dashboard',
      async () => (job = (await failedDeadLetters()).find((j) => j.data.lane === lane)) !== undefined,
      30_000,
    );
    await bot.waitQuiet();
    expect(bot.sentTexts(from)).toEqual([]);
    expect(job).toMatchObject({ name: 'send_permanent', data: { reason: 'send_permanent', lane } });
    expect(job!.failedReason).toMatch(/^send_permanent code=131026 turn=[\w-]+ items=1$/);
    // The board shows which items, not what the patient wrote.
    expect(job!.data.items).toEqual([
      { key: expect.stringMatching(/^m:wamid\./), kind: 'message', receivedAt: expect.any(Number) },
    ]);
    expect(JSON.stringify(job)).not.toContain(text);
    expect(await bot.metricDeltas(before)).toEqual({ [REPLIED]: 0, [DEAD]: 1 });

    // The Graph API answers again (the fake's default): retried the way the button does.
    expect((await retry(job!.id)).status).toBe(204);
    await waitUntil('the answer', () => bot.sentTexts(from).length > 0, 30_000);
    await bot.waitQuiet();
    expect(bot.sentTexts(from)).toEqual([reply]);
    await waitUntil(
      'the retried job to complete',
      async () => (await deadLetter(job!.id)).status === 'completed',
      10_000,
    );
    expect((await deadLetter(job!.id)).job.returnValue).toEqual({ requeued: 1, lane });
    expect(await bot.metricDeltas(before)).toEqual({ [REPLIED]: 1, [DEAD]: 1 });

    // Retried again (a completed job can be): the turn is not re-run twice.
    expect((await retry(job!.id)).status).toBe(204);
    await waitUntil(
      'the second retry to complete',
      async () => {
        const { status, job: again } = await deadLetter(job!.id);
        return status === 'completed' && again.returnValue?.alreadyRequeuedAt !== undefined;
      },
      10_000,
    );
    await bot.waitQuiet();
    await new Promise((r) => setTimeout(r, 1000));
    expect(bot.sentTexts(from)).toEqual([reply]);
    expect(await bot.metricDeltas(before)).toEqual({ [REPLIED]: 1, [DEAD]: 1 });

    // Asked twice (the first turn, its re-run), each time with the message once; the history holds
    // it once, with its answer.
    const asked = bot.llm.requests.filter((r) => JSON.stringify(r.body).includes(text));
    expect(asked).toHaveLength(2);
    for (const request of asked) {
      expect(request.body.messages.filter((m) => JSON.stringify(m.content).includes(text))).toHaveLength(1);
    }
    const root = bot.receiver.config.redisKeyRoot;
    const history = (await bot.redis.lrange(`${root}:chat:${lane}:history`, 0, -1)).map(
      (e) => JSON.parse(e) as { role: string; text: string },
    );
    expect(history.map((h) => [h.role, h.text])).toEqual([
      ['user', text],
      ['assistant', reply],
    ]);
  }, 90_000);
});
