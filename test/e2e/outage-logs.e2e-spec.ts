import { textPayload } from '../utils/meta-payloads';
import { killAllPrivateRedis, startPrivateRedis, type PrivateRedis } from '../utils/private-redis';
import { signBody } from '../utils/sign';
import { httpStatus, killSpawnedApps, spawnApp, type SpawnedApp, waitUntil } from '../utils/spawn-app';

/**
 * What an operator sees while Redis is down: JSON log lines only (never a raw stack trace), the
 * outage told once when it starts, at most periodically while it lasts, once when it ends; and
 * the app ready again afterwards, without a restart.
 */

jest.setTimeout(60_000);

const OUTAGE_MS = 6000;
// Sends must not leave this machine (nothing listens on port 9).
const OFFLINE_PEERS = { META_GRAPH_URL: 'http://127.0.0.1:9', D360_BASE_URL: 'http://127.0.0.1:9' };

type Role = 'all' | 'worker';

interface Run {
  app: SpawnedApp;
  /** Output written from just before the outage until the app was ready again. */
  lines: string[];
  readyAgain: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function parse(line: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const nonEmpty = (text: string): string[] => text.split('\n').filter((l) => l.trim() !== '');

async function outageOf(role: Role): Promise<Run> {
  const redis: PrivateRedis = await startPrivateRedis();
  try {
    const app = await spawnApp({ env: { ...OFFLINE_PEERS, APP_ROLE: role, REDIS_URL: redis.url, LOG_LEVEL: 'info' } });
    await app.waitForLive();
    await waitUntil('ready 200', async () => (await httpStatus(`${app.url}/health/ready`)) === 200, 30_000);
    await redis.stop();
    // Meanwhile the app is used as usual: probes, and for a receiver webhooks (refused with 503).
    const until = Date.now() + OUTAGE_MS;
    while (Date.now() < until) {
      await httpStatus(`${app.url}/health/ready`);
      await httpStatus(`${app.url}/health/live`);
      if (role === 'all') {
        const raw = JSON.stringify(textPayload());
        await httpStatus(`${app.url}/webhook`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-hub-signature-256': signBody(raw) },
          body: raw,
        });
      }
      await sleep(250);
    }
    await redis.restart();
    const readyAgain = await waitUntil(
      'ready 200 again',
      async () => (await httpStatus(`${app.url}/health/ready`)) === 200,
      15_000,
    ).then(
      () => true,
      () => false,
    );
    // Lines that come right after recovery (the "restored" one may trail readiness a little).
    await sleep(500);
    return { app, lines: [...nonEmpty(app.stdout()), ...nonEmpty(app.stderr())], readyAgain };
  } finally {
    await redis.dispose();
  }
}

afterAll(async () => {
  await killSpawnedApps();
  killAllPrivateRedis();
});

describe.each<Role>(['all', 'worker'])('role %s, Redis stopped for 6 s then restarted', (role) => {
  let run: Run;
  beforeAll(async () => {
    run = await outageOf(role);
  });

  const describeRun = (): string => `\n--- stdout ---\n${run.app.stdout()}\n--- stderr ---\n${run.app.stderr()}`;

  it('writes JSON log lines only, on stdout and on stderr', () => {
    const notJson = run.lines.filter((l) => parse(l) === undefined);
    if (notJson.length > 0) throw new Error(`${notJson.length} lines are not JSON${describeRun()}`);
    expect(run.app.stderr().trim()).toBe('');
  });

  it('tells the outage once when it starts, at most periodically while it lasts, once when it ends', () => {
    const events = run.lines.map(parse).filter((e): e is Record<string, unknown> => e !== undefined);
    const about = (pattern: RegExp): Record<string, unknown>[] => events.filter((e) => pattern.test(String(e.msg)));
    const lost = about(/redis connection lost/);
    const still = about(/redis still unreachable/);
    const restored = about(/redis connection restored/);
    const context = describeRun();
    expect({ lost: lost.length, restored: restored.length, context }).toEqual({ lost: 1, restored: 1, context });
    expect(still.length).toBeLessThanOrEqual(2);
    expect(lost[0].level).toBe(40); // warn
    expect(restored[0].level).toBe(30); // info
    expect(events.indexOf(restored[0])).toBeGreaterThan(events.indexOf(lost[0]));
    // How long it lasted: about the time Redis was away.
    expect(Number(restored[0].downForMs)).toBeGreaterThanOrEqual(OUTAGE_MS - 1000);
    // No line per reconnect attempt: a handful of warnings at most over the whole outage. (Each
    // refused webhook is the receiver's own business, logged under its own policy.)
    const warnings = events.filter((e) => Number(e.level) >= 40 && e.component !== 'webhook');
    if (warnings.length > 5) throw new Error(`${warnings.length} warnings and errors${context}`);
  });

  it('is ready again after Redis returns, without a restart', () => {
    expect(run.readyAgain).toBe(true);
    expect(run.app.running()).toBe(true);
  });
});
