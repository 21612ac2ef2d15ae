import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import { RedisKeys } from '../../src/redis/redis-keys';
import { freshWamid, textPayload } from '../utils/meta-payloads';
import { signBody } from '../utils/sign';
import { deleteKeys } from '../utils/test-app';
import {
  type ExitInfo,
  freePort,
  httpStatus,
  killSpawnedApps,
  type RedisServer,
  spawnApp,
  type SpawnedApp,
  startRedisServer,
  waitUntil,
} from '../utils/spawn-app';

/**
 * The process as operators run it: src/main.ts in a child process, exit codes, signals, stderr;
 * and `npm start` (scripts/start.js) on a fresh copy of the project, as a new user runs it.
 * Covers the boot flag, configuration errors, health and shutdown, the eviction-policy check and the
 * one-machine default.
 */

// Every case starts a process through ts-node (seconds of CPU each): generous limits for a busy CI.
jest.setTimeout(120_000);

const apps: SpawnedApp[] = [];
// Role all now answers what it ingests: sends must not leave this machine (nothing listens on port 9).
const OFFLINE_PEERS = { META_GRAPH_URL: 'http://127.0.0.1:9', D360_BASE_URL: 'http://127.0.0.1:9' };

/**
 * What NODE_ENV=production needs besides explicit providers: no sandbox, a long
 * LOG_HASH_KEY and webhook secret, /metrics on its own port, and (for OFFLINE_PEERS) plain http.
 */
async function production(): Promise<Record<string, string>> {
  return {
    NODE_ENV: 'production',
    BSP_PROVIDER: 'meta',
    LLM_PROVIDER: 'offline',
    WHATSAPP_APP_SECRET: 'production-app-secret-0123456789',
    LOG_HASH_KEY: 'production-log-hash-key-0123456789',
    MANAGEMENT_PORT: String(await freePort()),
    ALLOW_PLAIN_HTTP: 'true',
  };
}

async function start(env: Record<string, string | undefined> = {}, args: string[] = []): Promise<SpawnedApp> {
  const app = await spawnApp({ env: { ...OFFLINE_PEERS, ...env }, args });
  apps.push(app);
  return app;
}

