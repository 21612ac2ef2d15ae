/**
 * What the benchmarks that run the built app share: starting and stopping it (appEntry()) in a role,
 * signed webhook posts (one message, or a batch of messages and statuses as Meta batches them),
 * the process's memory, Redis command counts. Free ports, percentiles and prefix clean-up come from
 * load.harness.ts, so that every bench does each of these one way.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type Redis } from 'ioredis';
import { waitUntil } from '../test/utils/wait';
import { appEntry, freePort, percentile } from './load.harness';

export { freePort, percentile };

export const SECRET = 'bench_app_secret';
export const PHONE_NUMBER_ID = '100000000000001';

export interface BenchApp {
  child: ChildProcess;
  url: string;
  ready: Promise<void>;
}

/** `nodeArgs`: node flags before the entry point (memory.bench.ts exposes a full GC with them). */
export function startApp(role: string, env: Record<string, string>, nodeArgs: string[] = []): BenchApp {
  const child = spawn(process.execPath, [...nodeArgs, appEntry(), `--role=${role}`], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${env.PORT}`;
  const ready = (async () => {
    for (let i = 0; i < 300; i++) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${role} exited before it was ready`);
      try {
        if ((await fetch(`${url}/health/ready`)).status === 200) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${role} did not become ready`);
  })();
  // A caller that gives up before awaiting `ready` must not leave an unhandled rejection behind.
  ready.catch(() => undefined);
  return { child, url, ready };
}

/** SIGTERM (or `signal`), SIGKILL after `timeoutMs`; resolves once the process is gone. */
export async function stopApp(app: BenchApp, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<void> {
  const { child } = app;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

export interface InboundMessage {
  from: string;
  text: string;
  /** Defaults to a fresh wamid: the ingest path, never the duplicate one. */
  id?: string;
}

export interface OutboundStatus {
  /** The wamid the Graph API answered for the send. */
  id: string;
  status: 'sent' | 'delivered' | 'read';
  recipient: string;
}

const freshWamid = (): string => `wamid.B${randomBytes(8).toString('hex')}`;

/**
 * One signed Meta webhook: every message and status in its own change, as Meta batches updates
 * (up to 1000 in one POST). Signed over exactly the bytes returned.
 */
export function signedBatch(
  messages: readonly InboundMessage[],
  statuses: readonly OutboundStatus[] = [],
): { body: string; signature: string } {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const metadata = { display_phone_number: '15550001111', phone_number_id: PHONE_NUMBER_ID };
  const changes = [
    ...messages.map((m) => ({
      field: 'messages',
      value: {
        messaging_product: 'whatsapp',
        metadata,
        contacts: [{ profile: { name: 'Bench' }, wa_id: m.from }],
        messages: [{ from: m.from, id: m.id ?? freshWamid(), timestamp, type: 'text', text: { body: m.text } }],
      },
    })),
    ...statuses.map((s) => ({
      field: 'messages',
      value: {
        messaging_product: 'whatsapp',
        metadata,
        statuses: [
          {
            id: s.id,
            status: s.status,
            timestamp,
            recipient_id: s.recipient,
            // A reply inside the customer-service window: what Meta reports for it.
            pricing: { billable: false, pricing_model: 'PMP', category: 'service', type: 'free_customer_service' },
          },
        ],
      },
    })),
  ];
  const body = JSON.stringify({ object: 'whatsapp_business_account', entry: [{ id: '1', changes }] });
  return { body, signature: `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}` };
}

export function signedBody(from: string, text: string): { body: string; signature: string } {
  return signedBatch([{ from, text }]);
}

async function postSigned({ body, signature }: { body: string; signature: string }, url: string): Promise<number> {
  const res = await fetch(`${url}/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature },
    body,
  });
  await res.arrayBuffer();
  return res.status;
}

export async function post(url: string, from: string, text: string): Promise<number> {
  return postSigned(signedBody(from, text), url);
}

/**
 * Posts messages and statuses as batched signed webhooks, `batchSize` updates per POST and at most
 * `inFlight` POSTs at once: thousands of chats in seconds, without the load generator's own HTTP
 * overhead deciding the pace. Throws on any answer but 200.
 */
