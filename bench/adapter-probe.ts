import 'reflect-metadata';
import { existsSync } from 'node:fs';
import {
  Body,
  Controller,
  Get,
  Headers,
  HttpCode,
  Inject,
  Module,
  type OnApplicationShutdown,
  Post,
  ServiceUnavailableException,
  UnauthorizedException,
  BadRequestException,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Redis } from 'ioredis';
import { BareIngestWork, type BenchWork } from './bare-ingest.work';
import {
  BENCH_APP_SECRET,
  BENCH_PHONE_NUMBER_ID,
  type LoadResult,
  ServerProcess,
  SignedMessages,
  appEntry,
  bareProcess,
  benchSettings,
  deletePrefix,
  fmt,
  freePort,
  loadRun,
  machineNote,
  median,
  receiverProcess,
  runPrefix,
  settle,
  table,
} from './load.harness';

/**
 * Which Nest HTTP adapter: a minimal Nest app (one controller: signature check over the raw body,
 * then exactly the bare server's work, bare-ingest.work.ts) on @nestjs/platform-fastify and on
 * @nestjs/platform-express, each loaded like the bare node:http server and compared with it; only
 * the HTTP layer differs between the three. With PROBE_WORK=full and a build (dist/main.js), our
 * receiver runs too, which separates what the framework costs from what our request path adds.
 * No npm script; the figures are in bench/README.md. Run from the repository root:
 *
 *   node -r ts-node/register/transpile-only bench/adapter-probe.ts
 *
 * Environment: as bench:ingest (BENCH_DURATION, BENCH_WARMUP, BENCH_CONNECTIONS, BENCH_SENDERS,
 * BENCH_NODE_FLAGS, BENCH_PROFILE_DIR, REDIS_URL), plus PROBE_WORK = full (default: signature, Lua
 * script, wake-up add) or wake-only (signature and one BullMQ add, no Lua), PROBE_ROUNDS (3) and
 * PROBE_WITH_RECEIVER=0 to leave our receiver out. With `--serve=fastify|express` this file is the
 * probe server itself (the orchestrator starts it that way).
 */

type Adapter = 'fastify' | 'express';
const WORK = Symbol('work');

@Controller('webhook')
class ProbeController {
  constructor(@Inject(WORK) private readonly work: BareIngestWork) {}

  // The ordinary Nest way: decorators, return value, exceptions. Same code on both adapters.
  @Post()
  @HttpCode(200)
  async ingest(@Headers('x-hub-signature-256') signature: string | undefined, @Body() raw: unknown): Promise<string> {
    if (!Buffer.isBuffer(raw) || !this.work.signatureOk(signature, raw)) throw new UnauthorizedException();
    const status = await this.work.ingest(raw);
    if (status === 400) throw new BadRequestException();
    if (status === 503) throw new ServiceUnavailableException();
    return 'OK';
  }
}

@Controller('health')
class ProbeHealthController {
  @Get()
  ready(): string {
    return 'ok';
  }
}

async function serve(adapterName: Adapter): Promise<void> {
  const env = process.env;
  const work = new BareIngestWork({
    redisUrl: env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    prefix: env.REDIS_PREFIX ?? 'bench_probe',
    appSecret: BENCH_APP_SECRET,
    phoneNumberId: BENCH_PHONE_NUMBER_ID,
    work: (env.PROBE_WORK as BenchWork | undefined) ?? 'full',
  });

  @Module({
    controllers: [ProbeController, ProbeHealthController],
    providers: [{ provide: WORK, useValue: work }],
  })
  class ProbeModule implements OnApplicationShutdown {
    async onApplicationShutdown(): Promise<void> {
      await work.close();
    }
  }

  const port = Number(env.PORT ?? 3200);
  // Both keep the body as raw bytes for the HMAC: no JSON parsing by the framework.
  if (adapterName === 'fastify') {
    const { FastifyAdapter } = await import('@nestjs/platform-fastify');
    const app = await NestFactory.create(ProbeModule, new FastifyAdapter(), { bodyParser: false, logger: ['error'] });
    (app as import('@nestjs/platform-fastify').NestFastifyApplication).useBodyParser('application/json');
    app.enableShutdownHooks(['SIGTERM', 'SIGINT']);
    await app.listen(port, '127.0.0.1');
  } else {
    const { ExpressAdapter } = await import('@nestjs/platform-express');
    const app = await NestFactory.create(ProbeModule, new ExpressAdapter(), { bodyParser: false, logger: ['error'] });
    (app as import('@nestjs/platform-express').NestExpressApplication).useBodyParser('raw', {
      type: 'application/json',
      limit: '3mb',
    });
    app.enableShutdownHooks(['SIGTERM', 'SIGINT']);
    await app.listen(port, '127.0.0.1');
  }
}

interface ProbeTarget {
  name: string;
  prefix: string;
  server: ServerProcess;
}

/**
 * The bare server, the probe on each adapter and, when built (dist/main.js), our receiver too: it
 * tells apart what the framework costs from what our own request path adds.
 */
