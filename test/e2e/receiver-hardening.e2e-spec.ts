import { connect } from 'node:net';
import { Agent, request as httpRequest } from 'node:http';
import { networkInterfaces } from 'node:os';
import { chatLane } from '../../src/queue/lanes';
import { envelope, freshWamid, nowSeconds, textMessage } from '../utils/meta-payloads';
import { freePort, httpStatus, killSpawnedApps, spawnApp, type SpawnedApp } from '../utils/spawn-app';
import { inboxItems, startTestApp, type TestApp } from '../utils/test-app';
import { TEST_PHONE_NUMBER_ID } from '../utils/test-env';

/*
 * The receiver against hostile or careless clients and operators: where it listens (HOST, the
 * sandbox), production refusing the sandbox, clients that send slowly, ids that do not look like
 * WhatsApp's, and JSON bodies carrying `__proto__`.
 */

// Spawned apps start through ts-node: seconds of CPU each.
jest.setTimeout(120_000);

const PN = TEST_PHONE_NUMBER_ID;

/** A non-loopback IPv4 address of this machine, to see whether the app is reachable from elsewhere. */
function otherIPv4(): string | undefined {
  for (const addresses of Object.values(networkInterfaces())) {
    const found = addresses?.find((a) => a.family === 'IPv4' && !a.internal);
    if (found) return found.address;
  }
  return undefined;
}
const OTHER_IPV4 = otherIPv4();
const withOtherAddress = OTHER_IPV4 ? it : it.skip;
const OTHER = OTHER_IPV4 ?? '(SKIPPED: this machine has no non-loopback IPv4 address)';

/** Opens a TCP connection and reports `connected` or the error code (ECONNREFUSED…). */
function tcpConnect(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (outcome: string): void => {
      socket.destroy();
      resolve(outcome);
    };
    socket.setTimeout(3000, () => done('timeout'));
    socket.once('connect', () => done('connected'));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
  });
}

const spawned: SpawnedApp[] = [];
async function spawn(env: Record<string, string | undefined>): Promise<SpawnedApp> {
  const app = await spawnApp({ env });
  spawned.push(app);
  return app;
}

afterAll(async () => {
  await killSpawnedApps();
  await Promise.all(spawned.map((a) => a.deleteRedisKeys()));
});

describe('HOST and the sandbox', () => {
  const sandbox = { BSP_PROVIDER: 'sandbox', WHATSAPP_APP_SECRET: undefined, WHATSAPP_VERIFY_TOKEN: undefined };

  describe('BSP_PROVIDER=sandbox without HOST', () => {
    let app: SpawnedApp;
    beforeAll(async () => {
      app = await spawn(sandbox);
      await app.waitForLive();
    });
    afterAll(() => app.kill('SIGKILL'));

    it('is reachable on 127.0.0.1', async () => {
      expect(await httpStatus(`http://127.0.0.1:${app.port}/health/live`)).toBe(200);
    });

    withOtherAddress(`is not reachable on this machine's other address ${OTHER}`, async () => {
      expect(await tcpConnect(OTHER_IPV4!, app.port)).toBe('ECONNREFUSED');
    });
  });

  withOtherAddress(`with HOST=0.0.0.0 it is reachable on ${OTHER}`, async () => {
    const app = await spawn({ ...sandbox, HOST: '0.0.0.0' });
    try {
      await app.waitForLive();
      expect(await httpStatus(`http://${OTHER_IPV4}:${app.port}/health/live`)).toBe(200);
    } finally {
      app.kill('SIGKILL');
    }
  });

  it('NODE_ENV=production refuses the sandbox: exit 1, one config line naming BSP_PROVIDER, no stack trace', async () => {
    const app = await spawn({
      ...sandbox,
      NODE_ENV: 'production',
      LLM_PROVIDER: 'offline',
      LOG_HASH_KEY: 'k'.repeat(32),
      MANAGEMENT_PORT: String(await freePort()),
    });
    const exit = await app.waitExit(60_000);
    expect(exit.code).toBe(1);
    const lines = app
      .stderr()
      .split('\n')
      .filter((l) => l.trim() !== '');
    expect(lines).toEqual([
      expect.stringMatching(/^config error: BSP_PROVIDER: sandbox is refused when NODE_ENV=production/),
    ]);
    expect(app.stdout()).not.toMatch(/tawasul started/);
  });
});