export async function postBatched(
  url: string,
  updates: { messages?: readonly InboundMessage[]; statuses?: readonly OutboundStatus[] },
  batchSize = 50,
  inFlight = 4,
): Promise<void> {
  const bodies: { body: string; signature: string }[] = [];
  const messages = updates.messages ?? [];
  const statuses = updates.statuses ?? [];
  for (let i = 0; i < messages.length; i += batchSize) bodies.push(signedBatch(messages.slice(i, i + batchSize)));
  for (let i = 0; i < statuses.length; i += batchSize) bodies.push(signedBatch([], statuses.slice(i, i + batchSize)));
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < bodies.length) {
      const status = await postSigned(bodies[next++], url);
      if (status !== 200) throw new Error(`POST /webhook answered ${status}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, bodies.length) }, lane));
}

/**
 * Resident and peak resident memory of a process, in bytes (VmRSS and VmHWM of /proc/<pid>/status):
 * read from outside, so it costs the process nothing and needs nothing of the app.
 */
export function processMemory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kib('VmRSS') * 1024, peak: kib('VmHWM') * 1024 };
}

/**
 * One gauge of the app's /metrics (prom-client's default process and Node.js metrics are
 * registered): e.g. nodejs_heap_size_used_bytes. NaN when it is not there.
 */
export async function scrapeMetric(url: string, name: string): Promise<number> {
  const res = await fetch(`${url}/metrics`);
  const text = await res.text();
  return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([\\d.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN);
}

/** Calls per Redis command so far (INFO commandstats): differences of two readings count the work between. */
export async function commandCalls(redis: Redis): Promise<Map<string, number>> {
  const info = await redis.info('commandstats');
  return new Map([...info.matchAll(/cmdstat_([\w|]+):calls=(\d+)/g)].map((m) => [m[1], Number(m[2])]));
}

/** Calls per turn between two readings: the total and the most frequent commands. */
export function commandsPerTurn(
  before: Map<string, number>,
  after: Map<string, number>,
  turns: number,
  top = 8,
): { total: number; top: string } {
  const used = [...after]
    .map(([name, calls]) => [name, calls - (before.get(name) ?? 0)] as const)
    .filter(([, c]) => c > 0);
  const total = used.reduce((sum, [, c]) => sum + c, 0) / turns;
  const most = used
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, c]) => `${name} ${(c / turns).toFixed(1)}`)
    .join(', ');
  return { total, top: most };
}

/** waitUntil, polling every 20 ms: the benchmarks time what they wait for. */
export const until = (what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> =>
  waitUntil(what, check, timeoutMs, 20);

/** BENCH_QUICK=1: short runs for a smoke test of the scripts; their figures mean little. */
export const quickMode = (): boolean => process.env.BENCH_QUICK === '1';

/**
 * A bench's script ends here: once the run is done, exit with process.exitCode (0 unless the run set
 * it) — some client libraries keep sockets open for a while after close, and the figures are out.
 * On an error, print `describe(err)` and exit 1.
 */
export function exitWhenDone(done: Promise<unknown>, describe: (err: Error) => unknown = (err) => err): void {
  done.then(
    () => process.exit(),
    (err: Error) => {
      console.error(describe(err));
      process.exit(1);
    },
  );
}

/**
 * The environment of the built app against the fake Graph API and fake LLM: Meta provider with the
 * bench secret, no debounce, no mark-read, quiet logs. `extra` adds or overrides variables.
 */
export function benchEnv(
  redisUrl: string,
  prefix: string,
  fakes: { graphUrl: string; llmUrl: string },
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    NODE_ENV: 'test',
    REDIS_URL: redisUrl,
    REDIS_PREFIX: prefix,
    BSP_PROVIDER: 'meta',
    WHATSAPP_APP_SECRET: SECRET,
    WHATSAPP_VERIFY_TOKEN: 'bench',
    WHATSAPP_PHONE_NUMBER_ID: PHONE_NUMBER_ID,
    META_ACCESS_TOKEN: 'bench-token',
    META_GRAPH_URL: fakes.graphUrl,
    LLM_PROVIDER: 'openai',
    LLM_BASE_URL: fakes.llmUrl,
    TURN_DEBOUNCE_MS: '0',
    MARK_READ: 'false',
    LOG_LEVEL: 'error',
    SHUTDOWN_DRAIN_MS: '0',
    ...extra,
  };
}
