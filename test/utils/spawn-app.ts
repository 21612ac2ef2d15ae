import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import { killOnExit } from './kill-on-exit';
import { deleteKeys } from './test-app';
import { testEnv } from './test-env';
import { freePort, waitUntil } from './wait';

const REPO_ROOT = resolve(__dirname, '..', '..');

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** From the last kill() (or from the spawn when the process ended by itself) to the exit. */
  elapsedMs: number;
}

export interface SpawnedApp {
  pid: number;
  port: number;
  url: string;
  /** The exact environment the child got (nothing else from this process leaks into it). */
  env: Record<string, string>;
  stdout(): string;
  stderr(): string;
  /** The child is still running. */
  running(): boolean;
  /** Polls GET /health/live until 200; fails early, with the child's output, when it exits. */
  waitForLive(timeoutMs?: number): Promise<void>;
  /** Waits until stdout or stderr matches. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
  kill(signal?: NodeJS.Signals): void;
  waitExit(timeoutMs?: number): Promise<ExitInfo>;
  /** Deletes the child's keys (its REDIS_PREFIX) on `redisUrl`, by default the child's REDIS_URL. */
  deleteRedisKeys(redisUrl?: string): Promise<void>;
}

export interface SpawnOptions {
  /** Overrides of testEnv(); `undefined` removes a variable. PORT defaults to a free port. */
  env?: Record<string, string | undefined>;
  args?: string[];
}

const spawned = new Set<ChildProcess>();

export { freePort, waitUntil };

/** One HTTP request that never throws: a refused connection is status 0. */
export async function httpStatus(url: string, init?: RequestInit): Promise<number> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(3000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/**
 * Starts src/main.ts as a real child process through ts-node (no build needed), with a clean
 * environment: testEnv(overrides) plus PATH and HOME only.
 */
export async function spawnApp(options: SpawnOptions = {}): Promise<SpawnedApp> {
  const port = options.env?.PORT ?? String(await freePort());
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(testEnv({ PORT: port, ...options.env }))) {
    if (value !== undefined) env[key] = value;
  }
  if (process.env.PATH) env.PATH = process.env.PATH;
  if (process.env.HOME) env.HOME = process.env.HOME;

  const child = spawn(
    process.execPath,
    ['-r', 'ts-node/register/transpile-only', 'src/main.ts', ...(options.args ?? [])],
    {
      cwd: REPO_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  spawned.add(child);
  killOnExit(child);
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
  let since = Date.now();
  const exit = new Promise<ExitInfo>((resolveExit) => {
    child.once('exit', (code, signal) => {
      spawned.delete(child);
      resolveExit({ code, signal, elapsedMs: Date.now() - since });
    });
  });
  // 'exit' can come before the pipes are drained; waitExit also waits for 'close'.
  const closed = new Promise<void>((r) => child.once('close', () => r()));
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const describe = (): string => `\n--- stdout ---\n${out}\n--- stderr ---\n${err}`;
  const url = `http://127.0.0.1:${port}`;

  return {
    pid: child.pid ?? -1,
    port: Number(port),
    url,
    env,
    stdout: () => out,
    stderr: () => err,
    running,
    waitForLive: async (timeoutMs = 60_000) => {
      await waitUntil(
        'GET /health/live = 200',
        async () => {
          if (!running()) throw new Error(`the app exited before it was live${describe()}`);
          return (await httpStatus(`${url}/health/live`)) === 200;
        },
        timeoutMs,
      ).catch((e: Error) => {
        throw new Error(`${e.message}${e.message.includes('---') ? '' : describe()}`);
      });
    },
    waitForOutput: async (pattern, timeoutMs = 10_000) => {
      await waitUntil(`output matching ${pattern}`, () => pattern.test(out) || pattern.test(err), timeoutMs).catch(
        (e: Error) => {
          throw new Error(`${e.message}${describe()}`);
        },
      );
    },
    kill: (signal = 'SIGTERM') => {
      since = Date.now();
      child.kill(signal);
    },
    waitExit: async (timeoutMs = 30_000) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`the app did not exit within ${timeoutMs} ms${describe()}`)),
          timeoutMs,
        );
      });
      try {
        const info = await Promise.race([exit, timeout]);
        await Promise.race([closed, timeout]);
        return info;
      } finally {
        clearTimeout(timer);
      }
    },
    deleteRedisKeys: async (redisUrl = env.REDIS_URL) => {
      const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await redis.connect();
        await deleteKeys(redis, `{${env.REDIS_PREFIX}}`);
      } finally {
        redis.disconnect();
      }
    },
  };
}

/** SIGKILLs every child still running (afterAll), and waits until they are gone. */
export async function killSpawnedApps(): Promise<void> {
  const children = [...spawned];
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((r) => {
          if (child.exitCode !== null || child.signalCode !== null) return r();
          child.once('exit', () => r());
          child.kill('SIGKILL');
        }),
    ),
  );
}

export interface RedisServer {
  port: number;
  url: string;
  /** A client for assertions and CONFIG SET (this server is private: reconfiguring it is fine). */
  client(): Redis;
  stop(): Promise<void>;
}

/**
 * A private redis-server (never the shared one) for tests that need a particular configuration,
 * e.g. an eviction policy. `port` lets a test bring Redis up where an app already expects it.
 */
export async function startRedisServer(args: string[] = [], port?: number): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tawasul-spawn-redis-'));
  const p = port ?? (await freePort());
  const child = spawn(
    '/usr/bin/redis-server',
    ['--port', String(p), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...args],
    { stdio: 'ignore' },
  );
  spawned.add(child);
  killOnExit(child);
  child.once('exit', () => spawned.delete(child));
  const url = `redis://127.0.0.1:${p}`;
  const client = new Redis(url, { maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  client.on('error', () => undefined);
  const stop = async (): Promise<void> => {
    client.disconnect();
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGKILL');
      await gone;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntil(`redis-server on port ${p}`, async () => (await client.ping().catch(() => '')) === 'PONG', 10_000);
  } catch (e) {
    await stop();
    throw e;
  }
  return { port: p, url, client: () => client, stop };
}
