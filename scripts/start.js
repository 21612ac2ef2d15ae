#!/usr/bin/env node
'use strict';
/**
 * `npm start`: the one-machine default. Builds dist/ when it is missing or older than
 * src/, makes sure a Redis answers on 127.0.0.1:6379 (starting a private, throw-away one when that
 * is allowed and possible), then runs `node dist/main.js` with the same arguments and exit code.
 * Once the app is up it prints a short banner on stdout (where to open it, what runs, where the
 * data lives); SIGTERM or SIGINT to this process stops the app, then the private Redis, and it
 * exits with the app's exit code.
 *
 * The app itself loads .env and validates it; this launcher only peeks at three variables in .env
 * (REDIS_URL, REDIS_CLUSTER_NODES, NODE_ENV) so that it never starts a private Redis that the
 * configuration rules out. START_REDIS_PORT (launcher only, default 6379) moves the local Redis
 * it looks for and starts to another port, and points the app at it: for a machine whose 6379 is
 * taken by something else. Node built-ins only: it must run right after `npm ci`.
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { parseEnv } = require('node:util');

const ROOT = path.resolve(__dirname, '..');
const REDIS_HOST = '127.0.0.1';
const REDIS_PORT = 6379;
/** How long a private Redis gets to shut down on SIGTERM before it is killed. */
const REDIS_STOP_MS = 5000;
/** How long after 'tawasul started' the banner waits for /health/ready before it says "not ready". */
const READY_WAIT_MS = 5000;

function redisHint(port) {
  return (
    `tawasul: no Redis answers on 127.0.0.1:${port}; install one (sudo apt-get install redis-server) or run ` +
    `\`docker run -p ${port}:6379 redis:7\`. Starting anyway: /health/ready reports 503 until Redis is up.`
  );
}
const REDIS_HINT = redisHint(REDIS_PORT);

/** Newest modification time (ms) of the files under `dir` that end up in dist/ (specs do not). */
function newestSourceMtime(dir) {
  let newest = 0;
  if (!fs.existsSync(dir)) return newest;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceMtime(full));
    else if (entry.isFile() && !entry.name.endsWith('.spec.ts')) newest = Math.max(newest, fs.statSync(full).mtimeMs);
  }
  return newest;
}

/** dist/main.js is missing, or some file in src/ changed after it was built. */
function needsBuild(root = ROOT) {
  const main = path.join(root, 'dist', 'main.js');
  if (!fs.existsSync(main)) return true;
  return newestSourceMtime(path.join(root, 'src')) > fs.statSync(main).mtimeMs;
}

/** The few .env values that decide about Redis; the process environment wins, as in the app. */
function readDotEnv(root = ROOT) {
  const file = path.join(root, '.env');
  if (!fs.existsSync(file)) return {};
  try {
    return parseEnv(fs.readFileSync(file, 'utf8'));
  } catch {
    return {}; // The app reports a broken .env itself.
  }
}

/**
 * Whether 127.0.0.1:6379 is the Redis the app will use, and whether a private one may be started
 * there. Never with NODE_ENV=production, never when REDIS_URL (or a Cluster) is explicit.
 */
function redisPlan(env, dotEnv = {}) {
  const value = (key) => {
    const v = env[key] !== undefined && env[key] !== '' ? env[key] : dotEnv[key];
    return v === undefined || v === '' ? undefined : v;
  };
  if (value('REDIS_URL') !== undefined || value('REDIS_CLUSTER_NODES') !== undefined) {
    return { probeLocal: false, mayStartPrivate: false };
  }
  return { probeLocal: true, mayStartPrivate: value('NODE_ENV') !== 'production' };
}

/** Absolute path of an executable on PATH, or undefined. */
function findOnPath(name, env = process.env) {
  const dirs = (env.PATH || '').split(path.delimiter).filter(Boolean);
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Does something answer PING like Redis on host:port? A password-protected Redis answers
 * `-NOAUTH`, which still counts: it is a Redis, the app's REDIS_URL must carry the password.
 */
function redisAnswers(port = REDIS_PORT, host = REDIS_HOST, timeoutMs = 500) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let settled = false;
    const finish = (answer) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (chunk) => finish(/^[+-]/.test(chunk.toString('latin1'))));
    socket.once('close', () => finish(false));
  });
}