afterAll(async () => {
  await killSpawnedApps();
  // Only children that used the shared Redis left keys there; private servers are thrown away.
  const shared = apps.filter((a) => a.env.REDIS_URL === (process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'));
  await Promise.all(shared.map((a) => a.deleteRedisKeys()));
});

function postSigned(app: SpawnedApp, payload: Record<string, unknown>): Promise<number> {
  const raw = JSON.stringify(payload);
  return httpStatus(`${app.url}/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': signBody(raw) },
    body: raw,
  });
}

/** pino lines of the child's stdout, parsed (anything else is ignored). */
function logEvents(app: SpawnedApp): Record<string, any>[] {
  return app
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, any>);
}

describe('configuration errors', () => {
  interface Case {
    name: string;
    env: Record<string, string | undefined>;
    /** Variable -> what its line must say it expects. */
    expected: Record<string, RegExp>;
  }
  const cases: Case[] = [
    { name: 'PORT=abc', env: { PORT: 'abc' }, expected: { PORT: /port number/ } },
    {
      name: 'meta receiver without app secret and verify token',
      env: { APP_ROLE: 'receiver', WHATSAPP_APP_SECRET: undefined, WHATSAPP_VERIFY_TOKEN: undefined },
      expected: { WHATSAPP_APP_SECRET: /required/, WHATSAPP_VERIFY_TOKEN: /required/ },
    },
    {
      // A worker never verifies webhooks: the app secret is not its business, the send token is.
      name: 'meta worker without access token (and without the receiver secrets)',
      env: {
        APP_ROLE: 'worker',
        META_ACCESS_TOKEN: undefined,
        WHATSAPP_APP_SECRET: undefined,
        WHATSAPP_VERIFY_TOKEN: undefined,
      },
      expected: { META_ACCESS_TOKEN: /required/ },
    },
    {
      name: 'production without explicit providers',
      env: {
        NODE_ENV: 'production',
        BSP_PROVIDER: undefined,
        LLM_PROVIDER: undefined,
        WHATSAPP_APP_SECRET: undefined,
        LOG_HASH_KEY: 'production-log-hash-key-0123456789',
        MANAGEMENT_PORT: '9464',
        ALLOW_PLAIN_HTTP: 'true',
      },
      expected: { BSP_PROVIDER: /explicitly/, LLM_PROVIDER: /explicitly/ },
    },
    {
      name: 'production with the sandbox, a short LOG_HASH_KEY and no MANAGEMENT_PORT',
      env: {
        NODE_ENV: 'production',
        BSP_PROVIDER: 'sandbox',
        LLM_PROVIDER: 'offline',
        WHATSAPP_APP_SECRET: undefined,
        LOG_HASH_KEY: 'short',
        ALLOW_PLAIN_HTTP: 'true',
      },
      expected: { BSP_PROVIDER: /sandbox is refused/, LOG_HASH_KEY: /at least 32/, MANAGEMENT_PORT: /required/ },
    },
    { name: 'APP_ROLE=bogus', env: { APP_ROLE: 'bogus' }, expected: { APP_ROLE: /receiver, worker, all/ } },
    {
      name: 'openai worker without LLM_BASE_URL',
      env: { APP_ROLE: 'worker', LLM_PROVIDER: 'openai', LLM_BASE_URL: undefined },
      expected: { LLM_BASE_URL: /required/ },
    },
  ];

  // Each case is a process start: two at a time (CI has 2 cores), asserted one by one.
  const runs = new Map<string, Promise<{ app: SpawnedApp; exit: ExitInfo }>>();
  beforeAll(() => {
    const lanes: Promise<unknown>[] = [Promise.resolve(), Promise.resolve()];
    cases.forEach((c, i) => {
      const run = lanes[i % 2]
        .then(() => start(c.env))
        .then(async (app) => ({ app, exit: await app.waitExit(60_000) }));
      lanes[i % 2] = run.catch(() => undefined);
      runs.set(c.name, run);
    });
  });

  it.each(cases)('$name: exit 1, one line per bad variable, no stack trace', async (c) => {
    const { app, exit } = await runs.get(c.name)!;
    expect(exit.code).toBe(1);
    const lines = app
      .stderr()
      .split('\n')
      .filter((l) => l.trim() !== '');
    expect(lines.filter((l) => /^\s+at /.test(l))).toEqual([]);
    // Every stderr line is a config line, and there is exactly one per bad variable.
    const named = lines.map((l) => /^config error: ([A-Z0-9_]+): (.+)$/.exec(l));
    expect(named.every((m) => m !== null)).toBe(true);
    const variables = named.map((m) => m![1]);
    expect([...variables].sort()).toEqual(Object.keys(c.expected).sort());
    for (const m of named) expect(m![2]).toMatch(c.expected[m![1]]);
    expect(app.stdout()).not.toMatch(/tawasul started/);
  });
});

describe('RECEPTIONIST_FILE at start-up (LLM_PROVIDER=offline)', () => {
  it('a broken file stops start-up: exit 1, one line per problem naming the variable, the file and the place', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tawasul-receptionist-'));
    const script = JSON.parse(readFileSync('config/receptionist.json', 'utf8'));
    script.texts.menu.ar = '';
    delete script.faq[0].answer.en;
    const file = join(dir, 'receptionist.json');
    writeFileSync(file, JSON.stringify(script));
    try {
      const app = await start({ LLM_PROVIDER: 'offline', RECEPTIONIST_FILE: file });
      expect((await app.waitExit(60_000)).code).toBe(1);
      const lines = app.stderr().split('\n');
      for (const problem of ['texts.menu.ar: missing or empty', 'faq[0].answer.en: missing or empty']) {
        expect(lines.some((l) => l.endsWith(`RECEPTIONIST_FILE: ${file}: ${problem}`))).toBe(true);
      }
      expect(app.stderr()).not.toMatch(/^\s+at /m);
      expect(app.stdout()).not.toMatch(/tawasul started/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ACTIONS_FILE at start-up', () => {
  it('a broken catalog stops start-up: exit 1, one line per bad action naming the variable and the file, no stack trace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tawasul-actions-'));
    const catalog = JSON.parse(readFileSync('config/examples/actions.clinic.json', 'utf8'));
    catalog.actions[0].method = 'FETCH';
    catalog.actions[1].path = '/bookings/{slot}';
    catalog.actions[2].parameters.properties.slotId.type = 'text';
    const file = join(dir, 'actions.json');
    writeFileSync(file, JSON.stringify(catalog));
    try {
      const app = await start({ ACTIONS_FILE: file, CLINIC_API_BASE_URL: 'http://127.0.0.1:9/clinic' });
      expect((await app.waitExit(60_000)).code).toBe(1);
      const lines = app.stderr().split('\n');
      for (const problem of [
        'actions[0] "find_free_slots": method: one of',
        'actions[1] "book_appointment": path: {slot} must be a required string, integer or number parameter',
        'actions[2] "reschedule_appointment": parameters:',
      ]) {
        expect({ problem, found: lines.some((l) => l.includes(`ACTIONS_FILE: ${file}: ${problem}`)) }).toEqual({
          problem,
          found: true,
        });
      }
      expect(app.stderr()).not.toMatch(/^\s+at /m);
      expect(app.stdout()).not.toMatch(/tawasul started/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a catalog named explicitly but missing stops start-up too (only the default file may be absent)', async () => {
    const app = await start({ ACTIONS_FILE: '/nonexistent/actions.json', CLINIC_API_BASE_URL: 'http://127.0.0.1:9' });
    expect((await app.waitExit(60_000)).code).toBe(1);
    expect(app.stderr()).toMatch(/ACTIONS_FILE: cannot read \/nonexistent\/actions\.json .*ENOENT/);
  });
});

describe('the --role flag', () => {
  it('--role=worker overrides APP_ROLE=receiver', async () => {
    const app = await start({ APP_ROLE: 'receiver' }, ['--role=worker']);
    await app.waitForLive();
    expect(await postSigned(app, textPayload())).toBe(404);
    expect(await httpStatus(`${app.url}/webhook?hub.mode=subscribe`)).toBe(404);
    expect(await httpStatus(`${app.url}/health/live`)).toBe(200);
  });

  it('--role receiver (space form) overrides APP_ROLE=worker', async () => {
    const app = await start({ APP_ROLE: 'worker' }, ['--role', 'receiver']);
    await app.waitForLive();
    expect(await postSigned(app, textPayload())).toBe(200);
    expect(await httpStatus(`${app.url}/health/live`)).toBe(200);
  });
});

describe('SIGTERM', () => {
  it('role all: ready turns 503 at once, live and POST /webhook keep serving through the drain, then exit 0', async () => {
    const drainMs = 1500;
    const app = await start({ APP_ROLE: 'all', SHUTDOWN_DRAIN_MS: String(drainMs) });
    await app.waitForLive();
    expect(await httpStatus(`${app.url}/health/ready`)).toBe(200);

    app.kill('SIGTERM');
    const signalledAt = Date.now();
    await waitUntil('ready 503', async () => (await httpStatus(`${app.url}/health/ready`)) === 503, drainMs);
    // "At once": well inside the drain, not at its end.
    expect(Date.now() - signalledAt).toBeLessThan(drainMs / 2);
    expect(await httpStatus(`${app.url}/health/live`)).toBe(200);
    const wamid = freshWamid();
    expect(await postSigned(app, textPayload({ id: wamid }))).toBe(200);
    // The message accepted during the drain went through ingest (a worker may already have taken
    // it from the inbox, so the dedup record is what proves it).
    const redis = new Redis(app.env.REDIS_URL);
    try {
      expect(await redis.exists(new RedisKeys(`{${app.env.REDIS_PREFIX}}`).dedup(`m:${wamid}`))).toBe(1);
    } finally {
      redis.disconnect();
    }
    expect(app.running()).toBe(true);

    const exit = await app.waitExit(drainMs + 8000);
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.elapsedMs).toBeGreaterThanOrEqual(drainMs - 100);
  });

  it('role worker: exits 0 promptly (no HTTP drain for a worker)', async () => {
    // A long drain setting proves the worker does not wait for it.
    const app = await start({ APP_ROLE: 'worker', SHUTDOWN_DRAIN_MS: '10000' });
    await app.waitForLive();
    app.kill('SIGTERM');
    const exit = await app.waitExit(8000);
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.elapsedMs).toBeLessThan(5000);
  });
});

describe('MANAGEMENT_PORT', () => {
  it('moves /metrics off the main port; health stays on the main port', async () => {
    const managementPort = await freePort();
    const app = await start({ MANAGEMENT_PORT: String(managementPort) });
    await app.waitForLive();
    expect(await postSigned(app, textPayload())).toBe(200);
    expect(await httpStatus(`${app.url}/metrics`)).toBe(404);
    expect(await httpStatus(`${app.url}/health/live`)).toBe(200);

    // The same registry the app records into, not an empty one (the count is recorded as the
    // response finishes, hence the short wait).
    const accepted = /^tawasul_webhook_requests_total\{outcome="accepted"\} 1$/m;
    let text = '';
    await waitUntil(
      'the accepted webhook on the management port',
      async () => {
        const res = await fetch(`http://127.0.0.1:${managementPort}/metrics`);
        expect(res.status).toBe(200);
        text = await res.text();
        return accepted.test(text);
      },
      5000,
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n${text}`);
    });
  });
});

describe('Redis eviction policy at start-up', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedisServer(['--maxmemory-policy', 'allkeys-lru']);
  });
  afterAll(async () => {
    await redis?.stop();
  });
  it('production refuses to start on allkeys-lru', async () => {
    const app = await start({ ...(await production()), REDIS_URL: redis.url, LOG_LEVEL: 'info' });
    const exit = await app.waitExit(20_000);
    expect(exit.code).toBe(1);
    expect(`${app.stdout()}${app.stderr()}`).toMatch(/maxmemory-policy/);
  });

  it('development starts on allkeys-lru and warns loudly', async () => {
    const app = await start({ NODE_ENV: 'development', REDIS_URL: redis.url, LOG_LEVEL: 'info' });
    await app.waitForLive();
    await app.waitForOutput(/maxmemory-policy/);
    const warnings = logEvents(app).filter((e) => e.level >= 40 && /maxmemory-policy/.test(String(e.msg)));
    expect(warnings.length).toBeGreaterThan(0);
    expect(app.running()).toBe(true);
  });

  it('production starts on noeviction, without the warning', async () => {
    await redis.client().config('SET', 'maxmemory-policy', 'noeviction');
    const app = await start({ ...(await production()), REDIS_URL: redis.url, LOG_LEVEL: 'info' });
    await app.waitForLive();
    await waitUntil('ready 200', async () => (await httpStatus(`${app.url}/health/ready`)) === 200, 10_000);
    await app.waitForOutput(/tawasul started/);
    expect(`${app.stdout()}${app.stderr()}`).not.toMatch(/maxmemory-policy/);
  });
});

describe('Redis unreachable at start-up', () => {
  let redis: RedisServer | undefined;
  afterAll(async () => {
    await redis?.stop();
  });

  it('starts anyway: live 200, ready 503; ready turns 200 once Redis appears, without a restart', async () => {
    const port = await freePort();
    const app = await start({ NODE_ENV: 'development', REDIS_URL: `redis://127.0.0.1:${port}` });
    await app.waitForLive();
    expect(await httpStatus(`${app.url}/health/ready`)).toBe(503);
    expect(await httpStatus(`${app.url}/health/live`)).toBe(200);
    expect(app.running()).toBe(true);

    redis = await startRedisServer([], port);
    await waitUntil('ready 200', async () => (await httpStatus(`${app.url}/health/ready`)) === 200, 15_000);
    expect(app.running()).toBe(true);
  });

  it('production: the deferred policy check still refuses an evicting Redis once it appears', async () => {
    const port = await freePort();
    const app = await start({ ...(await production()), REDIS_URL: `redis://127.0.0.1:${port}`, LOG_LEVEL: 'info' });
    await app.waitForLive();
    const late = await startRedisServer(['--maxmemory-policy', 'allkeys-lru'], port);
    try {
      const exit = await app.waitExit(20_000);
      expect(exit.code).toBe(1);
      expect(app.stdout()).toMatch(/maxmemory-policy/);
    } finally {
      await late.stop();
    }
  });
});