describe('slow clients (HTTP_REQUEST_TIMEOUT_MS)', () => {
  const TIMEOUT_MS = 2000;
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({
      APP_ROLE: 'receiver',
      HTTP_REQUEST_TIMEOUT_MS: String(TIMEOUT_MS),
      INGEST_TIMEOUT_MS: '500',
    });
  });
  afterAll(() => t.close());

  interface Trickled {
    /** From the first byte sent to the server closing the connection; undefined: still open at the deadline. */
    closedAfterMs?: number;
    answer: string;
  }

  /** Sends `head`, then one byte of `drip` a second, until the server closes or `deadlineMs` passes. */
  function trickle(head: string, drip: string, deadlineMs: number): Promise<Trickled> {
    const { port } = new URL(t.url);
    return new Promise((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: Number(port) });
      const started = Date.now();
      let answer = '';
      let sent = 0;
      const timer = setInterval(() => {
        if (!socket.destroyed) socket.write(drip[sent++ % drip.length]);
      }, 1000);
      const deadline = setTimeout(() => finish(undefined), deadlineMs);
      const finish = (closedAfterMs: number | undefined): void => {
        clearInterval(timer);
        clearTimeout(deadline);
        socket.destroy();
        resolve({ closedAfterMs, answer });
      };
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString('utf8')));
      socket.on('error', () => undefined);
      socket.on('close', () => finish(Date.now() - started));
      socket.write(head);
    });
  }

  const expectCutAtTheTimeout = ({ closedAfterMs, answer }: Trickled): void => {
    expect(closedAfterMs).toBeDefined();
    // Not earlier (something else cut it) and not much later (Node checks every tenth of the limit).
    expect(closedAfterMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 100);
    expect(closedAfterMs).toBeLessThanOrEqual(TIMEOUT_MS + 1500);
    expect(answer).toMatch(/^(?:$|HTTP\/1\.1 408 )/);
  };

  it('closes a POST /webhook whose 3 MB body arrives a byte a second, and one whose headers do', async () => {
    const signature = `sha256=${'0'.repeat(64)}`;
    const [body, headers] = await Promise.all([
      trickle(
        `POST /webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n` +
          `X-Hub-Signature-256: ${signature}\r\nContent-Length: 3000000\r\n\r\n`,
        '{"object":"whatsapp_business_account"',
        TIMEOUT_MS + 6000,
      ),
      trickle('POST /webhook HTTP/1.1\r\nHost: localhost\r\n', 'X-Slow: aaaaaaaa\r\n', TIMEOUT_MS + 6000),
    ]);
    expectCutAtTheTimeout(body);
    expectCutAtTheTimeout(headers);
  });

  it('still answers a webhook sent at normal speed', async () => {
    const res = await t.postSigned(envelope({ messages: [textMessage({ from: '971500000401' })] }));
    expect(res.status).toBe(200);
  });

  it('keeps an idle keep-alive connection open past both timeouts, and serves the next request on it', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const { port } = new URL(t.url);
    const get = (): Promise<{ status: number; socket: unknown }> =>
      new Promise((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: Number(port), path: '/health/live', agent }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, socket: req.socket }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      const first = await get();
      // connectionTimeout is HTTP_REQUEST_TIMEOUT_MS + INGEST_TIMEOUT_MS = 2.5 s here.
      await new Promise((r) => setTimeout(r, TIMEOUT_MS + 1500));
      const second = await get();
      expect([first.status, second.status]).toEqual([200, 200]);
      expect(second.socket).toBe(first.socket);
    } finally {
      agent.destroy();
    }
  });
});

