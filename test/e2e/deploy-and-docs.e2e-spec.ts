import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  accessSync,
  existsSync,
  constants,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseEnv } from 'node:util';
import { type NestFastifyApplication } from '@nestjs/platform-fastify';
import { type OpenAPIObject } from '@nestjs/swagger';
import { type FastifyInstance } from 'fastify';
import { parseAllDocuments } from 'yaml';
import { AppConfig } from '../../src/config/app-config';
import { EnvSchema } from '../../src/config/env.schema';
import { envVariableNames, validateEnv } from '../../src/config/validate-env';
import { createApp } from '../../src/http/create-app';
import { MetricsService } from '../../src/metrics/metrics.service';
import { generatedSection, openApiMarkdown, withGeneratedSection } from '../utils/openapi-markdown';
import { testEnv } from '../utils/test-env';

/**
 * What operators and new users touch outside src/ must agree with the app: Kubernetes probes hit
 * paths the app serves on the port it listens on, the image starts dist/main.js, .env.example
 * lists every variable with the schema's defaults, and `npm start` passes arguments, signals and
 * exit codes through. Needs no Redis: the apps here point at a closed port on purpose.
 */

const ROOT = resolve(__dirname, '..', '..');
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
type Doc = Record<string, any>;

interface StartHelpers {
  needsBuild(root: string): boolean;
  readDotEnv(root: string): Record<string, string | undefined>;
  redisPlan(
    env: Record<string, string | undefined>,
    dotEnv?: Record<string, string | undefined>,
  ): { probeLocal: boolean; mayStartPrivate: boolean };
  findOnPath(name: string, env: Record<string, string | undefined>): string | undefined;
  redisAnswers(port: number, host?: string, timeoutMs?: number): Promise<boolean>;
  exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number;
}
const startHelpers = createRequire(__filename)(join(ROOT, 'scripts', 'start.js')) as StartHelpers;

function loadManifests(): Doc[] {
  const dir = join(ROOT, 'deploy', 'k8s');
  const docs: Doc[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
      expect({ file, errors: doc.errors.map((e) => e.message) }).toEqual({ file, errors: [] });
      const value = doc.toJS() as Doc | null;
      if (value) docs.push({ ...value, __file: file });
    }
  }
  return docs;
}

const manifests = loadManifests();
const ofKind = (kind: string): Doc[] => manifests.filter((d) => d.kind === kind);
const configMap = ofKind('ConfigMap')[0];
const secret = ofKind('Secret')[0];
const deployments = ofKind('Deployment');
const appPort = Number(configMap?.data?.PORT ?? 3000);
const managementPort: number | undefined = configMap?.data?.MANAGEMENT_PORT
  ? Number(configMap.data.MANAGEMENT_PORT)
  : undefined;

const roleOf = (deployment: Doc): string => {
  const env: Doc[] = deployment.spec.template.spec.containers[0].env ?? [];
  return env.find((e) => e.name === 'APP_ROLE')?.value as string;
};
const deploymentFor = (role: string): Doc => {
  const found = deployments.find((d) => roleOf(d) === role);
  if (!found) throw new Error(`no Deployment with APP_ROLE=${role}`);
  return found;
};
const containerOf = (deployment: Doc): Doc => deployment.spec.template.spec.containers[0];
const resolvePort = (container: Doc, port: number | string): number | undefined =>
  typeof port === 'number' ? port : (container.ports ?? []).find((p: Doc) => p.name === port)?.containerPort;
const probesOf = (container: Doc): [string, Doc][] =>
  (['startupProbe', 'livenessProbe', 'readinessProbe'] as const)
    .filter((k) => container[k])
    .map((k) => [k, container[k] as Doc]);

