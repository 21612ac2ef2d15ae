#!/usr/bin/env node
'use strict';
/**
 * `npm start`: the one-machine default (SPEC §7). Builds dist/ when it is missing or older than
 * src/, makes sure a Redis answers on 127.0.0.1:6379 (starting a private, throw-away one when that
 * is allowed and possible), then runs `node dist/main.js` with the same arguments and exit code.
 *
 * The app itself loads .env and validates it; this launcher only peeks at three variables in .env
 * (REDIS_URL, REDIS_CLUSTER_NODES, NODE_ENV) so that it never starts a private Redis that the
 * configuration rules out. Node built-ins only: it must run right after `npm ci`.
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
const REDIS_HINT =
  'tawasul: no Redis answers on 127.0.0.1:6379; install one (sudo apt-get install redis-server) or run ' +
  '`docker run -p 6379:6379 redis:7`. Starting anyway: /health/ready reports 503 until Redis is up.';

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
 * there. SPEC §7: never with NODE_ENV=production, never when REDIS_URL (or a Cluster) is explicit.
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

/** The child that signals sent to this launcher go to: the build, then the app. */
let current;
/** The private redis-server, when this launcher started one: stopped whenever the launcher exits. */
let privateRedis;

function stopPrivateRedis() {
  if (privateRedis && privateRedis.exitCode === null && privateRedis.signalCode === null) privateRedis.kill('SIGTERM');
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

async function build() {
  console.error('tawasul: building dist/ (npx nest build)…');
  const status = await run('npx', ['nest', 'build'], { shell: process.platform === 'win32' });
  if (status !== 0) {
    console.error('tawasul: the build failed; fix the errors above and run `npm start` again.');
    process.exit(status);
  }
}

/**
 * A private, throw-away Redis: no persistence, in its own process group so that Ctrl+C reaches
 * the app first (it drains against a live Redis) and the Redis is stopped after the app exits.
 */
async function startPrivateRedis(binary) {
  const args = ['--port', String(REDIS_PORT), '--bind', REDIS_HOST, '--save', '', '--appendonly', 'no'];
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
  const up = await Promise.race([waitForRedis(REDIS_PORT, 5000), exited]);
  if (!up) {
    if (child.exitCode === null) child.kill('SIGKILL');
    privateRedis = undefined;
    console.error(`tawasul: could not start a private redis-server on 127.0.0.1:6379:\n${output.trim()}`);
    return undefined;
  }
  console.error(
    'tawasul: started a private redis-server on 127.0.0.1:6379 (keeps nothing on disk; stops with the app)',
  );
  child.stdout.resume();
  child.stderr.resume();
  return child;
}

async function prepareRedis() {
  const plan = redisPlan(process.env, readDotEnv());
  if (!plan.probeLocal || (await redisAnswers())) return undefined;
  const binary = plan.mayStartPrivate ? findOnPath('redis-server') : undefined;
  const child = binary ? await startPrivateRedis(binary) : undefined;
  if (!child) console.error(REDIS_HINT);
  return child;
}

/**
 * The terminal's Ctrl+C already reaches the children (same process group); a SIGTERM sent to this
 * launcher alone (a process manager) must be passed on. The app ignores a repeated signal.
 */
function forwardSignals() {
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.on(signal, () => {
      if (current && current.exitCode === null && current.signalCode === null) current.kill(signal);
      else process.exit(exitCodeOf(null, signal));
    });
  }
}

async function main() {
  forwardSignals();
  process.on('exit', stopPrivateRedis);
  if (needsBuild()) await build();
  const redis = await prepareRedis();
  redis?.once('exit', (code, signal) => {
    if (current && current.exitCode === null)
      console.error(`tawasul: the private redis-server stopped (${signal || code})`);
  });
  const status = await run(process.execPath, [path.join(ROOT, 'dist', 'main.js'), ...process.argv.slice(2)]);
  process.exit(status);
}

module.exports = {
  needsBuild,
  newestSourceMtime,
  readDotEnv,
  redisPlan,
  findOnPath,
  redisAnswers,
  exitCodeOf,
  REDIS_HINT,
};

if (require.main === module) {
  main().catch((err) => {
    console.error(`tawasul: npm start failed: ${err.message}`);
    process.exit(1);
  });
}