describe('npm start (scripts/start.js) on a clean checkout', () => {
  const ROOT = resolve(__dirname, '..', '..');
  const SHARED_REDIS = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  // What `git clone && npm ci` leaves: sources, config and scripts, node_modules; no dist/, no .env.
  const CHECKOUT_ENTRIES = [
    'src',
    'config',
    'scripts',
    'package.json',
    'tsconfig.json',
    'tsconfig.build.json',
    'nest-cli.json',
  ];
  let checkout: string;
  const launched: ChildProcess[] = [];
  const prefixes: string[] = [];

  beforeAll(() => {
    checkout = mkdtempSync(join(tmpdir(), 'tawasul-checkout-'));
    for (const entry of CHECKOUT_ENTRIES) cpSync(join(ROOT, entry), join(checkout, entry), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(checkout, 'node_modules'), 'dir');
  });

  afterAll(async () => {
    // Each launcher leads its own process group: a failed test takes the app and its Redis down with it.
    for (const child of launched) {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    const redis = new Redis(SHARED_REDIS, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await redis.connect();
      for (const prefix of prefixes) await deleteKeys(redis, `{${prefix}}`);
    } finally {
      redis.disconnect();
    }
    rmSync(checkout, { recursive: true, force: true });
  });

  interface Launch {
    child: ChildProcess;
    out(): string;
    err(): string;
    exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  }

  /** Runs `command` in the checkout with a clean environment, in a process group of its own. */
  function launch(command: string, args: string[], env: Record<string, string>): Launch {
    const prefix = `t${process.pid}_npmstart_${prefixes.length}`;
    prefixes.push(prefix);
    const child = spawn(command, args, {
      cwd: checkout,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', REDIS_PREFIX: prefix, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    launched.push(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
      child.once('close', (code, signal) => r({ code, signal })),
    );
    return { child, out: () => out, err: () => err, exited };
  }

  async function waitForBanner(run: Launch): Promise<string[]> {
    await waitUntil('the banner', () => /^ {2}Stop /m.test(run.out()) || run.child.exitCode !== null, 100_000).catch(
      (e: Error) => {
        throw new Error(`${e.message}\n--- stdout ---\n${run.out()}\n--- stderr ---\n${run.err()}`);
      },
    );
    const lines = run.out().split('\n');
    const first = lines.findIndex((l) => l.startsWith('tawasul is '));
    if (first < 0) throw new Error(`no banner\n--- stdout ---\n${run.out()}\n--- stderr ---\n${run.err()}`);
    const last = lines.findIndex((l, i) => i > first && l.startsWith('  Stop '));
    return lines.slice(first, last + 1);
  }

  /** The processes whose parent is `pid`, with their command lines (Linux /proc). */
  function childrenOf(pid: number): { pid: number; cmd: string }[] {
    const found: { pid: number; cmd: string }[] = [];
    for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        // Field 4 is the parent; the command name before it may contain spaces and parentheses.
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid !== pid) continue;
        found.push({ pid: Number(entry), cmd: readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ') });
      } catch {
        // exited while we looked
      }
    }
    return found;
  }

  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  const portOpen = (port: number): Promise<boolean> =>
    new Promise((r) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        r(true);
      });
      socket.once('error', () => r(false));
    });

  it('builds, reaches ready and prints the banner: the page, role, providers, defaults and where the data lives', async () => {
    const port = await freePort();
    const run = launch('npm', ['start'], { PORT: String(port) });
    const banner = await waitForBanner(run);
    expect(await httpStatus(`http://127.0.0.1:${port}/health/ready`)).toBe(200);
    expect(run.err()).toContain('building dist/');
    const prefix = prefixes[prefixes.length - 1];
    expect(banner[0]).toBe(`tawasul is ready: http://127.0.0.1:${port}/sandbox`);
    expect(banner.length).toBeLessThanOrEqual(10);
    const text = banner.join('\n');
    expect(text).toMatch(/^ {2}role +all$/m);
    expect(text).toMatch(/^ {2}BSP +sandbox \(built-in default.*\)$/m);
    expect(text).toMatch(
      /^ {2}LLM +offline \(built-in default: the scripted receptionist of config\/receptionist\.json\)$/m,
    );
    expect(text).toContain(`Redis  redis://127.0.0.1:6379, keys under {${prefix}}`);
    // Everything else on stdout is still the app's JSON log (and npm's own "> tawasul@… start" header).
    const others = run
      .out()
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('> ') && !banner.includes(l));
    expect(others.length).toBeGreaterThan(0);
    for (const line of others) expect(() => JSON.parse(line)).not.toThrow();

    // Ctrl+C in a terminal: SIGINT to the whole foreground process group.
    process.kill(-run.child.pid!, 'SIGINT');
    await run.exited;
    expect(await httpStatus(`http://127.0.0.1:${port}/health/live`)).toBe(0);
  });

  it('SIGTERM to the `npm start` process alone (as a supervisor sends it) stops the launcher, the app and the private Redis', async () => {
    const [port, redisPort] = [await freePort(), await freePort()];
    const run = launch('npm', ['start'], { PORT: String(port), START_REDIS_PORT: String(redisPort) });
    await waitForBanner(run);
    // npm → sh -c → the launcher → { the app, redis-server }
    const tree: { pid: number; cmd: string }[] = [];
    for (let parents = [run.child.pid!]; parents.length > 0;) {
      const next = parents.flatMap((pid) => childrenOf(pid));
      tree.push(...next);
      parents = next.map((c) => c.pid);
    }
    const launcher = tree.find((c) => c.cmd.includes('scripts/start.js') && !c.cmd.startsWith('sh '));
    const app = tree.find((c) => c.cmd.includes('dist/main.js'));
    const redis = tree.find((c) => c.cmd.includes('redis-server'));
    expect({ launcher: !!launcher, app: !!app, redis: !!redis }).toEqual({ launcher: true, app: true, redis: true });

    process.kill(run.child.pid!, 'SIGTERM');
    const gone = () => !alive(launcher!.pid) && !alive(app!.pid) && !alive(redis!.pid);
    await waitUntil('everything npm start started to stop', () => Promise.resolve(gone()), 20_000).catch((e: Error) => {
      throw new Error(
        `${e.message}: ${JSON.stringify({ launcher: alive(launcher!.pid), app: alive(app!.pid), redis: alive(redis!.pid) })}`,
      );
    });
    expect(await portOpen(port)).toBe(false);
    expect(await portOpen(redisPort)).toBe(false);
    expect(run.out()).toMatch(/"msg":"stopped"/);
  });

  it('a port already in use: the launcher says so in one plain line and how to pick another', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const run = launch(process.execPath, ['scripts/start.js'], { PORT: String(port) });
      expect((await run.exited).code).toBe(1);
      expect(run.err()).toContain(`tawasul: port ${port} is already in use`);
      expect(run.err()).toContain('PORT=3001 npm start');
    } finally {
      blocker.close();
    }
  });

  it('SIGTERM to the launcher alone stops the app and the private Redis it started, then exits 0', async () => {
    const [port, redisPort] = [await freePort(), await freePort()];
    // START_REDIS_PORT: the shared test Redis holds 6379, and a private Redis is what is under test.
    const run = launch(process.execPath, ['scripts/start.js'], {
      PORT: String(port),
      START_REDIS_PORT: String(redisPort),
    });
    const banner = (await waitForBanner(run)).join('\n');
    expect(banner).toContain(`Redis  redis://127.0.0.1:${redisPort}, keys under {`);
    expect(banner).toContain('a private redis-server started by npm start: memory only');
    expect(banner).toMatch(/Stop .*stops the app, then the private Redis$/m);

    const launcher = run.child.pid!;
    const children = childrenOf(launcher);
    const app = children.find((c) => c.cmd.includes('dist/main.js'));
    const redis = children.find((c) => c.cmd.includes('redis-server'));
    expect({ app: !!app, redis: !!redis }).toEqual({ app: true, redis: true });
    expect(await portOpen(redisPort)).toBe(true);
    expect(await httpStatus(`http://127.0.0.1:${port}/health/ready`)).toBe(200);

    process.kill(launcher, 'SIGTERM');
    const exit = await Promise.race([
      run.exited,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`the launcher did not exit\n${run.out()}\n${run.err()}`)), 30_000),
      ),
    ]);
    expect(exit).toEqual({ code: 0, signal: null });
    expect({ app: alive(app!.pid), redis: alive(redis!.pid) }).toEqual({ app: false, redis: false });
    expect(await portOpen(port)).toBe(false);
    expect(await portOpen(redisPort)).toBe(false);
    // The app stopped cleanly, not killed: its own last log line says so.
    expect(run.out()).toMatch(/"msg":"stopped"/);
  });
});