/** A port on loopback that nothing listens on (the app's Redis is "down" there). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('Kubernetes manifests', () => {
  it('are namespace-less, named, and carry one ConfigMap, one Secret, two Deployments, a Service and autoscalers', () => {
    for (const doc of manifests) {
      expect(doc.apiVersion).toEqual(expect.any(String));
      expect(doc.metadata?.name).toEqual(expect.any(String));
      expect(doc.metadata?.namespace).toBeUndefined();
    }
    expect(ofKind('ConfigMap')).toHaveLength(1);
    expect(ofKind('Secret')).toHaveLength(1);
    expect(deployments.map(roleOf).sort()).toEqual(['receiver', 'worker']);
    expect(ofKind('Service')).toHaveLength(1);
    // The receiver scales on CPU, the worker on its queue (KEDA: test/e2e/operations-manifests).
    expect(
      [...ofKind('HorizontalPodAutoscaler'), ...ofKind('ScaledObject')].map((h) => h.spec.scaleTargetRef.name).sort(),
    ).toEqual(deployments.map((d) => d.metadata.name).sort());
  });

  it('hold a ConfigMap + Secret that the app accepts for both roles in production', () => {
    for (const role of ['receiver', 'worker']) {
      expect(() => validateEnv({ ...configMap.data, ...secret.stringData, APP_ROLE: role })).not.toThrow();
    }
    expect(configMap.data.NODE_ENV).toBe('production');
  });

  it.each(['receiver', 'worker'])('%s: every probe targets the container port the app listens on', (role) => {
    const deployment = deploymentFor(role);
    const container = containerOf(deployment);
    expect(resolvePort(container, 'http')).toBe(appPort);
    const probes = probesOf(container);
    expect(probes.map(([kind]) => kind).sort()).toEqual(['livenessProbe', 'readinessProbe', 'startupProbe']);
    for (const [kind, probe] of probes) {
      expect({ kind, port: resolvePort(container, probe.httpGet.port as number | string) }).toEqual({
        kind,
        port: appPort,
      });
    }
    const envFrom: Doc[] = container.envFrom;
    expect(envFrom.map((e) => e.configMapRef?.name ?? e.secretRef?.name).sort()).toEqual(
      [configMap.metadata.name, secret.metadata.name].sort(),
    );
  });

  it.each(['receiver', 'worker'])('%s: runs as non-root on a read-only root filesystem', (role) => {
    const pod = deploymentFor(role).spec.template.spec;
    const container = containerOf(deploymentFor(role));
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    // The image's USER is the name `node`; the kubelet can only verify non-root from a number.
    expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(container.securityContext.allowPrivilegeEscalation).toBe(false);
    expect(container.resources.requests.cpu).toBeDefined(); // the CPU HPAs need requests
  });

  it('give the receiver a grace period longer than its preStop sleep plus SHUTDOWN_DRAIN_MS', () => {
    const deployment = deploymentFor('receiver');
    const preStop: string[] = containerOf(deployment).lifecycle.preStop.exec.command;
    expect(preStop[0]).toBe('sleep');
    const drainMs = Number(configMap.data.SHUTDOWN_DRAIN_MS ?? new EnvSchema().SHUTDOWN_DRAIN_MS);
    const graceMs = Number(deployment.spec.template.spec.terminationGracePeriodSeconds) * 1000;
    expect(graceMs).toBeGreaterThan(Number(preStop[1]) * 1000 + drainMs);
    expect(deployment.spec.replicas).toBe(2);
  });

  it('give the worker a grace period longer than one LLM call (its job in flight finishes)', () => {
    const deployment = deploymentFor('worker');
    const llmTimeoutMs = Number(configMap.data.LLM_TIMEOUT_MS ?? new EnvSchema().LLM_TIMEOUT_MS);
    expect(Number(deployment.spec.template.spec.terminationGracePeriodSeconds) * 1000).toBeGreaterThan(llmTimeoutMs);
  });

  it.each(['receiver', 'worker'])('%s: Prometheus annotations point at the port that serves /metrics', (role) => {
    const deployment = deploymentFor(role);
    const annotations: Doc = deployment.spec.template.metadata.annotations;
    const container = containerOf(deployment);
    const metricsPort = managementPort ?? appPort;
    expect(Number(annotations['prometheus.io/port'])).toBe(metricsPort);
    expect(annotations['prometheus.io/path']).toBe('/metrics');
    expect((container.ports as Doc[]).map((p) => p.containerPort)).toContain(metricsPort);
  });

  it('route the Service to the receiver only, port 80 to the app port', () => {
    const service = ofKind('Service')[0];
    const receiverLabels: Doc = deploymentFor('receiver').spec.template.metadata.labels;
    const workerLabels: Doc = deploymentFor('worker').spec.template.metadata.labels;
    const selector: Doc = service.spec.selector;
    const matches = (labels: Doc): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v);
    expect(matches(receiverLabels)).toBe(true);
    expect(matches(workerLabels)).toBe(false);
    expect(service.spec.ports[0].port).toBe(80);
    expect(resolvePort(containerOf(deploymentFor('receiver')), service.spec.ports[0].targetPort as string)).toBe(
      appPort,
    );
  });
});

describe.each(['receiver', 'worker'])('the %s app serves the paths its manifest probes', (role) => {
  let app: NestFastifyApplication;
  let url: string;
  beforeAll(async () => {
    const redisUrl = `redis://127.0.0.1:${await closedPort()}`;
    const config = new AppConfig(validateEnv(testEnv({ APP_ROLE: role, REDIS_URL: redisUrl })));
    app = await createApp(config);
    await app.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await app?.close();
  });

  it('startup and liveness probes answer 200 even with Redis down (live never touches Redis)', async () => {
    const container = containerOf(deploymentFor(role));
    for (const kind of ['startupProbe', 'livenessProbe']) {
      const res = await fetch(`${url}${container[kind].httpGet.path}`);
      expect({ kind, status: res.status }).toEqual({ kind, status: 200 });
    }
  });

  it('the readiness probe path is the Redis-aware one: 503 while Redis is down', async () => {
    const path = containerOf(deploymentFor(role)).readinessProbe.httpGet.path as string;
    const res = await fetch(`${url}${path}`);
    expect(res.status).toBe(503);
    const body = (await res.json()) as Doc;
    expect(body.error.redis.status).toBe('down');
  });
});

describe('Dockerfile and .dockerignore', () => {
  const dockerfile = read('Dockerfile').replace(/\\\n/g, ' ');
  const instructions = dockerfile
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const last = (keyword: string): string | undefined =>
    instructions.filter((l) => l.toUpperCase().startsWith(`${keyword} `)).pop();

  it('starts node dist/main.js as the non-root node user, in production mode, on the app port', () => {
    expect(JSON.parse(last('ENTRYPOINT')!.slice('ENTRYPOINT'.length))).toEqual(['node', 'dist/main.js']);
    expect(last('USER')).toBe('USER node');
    expect(last('EXPOSE')).toBe(`EXPOSE ${appPort}`);
    expect(dockerfile).toMatch(/ENV NODE_ENV=production/);
    expect(last('HEALTHCHECK')).toContain('/health/live');
  });

  it('builds in one stage and installs only production dependencies in the runtime stage', () => {
    const stages = dockerfile.split(/^FROM /m).slice(1);
    expect(stages).toHaveLength(2);
    expect(stages[0]).toMatch(/RUN npm ci/);
    expect(stages[0]).toMatch(/RUN npm run build/);
    expect(stages[1]).toMatch(/RUN npm ci --omit=dev/);
    expect(stages[1]).toMatch(/COPY --from=build \/app\/dist \.\/dist/);
    expect(stages[1]).toMatch(/COPY config \.\/config/);
  });

  it('keeps secrets and build output out of the build context', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim());
    for (const entry of ['.env', 'node_modules', 'dist', '.git', 'coverage']) expect(ignored).toContain(entry);
  });
});

describe('package.json scripts and .ci/run', () => {
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };

  it('has the scripts operators and CI use', () => {
    for (const name of ['build', 'start', 'start:prod', 'lint', 'test', 'test:e2e']) {
      expect({ name, defined: typeof pkg.scripts[name] }).toEqual({ name, defined: 'string' });
    }
    expect(pkg.scripts.start).toBe('node scripts/start.js');
    expect(pkg.scripts['start:prod']).toBe('node dist/main.js');
  });

  it('.ci/run is an executable strict bash script running ci, lint, build and test in that order', () => {
    accessSync(join(ROOT, '.ci', 'run'), constants.X_OK);
    const script = read('.ci/run');
    expect(script).toMatch(/^#!\/usr\/bin\/env bash\n/);
    expect(script).toMatch(/^set -euo pipefail$/m);
    const order = ['npm ci', 'npm run lint', 'npm run build', 'npm test'].map((step) =>
      script.indexOf(`timeout "$(remaining)" ${step}`),
    );
    expect(order.every((i) => i > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
  });
});

describe('.env.example', () => {
  const text = read('.env.example');
  const entries = text
    .split('\n')
    .map((line) => /^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ name: m[2], commented: m[1] !== undefined, value: m[3] }));
  const defaults = new EnvSchema() as unknown as Record<string, string | number | boolean | undefined>;

  it('lists every variable the schema knows exactly once, and no other', () => {
    const names = entries.map((e) => e.name);
    expect([...names].sort()).toEqual([...envVariableNames()].sort());
  });

  it("shows each variable's schema default; variables without one are commented out", () => {
    for (const { name, commented, value } of entries) {
      const fallback = defaults[name];
      if (fallback === undefined) expect({ name, commented }).toEqual({ name, commented: true });
      else expect({ name, value }).toEqual({ name, value: String(fallback) });
    }
  });

  it('copied to .env as it is, changes nothing: it validates to exactly the defaults', () => {
    const fromFile = validateEnv(parseEnv(text));
    expect(JSON.parse(JSON.stringify(fromFile))).toEqual(JSON.parse(JSON.stringify(validateEnv({}))));
  });

  it.each(readdirSync(join(ROOT, 'config', 'examples')).filter((f) => f.endsWith('.env')))(
    'config/examples/%s is a valid configuration',
    (file) => {
      const env = parseEnv(read(`config/examples/${file}`));
      expect(() => validateEnv(env)).not.toThrow();
      for (const name of Object.keys(env)) expect(envVariableNames()).toContain(name);
    },
  );
});

describe('config data files', () => {
  it('pricing.json: dated tables in order, a rate for every market and category, the UAE within the published ranges', () => {
    const pricing = JSON.parse(read('config/pricing.json')) as Doc;
    const tables = pricing.tables as Doc[];
    const dates = tables.map((t) => t.effectiveFrom as string);
    for (const d of dates) expect(d).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect([...dates].sort()).toEqual(dates);
    const markets = [...new Set([...Object.values(pricing.markets as Doc), pricing.defaultMarket])];
    for (const table of tables) {
      for (const market of markets) {
        for (const category of ['marketing', 'utility', 'authentication', 'service']) {
          expect(table.rates[market][category]).toBeGreaterThanOrEqual(0);
        }
      }
    }
    expect(pricing.markets['971']).toBe('AE');
    const ae = tables[tables.length - 1].rates.AE;
    expect(ae.marketing).toBeGreaterThanOrEqual(0.04);
    expect(ae.marketing).toBeLessThanOrEqual(0.05);
    expect(ae.utility).toBeGreaterThanOrEqual(0.01);
    expect(ae.utility).toBeLessThanOrEqual(0.016);
    expect(ae.authentication).toBeGreaterThanOrEqual(0.015);
    expect(ae.authentication).toBeLessThanOrEqual(0.018);
  });

  it('escalation.json: the required default keywords escalate on their own, and the human-request phrases are there', () => {
    const escalation = JSON.parse(read('config/escalation.json')) as Doc;
    const threshold = new EnvSchema().ESCALATION_THRESHOLD;
    for (const word of ['complaint', 'lawsuit', 'lawyer', 'refund', 'شكوى', 'محامي', 'قضية']) {
      expect({ word, weight: escalation.keywords[word] >= threshold }).toEqual({ word, weight: true });
    }
    for (const phrase of ['human', 'agent', 'representative', 'talk to someone', 'موظف', 'شخص حقيقي', 'خدمة العملاء']) {
      expect(escalation.humanRequest).toContain(phrase);
    }
  });
});

describe('README', () => {
  const readme = read('README.md');

  it('names only metrics that the app registers', async () => {
    const section = readme.slice(
      readme.indexOf('### Metrics'),
      readme.indexOf('\n### ', readme.indexOf('### Metrics') + 1),
    );
    const named = [...section.matchAll(/`(tawasul_[a-z_]+)`/g)].map((m) => m[1]);
    expect(named.length).toBeGreaterThan(3);
    const registered = (await new MetricsService().registry.getMetricsAsJSON()).map((m) => m.name);
    for (const name of named) expect(registered).toContain(name);
  });

  it('documents the health endpoints, the boot flag and the Redis it needs', () => {
    for (const phrase of ['/health/live', '/health/ready', 'APP_ROLE', '--role', 'noeviction', 'appendfsync']) {
      expect(readme).toContain(phrase);
    }
  });
});

/**
 * `METHOD /path` of every route a Fastify instance serves, read off its radix tree: a node's path
 * is its parent's plus its own label (`co` → `nversations/` → `:waId`), and a node that ends a
 * route lists the route's methods. (`commonPrefix: false` would print `/v1/*` as `/v1` + `*`.)
 */