async function waitForRedis(port, deadlineMs) {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    if (await redisAnswers(port)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/** An exit status for a child that ended by a signal, as a shell would report it. */
function exitCodeOf(code, signal) {
  if (code !== null && code !== undefined) return code;
  const number = signal ? os.constants.signals[signal] : undefined;
  return number ? 128 + number : 1;
}

/** START_REDIS_PORT, or 6379; undefined (after saying why) when it is not a port number. */
function localRedisPort(env) {
  const raw = env.START_REDIS_PORT;
  if (raw === undefined || raw === '') return REDIS_PORT;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    console.error(`tawasul: START_REDIS_PORT must be a port number (1-65535), not "${raw}"`);
    return undefined;
  }
  return port;
}

/** Where the app can be reached from this machine: 0.0.0.0 and :: listen on loopback too. */
function localUrl(host, port) {
  const h = !host || host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${h.includes(':') ? `[${h}]` : h}:${port}`;
}

/**
 * The human banner, from the app's 'tawasul started' log fields and what this launcher did about
 * Redis (`redis`: 'private' it started, 'found' one already running, else undefined). At most
 * 10 lines, plain text: everything else on stdout is the app's JSON log.
 */
function bannerLines(started, { ready, redis } = {}) {
  const base = localUrl(started.host, started.port);
  const worker = started.role === 'worker';
  const page = worker ? `${base}/health/ready` : started.bsp === 'sandbox' ? `${base}/sandbox` : `${base}/webhook`;
  const lines = [ready ? `tawasul is ready: ${page}` : `tawasul is up but not ready (no Redis yet): ${page}`];
  lines.push(`  role   ${started.role}`);
  lines.push(
    started.bsp === 'sandbox'
      ? '  BSP    sandbox (built-in default: replies are recorded in Redis, nothing goes to WhatsApp)'
      : `  BSP    ${started.bsp}`,
  );
  lines.push(
    started.llm === 'offline'
      ? `  LLM    offline (built-in default: the scripted receptionist of ${started.receptionistFile})`
      : `  LLM    ${started.llm}`,
  );
  const where = /^rediss?:/.test(started.redis) ? started.redis : `Redis Cluster ${started.redis}`;
  lines.push(`  Redis  ${where}, keys under {${started.redisPrefix}}`);
  if (redis === 'private') {
    lines.push('         a private redis-server started by npm start: memory only, nothing saved, gone when it stops');
  } else if (redis === 'found') {
    lines.push('         already running before npm start, which leaves it alone');
  }
  const also = redis === 'private' ? ', then the private Redis' : '';
  lines.push(`  Stop   Ctrl+C, or SIGTERM to this process: stops the app${also}`);
  return lines;
}

/** Polls GET /health/ready until 200 or the deadline; false when it never turned ready. */
async function becomesReady(url, deadlineMs) {
  const until = Date.now() + deadlineMs;
  for (;;) {
    try {
      const res = await fetch(`${url}/health/ready`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return true;
    } catch {
      // not listening yet, or busy: try again
    }
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** How often the launcher checks that whoever started it is still there. */
const ORPHAN_CHECK_MS = 500;

/** The child that signals sent to this launcher go to: the build, then the app. */
let current;
/** The private redis-server, when this launcher started one, and its working directory. */
let privateRedis;
let privateRedisDir;
/** The port the app could not listen on (EADDRINUSE), when that is why it stopped. */
let addressInUse;
/** The first SIGTERM/SIGINT/SIGHUP received: from then on nothing new is started. */
let stopSignal;

const running = (child) => child !== undefined && child.exitCode === null && child.signalCode === null;

/** Last resort for an unexpected exit: the private Redis must not outlive the launcher. */
function killPrivateRedisNow() {
  if (running(privateRedis)) privateRedis.kill('SIGKILL');
  if (privateRedisDir) fs.rmSync(privateRedisDir, { recursive: true, force: true });
}

/** SIGTERM (it keeps nothing, so it saves nothing), a bounded wait, then SIGKILL; the directory goes too. */
async function stopPrivateRedis() {
  const child = privateRedis;
  if (running(child)) {
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), REDIS_STOP_MS);
    await gone;
    clearTimeout(timer);
  }
  privateRedis = undefined;
  if (privateRedisDir) fs.rmSync(privateRedisDir, { recursive: true, force: true });
  privateRedisDir = undefined;
}

/** Stops what this launcher started, then exits with `status`. */
async function finish(status) {
  await stopPrivateRedis();
  process.exit(status);
}

/** Runs a child with inherited stdio; resolves with its exit status. */
function run(command, args, options = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: 'inherit', ...options });
    current = child;
    child.once('error', (err) => {
      console.error(`tawasul: could not run ${command}: ${err.message}`);
      resolve(1);
    });
    child.once('exit', (code, signal) => resolve(exitCodeOf(code, signal)));
  });
}

/**
 * Runs the app. Its stdout passes through unchanged (JSON log lines); the launcher reads it only
 * to spot 'tawasul started' (an info line: a quieter LOG_LEVEL means no banner), the moment to
 * print the banner. Resolves once the app has exited and its output is drained.
 */
function runApp(args, env, onStarted) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'main.js'), ...args], {
      cwd: ROOT,
      env,
      stdio: ['inherit', 'pipe', 'inherit'],
    });
    current = child;
    let pending = '';
    let seen = false;
    child.stdout.on('data', (chunk) => {
      if (!process.stdout.write(chunk)) {
        child.stdout.pause();
        process.stdout.once('drain', () => child.stdout.resume());
      }
      if (seen) return;
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop();
      for (const line of lines) {
        if (!seen && line.includes('EADDRINUSE')) addressInUse = /EADDRINUSE[^"]*?:(\d+)/.exec(line)?.[1] ?? '';
        if (seen || !line.includes('"tawasul started"')) continue;
        try {
          const event = JSON.parse(line);
          if (event.msg !== 'tawasul started') continue;
          seen = true;
          pending = '';
          onStarted(event);
        } catch {
          // not a log line of ours
        }
      }
      if (pending.length > 65536) pending = '';
    });
    child.once('error', (err) => {
      console.error(`tawasul: could not run the app: ${err.message}`);
      resolve(1);
    });
    child.once('close', (code, signal) => resolve(exitCodeOf(code, signal)));
  });
}

async function build() {
  console.error('tawasul: building dist/ (npx nest build)…');
  const status = await run('npx', ['nest', 'build'], { shell: process.platform === 'win32' });
  if (status !== 0 && stopSignal === undefined) {
    console.error('tawasul: the build failed; fix the errors above and run `npm start` again.');
    process.exit(status);
  }
}

/**
 * A private, throw-away Redis: no persistence, a scratch working directory (so that even a manual
 * SAVE writes nothing into the project), and its own process group so that Ctrl+C reaches the app
 * first (it drains against a live Redis); the launcher stops it once the app has exited.
 */
async function startPrivateRedis(binary, port) {
  privateRedisDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tawasul-redis-'));
  const args = [
    '--port',
    String(port),
    '--bind',
    REDIS_HOST,
    '--dir',
    privateRedisDir,
    '--save',
    '',
    '--appendonly',
    'no',
  ];
  const child = spawn(binary, [...args, '--loglevel', 'warning'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  privateRedis = child;
  let output = '';
  const keep = (chunk) => {
    output = (output + chunk.toString()).slice(-2000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => child.once('exit', () => resolve(false)));
  const up = await Promise.race([waitForRedis(port, 5000), exited]);
  if (!up) {
    await stopPrivateRedis();
    console.error(`tawasul: could not start a private redis-server on 127.0.0.1:${port}:\n${output.trim()}`);
    return undefined;
  }
  console.error(
    `tawasul: started a private redis-server on 127.0.0.1:${port} (keeps nothing on disk; stops with the app)`,
  );
  child.stdout.resume();
  child.stderr.resume();
  return child;
}

/** What became of Redis: 'private' (started here), 'found' (already there) or undefined (configured, or none). */
async function prepareRedis(port) {
  const plan = redisPlan(process.env, readDotEnv());
  if (!plan.probeLocal) return undefined;
  if (await redisAnswers(port)) return 'found';
  const binary = plan.mayStartPrivate ? findOnPath('redis-server') : undefined;
  const child = binary ? await startPrivateRedis(binary, port) : undefined;
  if (!child) console.error(port === REDIS_PORT ? REDIS_HINT : redisHint(port));
  return child ? 'private' : undefined;
}

/**
 * The terminal's Ctrl+C already reaches the children (same process group); a signal sent to this
 * launcher alone (a process manager) must be passed on. The app ignores a repeated signal. With
 * no child to pass it to (Redis still starting), main() stops at its next step.
 */
function forwardSignals() {
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.on(signal, () => {
      stopSignal ??= signal;
      if (running(current)) current.kill(signal);
    });
  }
}

/**
 * `npm start` runs this launcher through `sh -c`; a SIGTERM to npm (a supervisor stopping it) ends
 * npm and the shell without passing the signal on, and the launcher is re-parented. Being orphaned
 * means the same as that signal: stop the app, then the private Redis.
 */
function stopWhenOrphaned() {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    if (stopSignal) return;
    stopSignal = 'SIGTERM';
    if (running(current)) current.kill('SIGTERM');
  }, ORPHAN_CHECK_MS);
  timer.unref();
}

async function main() {
  forwardSignals();
  stopWhenOrphaned();
  process.on('exit', killPrivateRedisNow);
  // A closed stdout (`npm start | head`) must not take the launcher, and so the cleanup, down.
  process.stdout.on('error', () => undefined);
  const port = localRedisPort(process.env);
  if (port === undefined) process.exit(1);
  if (needsBuild()) await build();
  if (stopSignal) return finish(exitCodeOf(null, stopSignal));
  const redis = await prepareRedis(port);
  if (stopSignal) return finish(exitCodeOf(null, stopSignal));
  privateRedis?.once('exit', (code, signal) => {
    if (running(current)) console.error(`tawasul: the private redis-server stopped (${signal || code})`);
  });
  const env = { ...process.env };
  if (redis !== undefined && port !== REDIS_PORT) env.REDIS_URL = `redis://${REDIS_HOST}:${port}`;
  const status = await runApp(process.argv.slice(2), env, (started) => {
    const url = localUrl(started.host, started.port);
    void becomesReady(url, READY_WAIT_MS).then((ready) => {
      if (!running(current) || stopSignal) return;
      const lines = bannerLines(started, { ready, redis });
      process.stdout.write(`${lines.join('\n')}\n`);
    });
  });
  if (status !== 0 && addressInUse !== undefined) console.error(portHint(addressInUse));
  await finish(status);
}

/** What to do when the app's port is taken (often a second `npm start`). */
function portHint(port) {
  const which = port ? `port ${port}` : 'a port it listens on';
  return [
    `tawasul: ${which} is already in use (another npm start, or another program).`,
    '  Stop that program, or choose another port: PORT=3001 npm start (MANAGEMENT_PORT likewise).',
  ].join('\n');
}

module.exports = {
  needsBuild,
  newestSourceMtime,
  readDotEnv,
  redisPlan,
  findOnPath,
  redisAnswers,
  exitCodeOf,
  localRedisPort,
  bannerLines,
  portHint,
  REDIS_HINT,
};

if (require.main === module) {
  main().catch((err) => {
    console.error(`tawasul: npm start failed: ${err.message}`);
    process.exit(1);
  });
}