describe('untrusted ids and JSON (the webhook parser)', () => {
  const KEY = 'receiver-hardening-key';
  const CW_TOKEN = 'cw-token';
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({
      APP_ROLE: 'receiver',
      API_KEYS: KEY,
      CHATWOOT_BASE_URL: 'http://127.0.0.1:9',
      CHATWOOT_WEBHOOK_TOKEN: CW_TOKEN,
    });
  });
  afterAll(() => t.close());

  async function unhandledCount(kind: string): Promise<number> {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`tawasul_unhandled_items_total{kind="${kind}"}`));
    return line ? Number(line.split(' ').pop()) : 0;
  }

  async function allKeys(): Promise<string[]> {
    const pattern = `${t.config.redisKeyRoot.replace(/[{}[\]*?]/g, (c) => `\\${c}`)}*`;
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await t.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      found.push(...batch);
      cursor = next;
    } while (cursor !== '0');
    return found;
  }

  it.each<[string, string, (m: Record<string, unknown>) => Record<string, unknown>]>([
    ['a 300-character message id', 'message_id', (m) => ({ ...m, id: `wamid.${'A'.repeat(294)}` })],
    ['a message id with a colon', 'message_id', (m) => ({ ...m, id: `${freshWamid()}:x` })],
    ['a `from` that is not digits', 'message_sender', (m) => ({ ...m, from: 'x'.repeat(60) })],
    ['a 21-digit `from`', 'message_sender', (m) => ({ ...m, from: '9'.repeat(21) })],
    [
      'a number change to a bad number',
      'message_number_change',
      (m) => ({
        ...m,
        type: 'system',
        text: undefined,
        system: { body: 'changed', wa_id: '971:500000001', type: 'user_changed_number' },
      }),
    ],
  ])('answers 200 for %s, keeps it raw and counted, and queues the good message beside it', async (_, kind, bad) => {
    const good = textMessage({ from: '971500000402' });
    const badMessage = bad(textMessage({ from: '971500000403' }));
    const before = await unhandledCount(kind);
    const res = await t.postSigned(envelope({ messages: [badMessage, good] }));
    expect(res.status).toBe(200);
    expect((await inboxItems(t, chatLane(PN, '971500000402'))).map((i) => i.key)).toContain(`m:${String(good.id)}`);
    const kept = (await t.redis.lrange(t.keys.unhandled, 0, -1)).map(
      (r) => JSON.parse((JSON.parse(r) as { raw: string }).raw) as unknown,
    );
    expect(kept).toContainEqual(JSON.parse(JSON.stringify(badMessage)));
    expect(await unhandledCount(kind)).toBe(before + 1);
    const keys = await allKeys();
    expect(keys.filter((k) => k.includes(String(badMessage.id)) || k.includes(String(badMessage.from)))).toEqual([]);
  });

  it('answers 200 for a status with an oversized id and keeps it raw', async () => {
    const status = {
      id: `wamid.${'B'.repeat(400)}`,
      status: 'read',
      timestamp: nowSeconds(),
      recipient_id: '971500000404',
    };
    const before = await unhandledCount('status');
    expect((await t.postSigned(envelope({ statuses: [status] }))).status).toBe(200);
    expect(await unhandledCount('status')).toBe(before + 1);
    expect((await allKeys()).filter((k) => k.includes('BBBBBBBB'))).toEqual([]);
  });

  describe('`__proto__` and `constructor.prototype` keys are refused like invalid JSON', () => {
    const poisoned = (inner: string): string =>
      `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[]}],${inner}}`;

    it.each([
      ['__proto__', '"__proto__":{"polluted":true}'],
      ['constructor.prototype', '"constructor":{"prototype":{"polluted":true}}'],
    ])('POST /webhook, signed, with %s: 400, nothing stored', async (_, inner) => {
      const keysBefore = (await allKeys()).sort();
      const res = await t.postSigned(poisoned(inner));
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: 'body is not a JSON object' });
      expect((await allKeys()).sort()).toEqual(keysBefore);
    });

    it('POST /chatwoot/webhook with __proto__: 400', async () => {
      const res = await fetch(`${t.url}/chatwoot/webhook?token=${CW_TOKEN}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"event":"conversation_created","__proto__":{"polluted":true}}',
      });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: 'body is not a JSON object' });
    });

    it('POST /v1/messages (the shared JSON parser) with __proto__: 400, and the same body without it is not', async () => {
      const post = (body: string): Promise<Response> =>
        fetch(`${t.url}/v1/messages`, {
          method: 'POST',
          headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
          body,
        });
      const clean = '{"to":"971500000405","text":"Your appointment is confirmed."';
      const refused = await post(`${clean},"__proto__":{"polluted":true}}`);
      expect(refused.status).toBe(400);
      expect(await refused.json()).toMatchObject({ error: 'invalid_body', message: 'body is not valid JSON' });
      expect((await post(`${clean}}`)).status).not.toBe(400);
    });

    it('a `__proto__` inside a string value is just text', async () => {
      const message = textMessage({ from: '971500000406', text: '{"__proto__":{"x":1}}' });
      expect((await t.postSigned(envelope({ messages: [message] }))).status).toBe(200);
      expect(await inboxItems(t, chatLane(PN, '971500000406'))).toHaveLength(1);
    });
  });
});
