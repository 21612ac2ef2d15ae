import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Cluster, Redis } from 'ioredis';
import { startPrivateRedis, type PrivateRedis } from './private-redis';

const REDIS_CLI = process.env.TEST_REDIS_CLI ?? '/usr/bin/redis-cli';
const FORM_TIMEOUT_MS = 20_000;
const SLOTS = 16384;

export interface ClusterNode {
  host: string;
  port: number;
}

/** One master and the slot ranges it serves, as CLUSTER SLOTS reports them. */
export interface ClusterMaster extends ClusterNode {
  ranges: [number, number][];
}

export interface PrivateRedisCluster {
  servers: PrivateRedis[];
  /** For REDIS_URL: one node. In cluster mode the app takes only credentials and TLS from it. */
  url: string;
  /** For REDIS_CLUSTER_NODES: every node, `host:port,host:port…`. */
  nodes: string;
  /** How the cluster was formed: `redis-cli` or by hand (ADDSLOTSRANGE and MEET). */
  formedWith: 'redis-cli' | 'by hand';
  /** The masters and their slots, read from the first node. */
  masters(): Promise<ClusterMaster[]>;
  /** CLUSTER KEYSLOT, asked of the server rather than computed here. */
  keySlot(key: string): Promise<number>;
  /** A plain client per node, for per-node reads (SCAN, INFO); `dispose()` disconnects them. */
  client(node: ClusterNode): Redis;
  /** A cluster client seeded with every node (the same one each call); `dispose()` disconnects it. */
  cluster(): Cluster;
  /** Disconnects the clients, SIGKILLs the servers and removes their directories. */
  dispose(): Promise<void>;
}

/**
 * A real Redis Cluster of `masters` private redis-servers on free loopback ports, no replicas,
 * slots spread evenly: keys of different hash tags live on different processes, so a command or
 * script that mixes slots fails with CROSSSLOT, and a client that ignores MOVED reads nothing.
 */
export async function startRedisCluster(masters = 3): Promise<PrivateRedisCluster> {
  const servers: PrivateRedis[] = [];
  const clients = new Map<number, Redis>();
  let cluster: Cluster | undefined;
  const client = (node: ClusterNode): Redis => {
    let c = clients.get(node.port);
    if (!c) {
      c = new Redis({ host: node.host, port: node.port, maxRetriesPerRequest: 1, lazyConnect: false });
      c.on('error', () => undefined);
      clients.set(node.port, c);
    }
    return c;
  };
  const dispose = async (): Promise<void> => {
    cluster?.disconnect();
    cluster = undefined;
    for (const c of clients.values()) c.disconnect();
    clients.clear();
    await Promise.all(servers.map((s) => s.dispose()));
  };

  let formedWith: PrivateRedisCluster['formedWith'];
  try {
    for (let i = 0; i < masters; i++) servers.push(await startPrivateRedis({ cluster: true, assignSlots: false }));
    const nodes = servers.map((s) => ({ host: '127.0.0.1', port: s.port }));
    formedWith = existsSync(REDIS_CLI) ? 'redis-cli' : 'by hand';
    if (formedWith === 'redis-cli') await createWithRedisCli(nodes);
    else await createByHand(nodes.map(client));
    await waitConverged(nodes.map(client), masters);
  } catch (err) {
    await dispose();
    throw err;
  }

  const first = { host: '127.0.0.1', port: servers[0].port };
  return {
    servers,
    url: servers[0].url,
    nodes: servers.map((s) => `127.0.0.1:${s.port}`).join(','),
    formedWith,
    masters: () => readMasters(client(first)),
    keySlot: async (key) => Number(await client(first).call('CLUSTER', 'KEYSLOT', key)),
    client,
    cluster: () => (cluster ??= new Cluster(servers.map((s) => ({ host: '127.0.0.1', port: s.port })))),
    dispose,
  };
}

function createWithRedisCli(nodes: ClusterNode[]): Promise<void> {
  const args = ['--cluster', 'create', ...nodes.map((n) => `${n.host}:${n.port}`)];
  args.push('--cluster-replicas', '0', '--cluster-yes');
  return new Promise((resolve, reject) => {
    execFile(REDIS_CLI, args, { timeout: FORM_TIMEOUT_MS }, (err, stdout, stderr) => {
      // redis-cli reports some failures ("[ERR] Node … is not empty") with exit code 0.
      if (err || /\[ERR\]/.test(stdout)) {
        reject(new Error(`redis-cli --cluster create failed: ${err?.message ?? ''}\n${stdout}\n${stderr}`));
      } else {
        resolve();
      }
    });
  });
}

/** What `redis-cli --cluster create` does, for hosts without redis-cli. */
async function createByHand(clients: Redis[]): Promise<void> {
  const share = Math.ceil(SLOTS / clients.length);
  for (const [i, c] of clients.entries()) {
    // Distinct epochs up front, as redis-cli sets them: otherwise the nodes settle a collision first.
    await c.call('CLUSTER', 'SET-CONFIG-EPOCH', i + 1);
    await c.call('CLUSTER', 'ADDSLOTSRANGE', i * share, Math.min(SLOTS, (i + 1) * share) - 1);
  }
  for (const c of clients.slice(1)) await clients[0].call('CLUSTER', 'MEET', '127.0.0.1', c.options.port ?? 0);
}

/**
 * Every node says cluster_state:ok and knows every master: a node that has not heard of the
 * others yet would answer CLUSTER SLOTS with a partial map, and a client seeded there would
 * route wrongly until its next refresh.
 */
async function waitConverged(clients: Redis[], masters: number): Promise<void> {
  const deadline = Date.now() + FORM_TIMEOUT_MS;
  let last = '';
  for (;;) {
    const views = await Promise.all(
      clients.map(async (c) => {
        const info = String(await c.call('CLUSTER', 'INFO'));
        const known = (await readMasters(c)).length;
        return { ok: info.includes('cluster_state:ok') && known === masters, info, known };
      }),
    ).catch((err: Error) => [{ ok: false, info: err.message, known: 0 }]);
    if (views.every((v) => v.ok)) return;
    last = views.map((v) => `${v.known} masters; ${v.info.split('\r\n').slice(0, 3).join(' ')}`).join(' | ');
    if (Date.now() > deadline) throw new Error(`the cluster did not converge: ${last}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function readMasters(c: Redis): Promise<ClusterMaster[]> {
  const slots = (await c.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, ...unknown[]]][];
  const byPort = new Map<number, ClusterMaster>();
  for (const [start, end, [host, port]] of slots) {
    const master = byPort.get(port) ?? { host, port, ranges: [] };
    master.ranges.push([start, end]);
    byPort.set(port, master);
  }
  return [...byPort.values()].sort((a, b) => a.port - b.port);
}

/** The master serving `slot`, from CLUSTER SLOTS of any node of the cluster. */
export async function masterOfSlot(seed: Redis, slot: number): Promise<ClusterNode> {
  const master = (await readMasters(seed)).find((m) => m.ranges.some(([start, end]) => slot >= start && slot <= end));
  if (!master) throw new Error(`no master serves slot ${slot}`);
  return { host: master.host, port: master.port };
}

/** Every key on one node, SCANned to the end: a private server holds only the test's own keys. */
export async function scanKeys(node: Redis): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await node.scan(cursor, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}
