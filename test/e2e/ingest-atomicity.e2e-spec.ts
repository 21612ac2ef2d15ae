import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { INGEST_SCRIPT } from '../../src/queue/ingest.script';
import { chatLane } from '../../src/queue/lanes';
import { freshWamid, textPayload } from '../utils/meta-payloads';
import { parseCommand, startRespProxy, type CutMode, type RespProxy, type SeenCommand } from '../utils/resp-proxy';
import { startTestApp, type TestApp } from '../utils/test-app';
import { TEST_PHONE_NUMBER_ID } from '../utils/test-env';

/**
 * Dedup and enqueue as one atomic step (docs/architecture.md §2), for real: a Redis connection cut
 * at any command of an ingest, before Redis ran it or after (reply lost), never loses a message
 * and never stores it twice once Meta retries.
 *
 * The app talks to the real Redis through a RESP proxy that cuts every connection at the k-th
 * command. What k hits (measured on this code base; the test prints the table it saw):
 *
 *   k | command                                              | 'before'            | 'after'
 *   1 | EVALSHA ingest script (dedup + inbox + pending)      | 503, nothing stored | 503, item stored
 *   2 | EVALSHA BullMQ addStandardJob, the wake-up (producer) | 200 (best effort)   | 200
 *
 * After a cut the next script call on a fresh connection is an EVAL (ioredis forgets which scripts
 * it loaded), which is why both spellings are recognised.
 */

