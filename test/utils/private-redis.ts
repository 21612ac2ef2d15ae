import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { killOnExit } from './kill-on-exit';
import { freePort } from './wait';

export { freePort };

const REDIS_SERVER = process.env.TEST_REDIS_SERVER ?? '/usr/bin/redis-server';
const START_TIMEOUT_MS = 10_000;

export interface PrivateRedisOptions {
  /** Cluster mode with every slot on this one master. */
  cluster?: boolean;
  /**
   * With `cluster`: false leaves the node without slots, for a caller that forms a cluster of
   * several nodes (a node that owns every slot cannot join one).
   */
  assignSlots?: boolean;
  /** Extra redis-server arguments, e.g. ['--appendonly', 'yes']. */
  args?: string[];
}

export interface PrivateRedis {
  port: number;
  url: string;
  /** Its working directory (nodes.conf, log). */
  dir: string;
  /** SIGKILL, as a crash would, and wait for the process to be gone. */
  stop(): Promise<void>;
  /** SIGSTOP: the sockets stay open, nothing answers (a GC pause, a hung VM). */
  freeze(): void;
  /** SIGCONT after freeze(). */
  thaw(): void;
  /** Starts the server again on the same port and directory, after stop(). */
  restart(): Promise<void>;
  /** stop() and remove the directory; safe to call more than once. */
  dispose(): Promise<void>;
}

/** Every server started by this test file and still running, for killAllPrivateRedis(). */
const running = new Set<ChildProcess>();

/**
 * A detached shell that SIGKILLs the server once the test process is gone, even when it was
 * killed without running any hook. It stops watching as soon as the server exits by itself.
 */
function startWatchdog(redisPid: number): void {
  const script = `while kill -0 ${redisPid} 2>/dev/null; do if ! kill -0 ${process.pid} 2>/dev/null; then kill -9 ${redisPid}; exit 0; fi; sleep 1; done`;
  const watchdog = spawn('/bin/sh', ['-c', script], { detached: true, stdio: 'ignore' });
  watchdog.unref();
}

/**
 * The pid of the redis-server answering on `port`, read from INFO over a raw socket; undefined
 * while nothing (or a server still loading) answers. The pid tells our server from a stranger
 * that took the port between probing and binding.
 */
function answeringPid(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    let reply = '';
    const done = (pid: number | undefined): void => {
      socket.destroy();
      resolve(pid);
    };
    socket.setTimeout(500, () => done(undefined));
    socket.once('error', () => done(undefined));
    socket.once('connect', () => socket.write('INFO server\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (reply.startsWith('-')) return done(undefined);
      const match = /process_id:(\d+)\r\n/.exec(reply);
      if (match) done(Number(match[1]));
    });
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = START_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function spawnServer(port: number, dir: string, options: PrivateRedisOptions): ChildProcess {
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'no',
    '--daemonize',
    'no',
    '--logfile',
    join(dir, 'redis.log'),
  ];
  if (options.cluster) {
    // A node that never met another one reports an empty IP in CLUSTER SLOTS, and ioredis skips
    // nodes without a host (redis/ioredis#1025): announce the loopback address explicitly.
    args.push('--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'));
    args.push('--cluster-announce-ip', '127.0.0.1');
  }
  args.push(...(options.args ?? []));
  const child = spawn(REDIS_SERVER, args, { stdio: 'ignore' });
  running.add(child);
  killOnExit(child);
  child.once('exit', () => running.delete(child));
  if (child.pid !== undefined) startWatchdog(child.pid);
  return child;
}

/** Resolves once the child has exited (immediately when it already has). */
function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function startOn(port: number, dir: string, options: PrivateRedisOptions): Promise<ChildProcess> {
  const child = spawnServer(port, dir, options);
  let gone = false;
  void exited(child).then(() => (gone = true));
  try {
    await waitFor(`redis-server on port ${port}`, async () => {
      if (gone) throw new Error(`redis-server on port ${port} exited at start-up (see ${join(dir, 'redis.log')})`);
      return (await answeringPid(port)) === child.pid;
    });
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return child;
}

async function assignAllSlots(port: number): Promise<void> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    const info = await client.call('CLUSTER', 'INFO');
    if (!String(info).includes('cluster_slots_assigned:16384')) await client.call('CLUSTER', 'ADDSLOTSRANGE', 0, 16383);
    await waitFor('cluster_state:ok', async () =>
      String(await client.call('CLUSTER', 'INFO')).includes('cluster_state:ok'),
    );
  } finally {
    client.disconnect();
  }
}

/**
 * A redis-server of the test's own, on a free loopback port, without persistence: for tests that
 * stop, freeze or reconfigure Redis (the shared one at 6379 must never be disturbed).
 */
export async function startPrivateRedis(options: PrivateRedisOptions = {}): Promise<PrivateRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'tawasul-redis-'));
  let port = 0;
  let child: ChildProcess | undefined;
  // The free port may be taken between probing and binding: try a few.
  for (let attempt = 0; attempt < 5 && !child; attempt++) {
    port = await freePort();
    try {
      child = await startOn(port, dir, options);
    } catch (err) {
      if (attempt === 4) throw err;
    }
  }
  if (!child) throw new Error('could not start a private redis-server');
  let current: ChildProcess = child;
  const ownsEverySlot = options.cluster === true && options.assignSlots !== false;
  if (ownsEverySlot) {
    try {
      await assignAllSlots(port);
    } catch (err) {
      current.kill('SIGKILL');
      throw err;
    }
  }

  const stop = async (): Promise<void> => {
    current.kill('SIGKILL');
    await exited(current);
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    stop,
    freeze: () => void current.kill('SIGSTOP'),
    thaw: () => void current.kill('SIGCONT'),
    restart: async () => {
      await stop();
      current = await startOn(port, dir, options);
      if (ownsEverySlot) await assignAllSlots(port);
    },
    dispose: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** For afterAll: kills every private server this process started that is still running. */
export function killAllPrivateRedis(): void {
  for (const child of running) child.kill('SIGKILL');
}