function servedRoutes(fastify: FastifyInstance): string[] {
  const routes: string[] = [];
  const paths: string[] = [];
  for (const line of fastify.printRoutes().split('\n')) {
    // Each level of the tree is indented by four characters: `│   ├── label (GET, HEAD)`.
    const at = line.search(/[├└]── /);
    if (at < 0) continue;
    const depth = at / 4;
    const [, segment, methods] = /^(.*?)(?: \(([A-Z, ]+)\))?$/.exec(line.slice(at + 4))!;
    paths.length = depth;
    paths.push(`${depth > 0 ? paths[depth - 1] : ''}${segment}`);
    for (const method of methods?.split(', ') ?? []) routes.push(`${method} ${paths[depth]}`);
  }
  return routes;
}

describe('docs/http-api.md', () => {
  const PAGE = 'docs/http-api.md';
  let app: NestFastifyApplication;
  let url: string;
  beforeAll(async () => {
    // A receiver with every optional part on: /v1 (API_KEYS), the sandbox and its demo clinic
    // (BSP_PROVIDER=sandbox, no CLINIC_API_BASE_URL), /chatwoot/webhook (CHATWOOT_BASE_URL), and
    // /metrics and /admin/queues on the public port (ADMIN_PASSWORD, no MANAGEMENT_PORT).
    const redisUrl = `redis://127.0.0.1:${await closedPort()}`;
    const env = testEnv({
      APP_ROLE: 'receiver',
      REDIS_URL: redisUrl,
      API_KEYS: 'docs-key',
      BSP_PROVIDER: 'sandbox',
      ADMIN_PASSWORD: 'docs-password',
      CHATWOOT_BASE_URL: 'http://127.0.0.1:9',
      CHATWOOT_WEBHOOK_TOKEN: 'docs-token',
    });
    app = await createApp(new AppConfig(validateEnv(env)));
    await app.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await app?.close();
  });

  it('its /v1 reference is what /v1/openapi.json says (UPDATE_DOCS=1 rewrites it)', async () => {
    const res = await fetch(`${url}/v1/openapi.json`);
    expect(res.status).toBe(200);
    const rendered = openApiMarkdown((await res.json()) as OpenAPIObject);
    if (process.env.UPDATE_DOCS === '1') writeFileSync(join(ROOT, PAGE), withGeneratedSection(read(PAGE), rendered));
    // On a difference: change the decorators in src/api/, not the page, and run with UPDATE_DOCS=1.
    expect(generatedSection(read(PAGE))).toEqual(rendered);
  });

  it('names every route the app serves as `METHOD /path`', () => {
    const fastify: FastifyInstance = app.getHttpAdapter().getInstance();
    const served = servedRoutes(fastify);
    // The listing itself works: routes of Nest controllers, of plain Fastify and of bull-board.
    expect(served).toEqual(
      expect.arrayContaining(['GET /v1/openapi.json', 'DELETE /v1/conversations/:waId', 'GET /admin/queues']),
    );
    const all = new Set(served);
    const page = read(PAGE);
    const missing = served.filter((route) => {
      const [method, path] = route.split(' ');
      // Fastify answers HEAD wherever GET is served (exposeHeadRoutes); the page says so once.
      if (method === 'HEAD' && all.has(`GET ${path}`)) return false;
      // The /v1 fallback (installApiFallback) answers what no route serves: "Paths and methods no route serves".
      if (path === '/v1' || path === '/v1/*') return false;
      // bull-board's scripts and styles for its page, one wildcard route.
      if (path === '/admin/queues/static/*') return false;
      // bull-board serves its page with and without the trailing slash.
      const named = `${method} ${path.replace(/(.)\/$/, '$1')}`;
      const escaped = named.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      return !new RegExp(`(?<![A-Z])${escaped}(?![\\w/.:*-])`).test(page);
    });
    expect(missing).toEqual([]);
  });
});