const INGEST_TIMEOUT_MS = 500;
const RETRY_DEADLINE_MS = 10_000;
const INGEST_SHA = createHash('sha1').update(INGEST_SCRIPT).digest('hex');
const upstreamUrl = new URL(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379');

function isIngestScript(c: SeenCommand): boolean {
  if (c.name === 'EVALSHA') return c.args[0] === INGEST_SHA;
  return c.name === 'EVAL' && INGEST_SCRIPT.startsWith(c.args[0].replace(/\.\.\.$/, ''));
}

function describeCommand(c: SeenCommand, root: string): string {
  const who = c.connectionName ?? `connection ${c.connection}`;
  if (c.name !== 'EVALSHA' && c.name !== 'EVAL') return `${c.name} on ${who}`;
  if (isIngestScript(c)) return `${c.name} ingest script on ${who}`;
  return `${c.name} BullMQ script (KEYS[1]=${(c.args[2] ?? '').replace(root, '')}) on ${who}`;
}

const randomSender = (): string => `9715${Math.floor(Math.random() * 1e8)}`.padEnd(12, '0');

interface CaseResult {
  k: number;
  mode: CutMode;
  hit: string;
  first: number;
  attempts: number;
}

describe('ingest atomicity with Redis connections cut at every command', () => {
  let proxy: RespProxy;
  let t: TestApp;
  /** Straight to Redis, around the proxy: assertions must not be cut nor counted. */
  let direct: Redis;
  let links = 0;
  let n = 0;
  const results: CaseResult[] = [];

  beforeAll(async () => {
    proxy = await startRespProxy({ host: upstreamUrl.hostname, port: Number(upstreamUrl.port || 6379) });
    const viaProxy = new URL(upstreamUrl.href);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    // Receiver only: no consumer drains the inboxes under the test's feet.
    t = await startTestApp({
      APP_ROLE: 'receiver',
      REDIS_URL: viaProxy.href,
      INGEST_TIMEOUT_MS: String(INGEST_TIMEOUT_MS),
    });
    direct = new Redis(upstreamUrl.href, { maxRetriesPerRequest: 1 });
    // The first ingest loads scripts and BullMQ's queue metadata: not the steady state measured.
    expect((await t.postSigned(textPayload({ from: randomSender() }))).status).toBe(200);
    await quiet();
    links = proxy.connections;
  });

  afterAll(async () => {
    if (results.length > 0) {
      console.info(
        ['k | mode   | command hit | first answer | posts until 200']
          .concat(results.map((r) => `${r.k} | ${r.mode.padEnd(6)} | ${r.hit} | ${r.first} | ${r.attempts}`))
          .join('\n'),
      );
    }
    await t?.close();
    await proxy?.close();
    direct?.disconnect();
  });

  /** Waits until every app connection is back through the proxy and no command has passed for a while. */
  async function quiet(expectedLinks = 0): Promise<void> {
    const deadline = Date.now() + 10_000;
    let last = proxy.seen;
    let stableSince = Date.now();
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
      if (proxy.seen !== last || proxy.connections < expectedLinks) {
        last = proxy.seen;
        stableSince = Date.now();
      } else if (Date.now() - stableSince >= 250) {
        return;
      }
    }
    throw new Error(`connections did not settle: ${proxy.connections} of ${expectedLinks}`);
  }

  async function copiesOf(lane: string, wamid: string): Promise<number> {
    const raw = await direct.lrange(t.keys.inbox(lane), 0, -1);
    return raw.map((r) => JSON.parse(r) as { raw: { id: string } }).filter((item) => item.raw.id === wamid).length;
  }

  it('measures the commands one ingest of a fresh message sends', async () => {
    const sequences: string[][] = [];
    // The last message is large (≈ 300 KB): its script call crosses many TCP chunks and must still
    // count as one command, or the proxy would cut at the wrong place.
    const texts = ['hello', 'hello again', 'x'.repeat(300_000)];
    for (const text of texts) {
      const before = proxy.seen;
      expect((await t.postSigned(textPayload({ from: randomSender(), text }))).status).toBe(200);
      sequences.push(proxy.commands.slice(before).map((c) => describeCommand(c, t.config.redisKeyRoot)));
      await quiet(links);
    }
    expect(sequences[1]).toEqual(sequences[0]);
    expect(sequences[2]).toEqual(sequences[0]);
    n = sequences[0].length;
    // The atomic step and the wake-up must both be among them, or the cuts below test nothing.
    expect(sequences[0].some((d) => d.includes('ingest script'))).toBe(true);
    expect(sequences[0].some((d) => d.includes('BullMQ script'))).toBe(true);
  });

  it.each<CutMode>(['before', 'after'])(
    'cut %s the k-th command, for every k of one ingest: 200 or 503, then one item after Meta retries',
    async (mode) => {
      expect(n).toBeGreaterThan(0);
      for (let k = 1; k <= n; k++) {
        const wamid = freshWamid();
        const sender = randomSender();
        const lane = chatLane(TEST_PHONE_NUMBER_ID, sender);
        const payload = JSON.stringify(textPayload({ id: wamid, from: sender }));
        const where = `k=${k} mode=${mode}`;

        await quiet(links);
        const cutsBefore = proxy.cuts.length;
        proxy.arm(k, mode);
        const first = (await t.postSigned(payload)).status;
        proxy.disarm();
        expect({ where, cuts: proxy.cuts.length - cutsBefore }).toEqual({ where, cuts: 1 });
        const hit = proxy.cuts[proxy.cuts.length - 1].command;
        expect({ where, first, allowed: [200, 503].includes(first) }).toEqual({ where, first, allowed: true });

        const storedBeforeRetry = await copiesOf(lane, wamid);
        if (first === 200) {
          // 200 promises durability: the item must be there before Meta would ever retry.
          expect({ where, storedBeforeRetry }).toEqual({ where, storedBeforeRetry: 1 });
          expect(await direct.zscore(t.keys.pending, lane)).not.toBeNull();
        }
        if (isIngestScript(hit)) {
          // Proof that the cut happened where intended: dropped means not run, 'after' means run.
          expect({ where, storedBeforeRetry }).toEqual({ where, storedBeforeRetry: mode === 'before' ? 0 : 1 });
        }

        // Meta's retry: the identical bytes until a 200 (Meta also redelivers after a 200).
        let attempts = 0;
        let status = first;
        const deadline = Date.now() + RETRY_DEADLINE_MS;
        do {
          attempts++;
          status = (await t.postSigned(payload)).status;
          expect({ where, status, allowed: [200, 503].includes(status) }).toEqual({ where, status, allowed: true });
          if (status !== 200) await new Promise((r) => setTimeout(r, 50));
        } while (status !== 200 && Date.now() < deadline);
        expect({ where, status }).toEqual({ where, status: 200 });

        expect({ where, copies: await copiesOf(lane, wamid) }).toEqual({ where, copies: 1 });
        expect({ where, pending: await direct.zscore(t.keys.pending, lane) }).toEqual({
          where,
          pending: expect.any(String) as string,
        });
        results.push({ k, mode, hit: describeCommand(hit, t.config.redisKeyRoot), first, attempts });
      }
    },
  );
});

describe('the RESP proxy parser', () => {
  const encode = (...args: string[]): Buffer =>
    Buffer.from(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);

  it('finds several commands in one chunk', () => {
    const buf = Buffer.concat([encode('CLIENT', 'SETNAME', 'x'), encode('INFO'), encode('GET', 'k\r\nv')]);
    const names: string[][] = [];
    for (let pos = 0, parsed = parseCommand(buf, 0); parsed; pos = parsed.end, parsed = parseCommand(buf, pos)) {
      names.push(parsed.args.map((a) => a.toString()));
    }
    expect(names).toEqual([['CLIENT', 'SETNAME', 'x'], ['INFO'], ['GET', 'k\r\nv']]);
  });

  it('waits for the rest of a command split at any byte', () => {
    const whole = encode('EVALSHA', 'abc', '1', '{p}:k', 'ünïcode');
    for (let cut = 0; cut < whole.length; cut++) {
      expect({ cut, parsed: parseCommand(whole.subarray(0, cut), 0) }).toEqual({ cut, parsed: undefined });
    }
    expect(parseCommand(whole, 0)?.end).toBe(whole.length);
  });
});
