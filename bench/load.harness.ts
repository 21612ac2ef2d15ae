import { type ChildProcess, spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import autocannon from 'autocannon';
import { type Redis } from 'ioredis';
import { TURNS_QUEUE } from '../src/queue/queue.constants';
import { type BenchWork } from './bare-ingest.work';
import { RedisKeys } from '../src/redis/redis-keys';
import { freePort } from '../test/utils/wait';

/**
 * Shared plumbing of the load benchmarks (ingest.bench.ts, adapter-probe.ts): server processes,
 * signed Meta payloads with fresh message ids, one autocannon run, Redis bookkeeping, the table.
 */

export const BENCH_APP_SECRET = 'bench_app_secret';
export const BENCH_VERIFY_TOKEN = 'bench-verify-token';
export const BENCH_PHONE_NUMBER_ID = '100000000000001';

export interface BenchSettings {
  redisUrl: string;
  durationS: number;
  warmupS: number;
  connections: number;
  /** 0: every message comes from a new chat (every wake-up creates a job); n: n chats in rotation. */
  senders: number;
}

/** A numeric environment knob; unset, empty or not a number gives the fallback (0 is a value). */
export const numberEnv = (name: string, fallback: number): number => {
  const value = Number(process.env[name] ?? '');
  return Number.isFinite(value) && process.env[name] !== '' && process.env[name] !== undefined ? value : fallback;
};

export function benchSettings(): BenchSettings {
  return {
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    durationS: numberEnv('BENCH_DURATION', 10),
    warmupS: numberEnv('BENCH_WARMUP', 4),
    connections: numberEnv('BENCH_CONNECTIONS', 50),
    senders: numberEnv('BENCH_SENDERS', 0),
  };
}

/** One prefix per run and target: the bench only ever deletes keys under it. */
export const runPrefix = (target: string): string => `bench_${process.pid}_${randomBytes(3).toString('hex')}_${target}`;

export { freePort };

/** Process CPU time (user + system) so far, in seconds, from /proc (Linux); NaN once it is gone. */
export function cpuSecondsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks (USER_HZ = 100 on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** `-r ts-node/register` given twice (flags plus a .ts entry point) would register two compilers. */
function withoutRepeatedPreloads(argv: string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '-r' && i + 1 < argv.length) {
      if (!seen.has(argv[i + 1])) out.push('-r', argv[i + 1]);
      seen.add(argv[++i]);
      continue;
    }
    out.push(argv[i]);
  }
  return out;
}

/** A server under test, in its own process so that it never shares the load generator's event loop. */
export class ServerProcess {
  private readonly child: ChildProcess;
  private output = '';
  private exited: Promise<number | null>;
  /** BENCH_PROFILE_DIR: CPU profiles of the measured runs only (cpu-profile.preload.ts). */
  private readonly profileDir = process.env.BENCH_PROFILE_DIR;
  private profiles = 0;