describe('the repository explains itself', () => {
  /** Every file git would ship: tracked and new ones, minus what .gitignore keeps out. */
  const shipped = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], {
    cwd: ROOT,
    encoding: 'utf8',
  })
    .split('\n')
    .filter((f) => f !== '' && existsSync(join(ROOT, f)));
  const textual = shipped.filter((f) => /\.(ts|js|md|json|ya?ml|sh|env|example)$|^\.ci\/run$|Dockerfile$/.test(f));

  it('cites no document kept outside it (the contract and notes of the project are in docs/)', () => {
    // The names are put together here so that this file does not cite them itself.
    const [spec, protocols, style, shared] = [
      ['SP', 'EC'],
      ['PROTO', 'COLS'],
      ['STY', 'LE'],
      ['sha', 'red'],
    ].map((parts) => parts.join(''));
    const outside = new RegExp(`\\b(${spec}|${protocols}|${style})\\.md\\b|\\b${spec} §|\\.\\./${shared}/`);
    const citing = textual.filter((f) => outside.test(read(f)));
    expect(citing).toEqual([]);
  });

  it('every relative link of its Markdown files points at a file or folder that exists', () => {
    const broken: string[] = [];
    for (const file of shipped.filter((f) => f.endsWith('.md') && !f.startsWith('test/fixtures/'))) {
      const text = read(file).replace(/```[\s\S]*?```/g, '');
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue;
        const path = decodeURIComponent(target.split('#')[0]);
        if (!existsSync(resolve(ROOT, dirname(file), path))) broken.push(`${file}: ${target}`);
      }
    }
    expect(broken).toEqual([]);
  });
});

