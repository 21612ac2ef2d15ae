import { createServer } from 'node:net';

/**
 * The two things every test and benchmark needs before it starts anything: a free port, and a way
 * to wait for a condition without a fixed sleep. One of each, for test/ and bench/ alike.
 */

/** A port nobody listens on right now (the usual small race with whoever binds it next). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/**
 * Polls `check` every `pollMs` until it holds; rejects after `timeoutMs` naming `what`. Benchmarks
 * that time an event poll faster, so the poll adds little to what they measure.
 */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  pollMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