  constructor(
    readonly name: string,
    readonly url: string,
    args: string[],
    env: Record<string, string>,
    /** GET path that answers 2xx once the server takes requests. */
    private readonly readyPath = '/health',
  ) {
    const nodeFlags = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
    if (this.profileDir)
      nodeFlags.push('-r', 'ts-node/register/transpile-only', '-r', join(__dirname, 'cpu-profile.preload.ts'));
    this.child = spawn(process.execPath, withoutRepeatedPreloads([...nodeFlags, ...args]), {
      env: { ...process.env, ...env, BENCH_PROFILE_NAME: name },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString('utf8')).slice(-8000);
    };
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get log(): string {
    return this.output;
  }

  async waitReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exitCode: number | null | undefined;
    void this.exited.then((code) => (exitCode = code));
    while (Date.now() < deadline) {
      if (exitCode !== undefined) throw new Error(`${this.name} exited (${exitCode}):\n${this.output}`);
      try {
        const res = await fetch(`${this.url}${this.readyPath}`);
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${this.name} not ready within ${timeoutMs} ms:\n${this.output}`);
  }

  cpuSeconds(): number {
    return cpuSecondsOf(this.pid);
  }

  /** Starts the CPU profiler in the server (a no-op without BENCH_PROFILE_DIR). */
  profileStart(): void {
    if (this.profileDir) this.child.kill('SIGUSR2');
  }

  /** Stops it and waits for the profile file; returns its path. */
  async profileStop(timeoutMs = 30_000): Promise<string | undefined> {
    if (!this.profileDir) return undefined;
    this.child.kill('SIGUSR2');
    const file = join(this.profileDir, `${this.name}.${++this.profiles}.cpuprofile`);
    const deadline = Date.now() + timeoutMs;
    while (!existsSync(file)) {
      if (Date.now() > deadline) throw new Error(`${this.name} wrote no profile within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return file;
  }

  /** SIGTERM, then SIGKILL if it has not exited within the deadline. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/**
 * The built app every bench runs: dist/main.js, or BENCH_APP_ENTRY — another build of it, to
 * compare two builds in one sitting or to keep measuring one while dist/ is being rebuilt.
 */
export function appEntry(): string {
  return resolve(process.env.BENCH_APP_ENTRY ?? join(__dirname, '..', 'dist', 'main.js'));
}

/**
 * The built receiver, as deployed: `node dist/main.js --role=receiver`, NODE_ENV=production (so
 * a log-hash key and /metrics on a management port of its own), Meta provider, quiet logs.
 */
export async function receiverProcess(
  name: string,
  prefix: string,
  port: number,
  redisUrl: string,
  nodeFlags: string[] = [],
): Promise<ServerProcess> {
  const managementPort = await freePort();
  return new ServerProcess(
    name,
    `http://127.0.0.1:${port}`,
    [...nodeFlags, appEntry(), '--role=receiver'],
    {
      NODE_ENV: 'production',
      PORT: String(port),
      REDIS_URL: redisUrl,
      REDIS_PREFIX: prefix,
      BSP_PROVIDER: 'meta',
      LLM_PROVIDER: 'offline',
      WHATSAPP_VERIFY_TOKEN: BENCH_VERIFY_TOKEN,
      WHATSAPP_APP_SECRET: BENCH_APP_SECRET,
      WHATSAPP_PHONE_NUMBER_ID: BENCH_PHONE_NUMBER_ID,
      LOG_LEVEL: 'warn',
      LOG_HASH_KEY: 'bench-log-hash-key-0123456789abcdef',
      SHUTDOWN_DRAIN_MS: '0',
      MANAGEMENT_PORT: String(managementPort),
    },
    '/health/ready',
  );
}

/** The bare node:http + ioredis baseline (bare-ingest.server.ts). */
export function bareProcess(
  name: string,
  prefix: string,
  port: number,
  redisUrl: string,
  work: BenchWork,
): ServerProcess {
  return new ServerProcess(
    name,
    `http://127.0.0.1:${port}`,
    ['-r', 'ts-node/register/transpile-only', join(__dirname, 'bare-ingest.server.ts')],
    {
      PORT: String(port),
      REDIS_URL: redisUrl,
      REDIS_PREFIX: prefix,
      BENCH_APP_SECRET,
      BENCH_PHONE_NUMBER_ID,
      BENCH_WORK: work,
    },
  );
}

/**
 * Meta text-message webhooks, each with a message id never used before and a correct
 * X-Hub-Signature-256 over exactly the bytes sent. Built from a template: a JSON.stringify per
 * request would cost the generator more than the server's JSON.parse.
 */
export class SignedMessages {
  private count = 0;
  private readonly tag = randomBytes(4).toString('hex').toUpperCase();

  constructor(
    private readonly secret: string,
    private readonly phoneNumberId: string,
    private readonly senders: number,
  ) {}

  get issued(): number {
    return this.count;
  }

  next(): { body: string; signature: string } {
    const n = this.count++;
    const from = `97150${this.senders > 0 ? n % this.senders : n}`;
    const wamid = `wamid.HBgMOTcxNTAwMDAwMDAxFQIAEhgg${this.tag}${n.toString(36).padStart(8, '0')}`;
    const timestamp = Math.floor(Date.now() / 1000);
    const body =
      `{"object":"whatsapp_business_account","entry":[{"id":"200000000000002","changes":[{"value":` +
      `{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111",` +
      `"phone_number_id":"${this.phoneNumberId}"},"contacts":[{"profile":{"name":"Bench User"},` +
      `"wa_id":"${from}"}],"messages":[{"from":"${from}","id":"${wamid}","timestamp":"${timestamp}",` +
      `"type":"text","text":{"body":"Hello, I would like to book an appointment for Sunday morning."}}]},` +
      `"field":"messages"}]}]}`;
    const signature = `sha256=${createHmac('sha256', this.secret).update(body).digest('hex')}`;
    return { body, signature };
  }
}

export interface LoadResult {
  label: string;
  seconds: number;
  responses: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** Share of the responses that took longer than one second (Meta's bar is under 1 %). */
  overOneSecond: number;
  /** CPU the load generator used, as % of one core. */
  generatorCpu: number;
}

/** Nearest-rank percentile of ascending values; the one every bench uses. */
export const percentile = (sorted: ArrayLike<number>, p: number): number =>
  sorted.length === 0
    ? NaN
    : sorted[Math.max(0, Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1))];

/**
 * One autocannon run against POST /webhook. Latencies are kept per response (microsecond
 * resolution, every status) rather than autocannon's whole-millisecond histogram.
 */
export async function loadRun(
  label: string,
  url: string,
  messages: SignedMessages,
  connections: number,
  durationS: number,
): Promise<LoadResult> {
  let latencies = new Float64Array(1 << 16);
  let n = 0;
  const cpuBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  const options: autocannon.Options = {
    url,
    connections,
    duration: durationS,
    timeout: 10,
    requests: [
      {
        method: 'POST',
        path: '/webhook',
        setupRequest: (request) => {
          const { body, signature } = messages.next();
          request.body = body;
          request.headers = { 'content-type': 'application/json', 'x-hub-signature-256': signature };
          return request;
        },
      },
    ],
  };
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(options, (err, res) => (err ? reject(err as Error) : resolve(res)));
    instance.on('response', (_client, _status, _bytes, responseTime) => {
      if (n === latencies.length) {
        const grown = new Float64Array(latencies.length * 2);
        grown.set(latencies);
        latencies = grown;
      }
      latencies[n++] = responseTime;
    });
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpuBefore);
  const sorted = latencies.slice(0, n).sort();
  let overOneSecond = 0;
  while (overOneSecond < n && sorted[n - 1 - overOneSecond] > 1000) overOneSecond++;
  return {
    label,
    seconds,
    responses: n,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    rps: result['2xx'] / seconds,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: n > 0 ? sorted[n - 1] : NaN,
    overOneSecond: n > 0 ? overOneSecond / n : NaN,
    generatorCpu: ((cpu.user + cpu.system) / 1e6 / seconds) * 100,
  };
}

export interface WorkCount {
  /** Items in lane inboxes (one per accepted message). */
  items: number;
  /** Lanes in the pending set. */
  lanes: number;
  /** Waiting wake-up jobs in BullMQ's queue. */
  wakeJobs: number;
}

async function scanKeys(redis: Redis, pattern: string, onBatch: (keys: string[]) => Promise<void>): Promise<void> {
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (batch.length > 0) await onBatch(batch);
  } while (cursor !== '0');
}

const globEscape = (s: string): string => s.replace(/[{}[\]*?\\]/g, (c) => `\\${c}`);

export async function countWork(redis: Redis, prefix: string): Promise<WorkCount> {
  const keys = new RedisKeys(`{${prefix}}`);
  let items = 0;
  await scanKeys(redis, `${globEscape(keys.inbox(''))}*`, async (batch) => {
    const pipeline = redis.pipeline();
    for (const key of batch) pipeline.llen(key);
    for (const [err, len] of (await pipeline.exec()) ?? []) if (!err) items += Number(len);
  });
  const lanes = await redis.zcard(keys.pending);
  const wakeJobs = await redis.llen(`${keys.root}:${TURNS_QUEUE}:wait`);
  return { items, lanes, wakeJobs };
}

/** Waits until the target's pending set stops growing: requests still in flight have landed. */
export async function settle(redis: Redis, prefix: string, timeoutMs = 10_000): Promise<void> {
  const pending = new RedisKeys(`{${prefix}}`).pending;
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  while (Date.now() < deadline) {
    const now = await redis.zcard(pending);
    if (now === last) return;
    last = now;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Deletes every key under one bench prefix (SCAN + UNLINK, never FLUSHDB: Redis is shared). */
export async function deletePrefix(redis: Redis, prefix: string): Promise<number> {
  let deleted = 0;
  await scanKeys(redis, `${globEscape(`{${prefix}}`)}*`, async (batch) => {
    deleted += await redis.unlink(...batch);
  });
  return deleted;
}

/** Redis server CPU (user + system seconds) so far; the Redis may be shared, so it is indicative. */
export async function redisCpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const read = (name: string): number => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? NaN);
  return read('used_cpu_user') + read('used_cpu_sys');
}

export const fmt = (value: number, digits = 1): string => (Number.isFinite(value) ? value.toFixed(digits) : '-');

/** A plain fixed-width table: the first row is the header. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string =>
    r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

export const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** Other work on the machine skews every figure: say so next to them. */
export function machineNote(when: string): void {
  const [load1] = loadavg();
  const cores = cpus().length;
  const busy =
    load1 > cores * 0.75 ? '  (busy machine: other processes compete with the bench, expect noisy figures)' : '';
  console.log(`${when}: load average ${fmt(load1, 2)} on ${cores} cores${busy}`);
}