describe('scripts/start.js helpers', () => {
  it('redisPlan: probes 127.0.0.1:6379 unless Redis is configured explicitly; never a private one in production', () => {
    const { redisPlan } = startHelpers;
    expect(redisPlan({})).toEqual({ probeLocal: true, mayStartPrivate: true });
    expect(redisPlan({ REDIS_URL: '' })).toEqual({ probeLocal: true, mayStartPrivate: true });
    expect(redisPlan({ NODE_ENV: 'production' })).toEqual({ probeLocal: true, mayStartPrivate: false });
    expect(redisPlan({ REDIS_URL: 'redis://127.0.0.1:6379' })).toEqual({ probeLocal: false, mayStartPrivate: false });
    expect(redisPlan({ REDIS_CLUSTER_NODES: 'r1:6379' })).toEqual({ probeLocal: false, mayStartPrivate: false });
    expect(redisPlan({}, { NODE_ENV: 'production' })).toEqual({ probeLocal: true, mayStartPrivate: false });
    expect(redisPlan({}, { REDIS_URL: 'rediss://r:6380' })).toEqual({ probeLocal: false, mayStartPrivate: false });
    // The real environment wins over .env, as in the app.
    expect(redisPlan({ NODE_ENV: 'development' }, { NODE_ENV: 'production' }).mayStartPrivate).toBe(true);
  });

  describe('with a scratch project directory', () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'tawasul-start-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('readDotEnv reads .env without exporting it', () => {
      expect(startHelpers.readDotEnv(dir)).toEqual({});
      writeFileSync(join(dir, '.env'), 'NODE_ENV=production\n# REDIS_URL=redis://x\nTAWASUL_DOTENV_PROBE=1\n');
      expect(startHelpers.readDotEnv(dir)).toEqual({ NODE_ENV: 'production', TAWASUL_DOTENV_PROBE: '1' });
      expect(process.env.TAWASUL_DOTENV_PROBE).toBeUndefined();
    });

    it('needsBuild: when dist/main.js is missing or older than a source file (specs do not count)', () => {
      mkdirSync(join(dir, 'src', 'deep'), { recursive: true });
      writeFileSync(join(dir, 'src', 'deep', 'a.ts'), '');
      const past = new Date(Date.now() - 60_000);
      utimesSync(join(dir, 'src', 'deep', 'a.ts'), past, past);
      expect(startHelpers.needsBuild(dir)).toBe(true);
      mkdirSync(join(dir, 'dist'));
      writeFileSync(join(dir, 'dist', 'main.js'), '');
      expect(startHelpers.needsBuild(dir)).toBe(false);
      const future = new Date(Date.now() + 60_000);
      writeFileSync(join(dir, 'src', 'deep', 'a.spec.ts'), '');
      utimesSync(join(dir, 'src', 'deep', 'a.spec.ts'), future, future);
      expect(startHelpers.needsBuild(dir)).toBe(false);
      utimesSync(join(dir, 'src', 'deep', 'a.ts'), future, future);
      expect(startHelpers.needsBuild(dir)).toBe(true);
    });
  });

  it('findOnPath finds executables on PATH only', () => {
    expect(startHelpers.findOnPath(process.execPath.split('/').pop()!, { PATH: dirname(process.execPath) })).toBe(
      process.execPath,
    );
    expect(startHelpers.findOnPath('tawasul-no-such-binary', { PATH: dirname(process.execPath) })).toBeUndefined();
  });

  it('exitCodeOf reports a signal death the way a shell does', () => {
    expect(startHelpers.exitCodeOf(0, null)).toBe(0);
    expect(startHelpers.exitCodeOf(3, null)).toBe(3);
    expect(startHelpers.exitCodeOf(null, 'SIGTERM')).toBe(143);
    expect(startHelpers.exitCodeOf(null, 'SIGKILL')).toBe(137);
  });

  describe('redisAnswers', () => {
    const servers: Server[] = [];
    const sockets = new Set<Socket>();
    async function fakeServer(reply: string | undefined): Promise<number> {
      const server = createServer((socket) => {
        sockets.add(socket);
        socket.on('data', () => {
          if (reply !== undefined) socket.write(reply);
        });
      });
      servers.push(server);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      return (server.address() as AddressInfo).port;
    }
    afterAll(async () => {
      for (const s of sockets) s.destroy();
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    });

    it('is true for a Redis (PONG, or NOAUTH from one with a password) and false otherwise', async () => {
      expect(await startHelpers.redisAnswers(await fakeServer('+PONG\r\n'))).toBe(true);
      expect(await startHelpers.redisAnswers(await fakeServer('-NOAUTH Authentication required.\r\n'))).toBe(true);
      expect(await startHelpers.redisAnswers(await fakeServer('HTTP/1.1 400 Bad Request\r\n\r\n'))).toBe(false);
      expect(await startHelpers.redisAnswers(await fakeServer(undefined), '127.0.0.1', 300)).toBe(false);
      expect(await startHelpers.redisAnswers(await closedPort())).toBe(false);
    });
  });
});

