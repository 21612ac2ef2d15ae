import { readFileSync } from 'node:fs';
import { fmt, table } from './load.harness';

/**
 * Where a server's CPU went during a measured bench run, from a V8 profile written with
 * `BENCH_PROFILE_DIR=/tmp/prof npm run bench:ingest` (or the adapter probe):
 *
 *   node -r ts-node/register/transpile-only bench/cpu-profile.summary.ts /tmp/prof/<file>.cpuprofile [N] [requests]
 *
 * Prints self time by owner (our src/, each package, node internals, GC, idle), the top N
 * functions by self time, and the top N of our own and framework functions by inclusive time; given
 * the number of requests the run answered (the bench prints it), also the cost per request.
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
}

function owner(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1];
  const ours = /\/(dist|src|bench)\/(.+?)(\.js|\.ts)$/.exec(url);
  if (ours) return `${ours[1]}/${ours[2].split('/')[0]}`;
  if (url.startsWith('node:')) return 'node:internal';
  return url;
}

/** A JS frame's file (ours) or package; undefined for native and node-internal frames. */
function fileOwner(n: ProfileNode): string | undefined {
  const { url, functionName } = n.callFrame;
  if (functionName === '(garbage collector)' || functionName === '(idle)' || functionName === '(program)') {
    return functionName;
  }
  if (!url || url.startsWith('node:')) return undefined;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1];
  return /\/((?:dist|src|bench)\/.+?)(\.js|\.ts)$/.exec(url)?.[1] ?? url;
}

const frameKey = (n: ProfileNode): string => {
  const file = n.callFrame.url.replace(/^.*node_modules\//, '').replace(/^.*\/(dist|src|bench)\//, '$1/');
  return `${n.callFrame.functionName || '(anonymous)'} ${file}:${n.callFrame.lineNumber + 1}`;
};

function summarize(path: string, top: number, requests: number): void {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const msPerSample = (profile.endTime - profile.startTime) / 1000 / Math.max(1, profile.samples.length);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const total = profile.samples.length;
  const busy = profile.nodes
    .filter((n) => n.callFrame.functionName !== '(idle)')
    .reduce((sum, n) => sum + (n.hitCount ?? 0), 0);

  const byOwner = new Map<string, number>();
  const bySelf = new Map<string, number>();
  for (const n of profile.nodes) {
    const hits = n.hitCount ?? 0;
    if (hits === 0) continue;
    const o = owner(n.callFrame.url, n.callFrame.functionName);
    byOwner.set(o, (byOwner.get(o) ?? 0) + hits);
    bySelf.set(frameKey(n), (bySelf.get(frameKey(n)) ?? 0) + hits);
  }

  // Native and node-internal work (socket writes, HMAC, JSON.parse, timers) charged to the nearest
  // JS caller's file or package: "what did the ioredis calls cost, what did the signature check cost".
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const attributed = new Map<string, number>();
  for (const n of profile.nodes) {
    const hits = n.hitCount ?? 0;
    if (hits === 0) continue;
    let at: ProfileNode | undefined = n;
    let o = fileOwner(n);
    while (o === undefined && at) {
      const up = parent.get(at.id);
      at = up === undefined ? undefined : byId.get(up);
      o = at ? fileOwner(at) : undefined;
    }
    const key = o ?? owner(n.callFrame.url, n.callFrame.functionName);
    attributed.set(key, (attributed.get(key) ?? 0) + hits);
  }

  // Inclusive hits per function, each sample counted once per function even under recursion.
  const inclusive = new Map<string, number>();
  const walk = (id: number, onStack: Set<string>): number => {
    const n = byId.get(id)!;
    let hits = n.hitCount ?? 0;
    const key = frameKey(n);
    const fresh = !onStack.has(key);
    if (fresh) onStack.add(key);
    for (const child of n.children ?? []) hits += walk(child, onStack);
    if (fresh) {
      onStack.delete(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + hits);
    }
    return hits;
  };
  walk(profile.nodes[0].id, new Set());

  const pct = (hits: number): string => fmt((hits / busy) * 100, 1);
  const rows = (m: Map<string, number>, filter: (k: string) => boolean = () => true): string[][] =>
    [...m]
      .filter(([k]) => filter(k))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, hits]) => {
        const row = [k, fmt(hits * msPerSample, 0), pct(hits)];
        return requests > 0 ? [...row, fmt((hits * msPerSample * 1000) / requests, 1)] : row;
      });
  const head = (title: string): string[] => (requests > 0 ? [title, 'ms', '%', 'µs/req'] : [title, 'ms', '%']);

  console.log(
    `${path}\n${fmt((total * msPerSample) / 1000, 1)} s profiled, busy ${fmt((busy / total) * 100, 0)} %; ` +
      `percentages below are of busy time\n`,
  );
  console.log(table([head('self time by owner'), ...rows(byOwner)]));
  console.log(`\n${table([head('native time charged to its JS caller'), ...rows(attributed)])}`);
  console.log(`\n${table([head('top functions, self'), ...rows(bySelf)])}`);
  const interesting = (k: string): boolean =>
    /(dist|src|bench)\/|@nestjs|fastify|bullmq|ioredis|prom-client|pino/.test(k);
  console.log(`\n${table([head('ours and frameworks, inclusive'), ...rows(inclusive, interesting)])}`);
}

const [file, count, requests] = process.argv.slice(2);
if (!file) {
  console.error('usage: cpu-profile.summary.ts <file.cpuprofile> [top N] [requests answered, for µs/req]');
  process.exitCode = 1;
} else {
  summarize(file, Number(count ?? 30), Number(requests ?? 0));
}
