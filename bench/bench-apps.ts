/**
 * What the benchmarks that run the built app share: free ports, starting dist/main.js in a role,
 * signed webhook posts, percentiles.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';

export const SECRET = 'bench_app_secret';
export const PHONE_NUMBER_ID = '100000000000001';

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export function startApp(
  role: string,
  env: Record<string, string>,
): { child: ChildProcess; url: string; ready: Promise<void> } {
  const child = spawn(process.execPath, [join(__dirname, '..', 'dist', 'main.js'), `--role=${role}`], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${env.PORT}`;
  const ready = (async () => {
    for (let i = 0; i < 300; i++) {
      try {
        if ((await fetch(`${url}/health/ready`)).status === 200) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${role} did not become ready`);
  })();
  return { child, url, ready };
}

export function signedBody(from: string, text: string): { body: string; signature: string } {
  const body = JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [
      {
        id: '1',
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: '15550001111', phone_number_id: PHONE_NUMBER_ID },
              contacts: [{ profile: { name: 'Bench' }, wa_id: from }],
              messages: [
                {
                  from,
                  id: `wamid.B${randomBytes(8).toString('hex')}`,
                  timestamp: String(Math.floor(Date.now() / 1000)),
                  type: 'text',
                  text: { body: text },
                },
              ],
            },
          },
        ],
      },
    ],
  });
  return { body, signature: `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}` };
}

export async function post(url: string, from: string, text: string): Promise<number> {
  const { body, signature } = signedBody(from, text);
  const res = await fetch(`${url}/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature },
    body,
  });
  await res.arrayBuffer();
  return res.status;
}

export const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

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