describe('npm start (scripts/start.js) as a process', () => {
  // A scratch project whose dist/main.js is a stand-in app: the launcher's own duties (no build
  // when dist/ is fresh, argv, signal forwarding, exit code) are tested without building or Redis.
  const FAKE_APP = `
console.log('argv=' + JSON.stringify(process.argv.slice(2)));
const exitArg = process.argv.find((a) => a.startsWith('--exit='));
if (exitArg) process.exit(Number(exitArg.slice(7)));
if (process.argv.includes('--kill-self')) process.kill(process.pid, 'SIGKILL');
process.on('SIGTERM', () => { console.log('app got SIGTERM'); setTimeout(() => process.exit(0), 50); });
setInterval(() => {}, 1000);
`;
  let dir: string;
  const children: ChildProcess[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tawasul-launcher-'));
    mkdirSync(join(dir, 'scripts'));
    mkdirSync(join(dir, 'src'));
    mkdirSync(join(dir, 'dist'));
    copyFileSync(join(ROOT, 'scripts', 'start.js'), join(dir, 'scripts', 'start.js'));
    writeFileSync(join(dir, 'src', 'main.ts'), '');
    const past = new Date(Date.now() - 60_000);
    utimesSync(join(dir, 'src', 'main.ts'), past, past);
    writeFileSync(join(dir, 'dist', 'main.js'), FAKE_APP);
  });
  afterAll(() => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  function launch(args: string[]): { child: ChildProcess; out: () => string; exited: Promise<number | null> } {
    // An explicit REDIS_URL: the launcher neither probes 127.0.0.1:6379 nor starts a Redis.
    const child = spawn(process.execPath, [join(dir, 'scripts', 'start.js'), ...args], {
      cwd: dir,
      env: { PATH: process.env.PATH, REDIS_URL: 'redis://127.0.0.1:1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    return { child, out: () => out, exited };
  }

  it('passes the arguments through, forwards SIGTERM and exits with the app (0)', async () => {
    const run = launch(['--role=worker', '--another']);
    await waitFor('the stand-in app to start', () => run.out().includes('argv='));
    expect(run.out()).toContain('argv=["--role=worker","--another"]');
    expect(run.out()).not.toContain('building dist');
    expect(run.out()).not.toContain('no Redis answers');
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(run.out()).toContain('app got SIGTERM');
  });

  it("exits with the app's own exit code", async () => {
    expect(await launch(['--exit=3']).exited).toBe(3);
  });

  it('reports an app killed by a signal as 128 + signal number', async () => {
    expect(await launch(['--kill-self']).exited).toBe(137);
  });
});