async function spawnProbeTargets(work: BenchWork, redisUrl: string): Promise<ProbeTarget[]> {
  const targets: ProbeTarget[] = [];
  const add = (name: string, prefix: string, server: ServerProcess): void => {
    targets.push({ name, prefix, server });
  };
  let prefix = runPrefix('probe_bare');
  add('bare', prefix, bareProcess('bare', prefix, await freePort(), redisUrl, work));
  for (const adapter of ['fastify', 'express'] as const) {
    prefix = runPrefix(`probe_${adapter}`);
    const port = await freePort();
    const args = ['-r', 'ts-node/register/transpile-only', __filename, `--serve=${adapter}`];
    const env = { REDIS_URL: redisUrl, PORT: String(port), REDIS_PREFIX: prefix, PROBE_WORK: work };
    add(`nest-${adapter}`, prefix, new ServerProcess(`nest-${adapter}`, `http://127.0.0.1:${port}`, args, env));
  }
  if (work === 'full' && process.env.PROBE_WITH_RECEIVER !== '0' && existsSync(appEntry())) {
    prefix = runPrefix('probe_ours');
    add('ours', prefix, await receiverProcess('ours', prefix, await freePort(), redisUrl));
  }
  return targets;
}

async function orchestrate(): Promise<void> {
  const settings = benchSettings();
  const work = (process.env.PROBE_WORK as BenchWork | undefined) ?? 'full';
  const rounds = Math.max(1, Number(process.env.PROBE_ROUNDS ?? 3) || 3);
  console.log(
    `adapter probe  work=${work}, ${settings.connections} connections, ${settings.durationS} s measured ` +
      `(+${settings.warmupS} s warm-up), ${rounds} round(s)`,
  );
  const redis = new Redis(settings.redisUrl, { maxRetriesPerRequest: 1 });
  const targets = await spawnProbeTargets(work, settings.redisUrl);
  try {
    await Promise.all(targets.map((t) => t.server.waitReady()));
    const messages = new SignedMessages(BENCH_APP_SECRET, BENCH_PHONE_NUMBER_ID, settings.senders);
    for (const t of targets) {
      if (settings.warmupS > 0) await loadRun(t.name, t.server.url, messages, settings.connections, settings.warmupS);
      await settle(redis, t.prefix);
      await deletePrefix(redis, t.prefix);
    }
    machineNote('before');
    const ratios = new Map<string, { rps: number[]; cpu: number[] }>(
      targets.map((t) => [t.name, { rps: [], cpu: [] }]),
    );
    for (let round = 1; round <= rounds; round++) {
      const results = new Map<string, { load: LoadResult; cpuPerReq: number; cpu: number }>();
      const order = round % 2 === 1 ? targets : [...targets].reverse();
      for (const t of order) {
        const cpu0 = t.server.cpuSeconds();
        t.server.profileStart();
        const load = await loadRun(t.name, t.server.url, messages, settings.connections, settings.durationS);
        const profile = await t.server.profileStop();
        if (profile) console.log(`${t.name}: CPU profile of the measured run in ${profile}`);
        const cpu = (t.server.cpuSeconds() - cpu0) / load.seconds;
        results.set(t.name, { load, cpu: cpu * 100, cpuPerReq: (cpu * 1e6) / load.rps });
        await settle(redis, t.prefix);
        await deletePrefix(redis, t.prefix);
      }
      const bare = results.get('bare')!;
      const rows = [
        [
          `round ${round}`,
          'req/s',
          'vs bare',
          'p50 ms',
          'p99 ms',
          'non-2xx',
          'errors',
          'CPU %',
          'CPU µs/req',
          'vs bare',
        ],
      ];
      for (const t of targets) {
        const { load, cpu, cpuPerReq } = results.get(t.name)!;
        ratios.get(t.name)!.rps.push(load.rps / bare.load.rps);
        ratios.get(t.name)!.cpu.push(cpuPerReq / bare.cpuPerReq);
        rows.push([
          t.name,
          fmt(load.rps, 0),
          fmt(load.rps / bare.load.rps, 2),
          fmt(load.p50, 2),
          fmt(load.p99, 2),
          String(load.non2xx),
          String(load.errors + load.timeouts),
          fmt(cpu, 0),
          fmt(cpuPerReq, 0),
          fmt(cpuPerReq / bare.cpuPerReq, 2),
        ]);
      }
      console.log(`\n${table(rows)}`);
    }
    machineNote('after');
    if (rounds > 1) {
      const rows = [[`median of ${rounds} rounds`, 'req/s vs bare', 'CPU/req vs bare']];
      for (const [name, r] of ratios) rows.push([name, fmt(median(r.rps), 2), fmt(median(r.cpu), 2)]);
      console.log(`\n${table(rows)}`);
    }
  } finally {
    await Promise.all(targets.map((t) => t.server.stop()));
    for (const t of targets) await deletePrefix(redis, t.prefix);
    redis.disconnect();
  }
}

const serveArg = process.argv.find((a) => a.startsWith('--serve='))?.slice('--serve='.length);
(serveArg ? serve(serveArg as Adapter) : orchestrate()).catch((err: Error) => {
  console.error(`adapter probe failed: ${err.stack ?? err.message}`);
  process.exitCode = 1;
});
