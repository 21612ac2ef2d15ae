import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter as BullBoardFastifyAdapter } from '@bull-board/fastify';
import { InjectQueue } from '@nestjs/bullmq';
import { Injectable, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { Queue } from 'bullmq';
import { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import { type AppRole, servesHttpApi } from '../app-role';
import { AppConfig } from '../config/app-config';
import { type IngestItem } from '../dedup/ingest-item';
import { DEAD_LETTERS_QUEUE, TURNS_QUEUE } from '../queue/queue.constants';
import { basicAuth } from './basic-auth';

export const ADMIN_QUEUES_PATH = '/admin/queues';
export const ADMIN_USER = 'admin';

/** bull-board's API routes that would let the dashboard write jobs of its own making. */
const REFUSED_ROUTES = new Set(['/api/queues/:queueName/add', '/api/queues/:queueName/:jobId/update-data']);

/** /admin/queues exists on receivers (and `all`) only, and only with ADMIN_PASSWORD (else 404). */
export function dashboardEnabled(role: AppRole, config: AppConfig): boolean {
  return servesHttpApi(role) && Boolean(config.env.ADMIN_PASSWORD);
}

/**
 * The BullMQ dashboard (bull-board) at /admin/queues, behind basic auth: the `turns` queue, read
 * only (wake-ups carry no work of their own: the lanes' inboxes do), and the dead letters, whose
 * Retry re-runs the turn through its lane (DeadLetterProcessor).
 */
@Injectable()
export class QueueDashboard {
  constructor(
    @InjectQueue(TURNS_QUEUE) private readonly turns: Queue,
    @InjectQueue(DEAD_LETTERS_QUEUE) private readonly deadLetters: Queue,
    private readonly config: AppConfig,
  ) {}

  /** A Fastify plugin (encapsulated: the auth hook guards its routes only) to register once. */
  plugin(): FastifyPluginAsync {
    const board = new BullBoardFastifyAdapter();
    const turns = new BullMQAdapter(this.turns, {
      readOnlyMode: true,
      description: 'Wake-ups of lanes with work waiting; a lost one is re-armed by the sweeper.',
    });
    const deadLetters = new BullMQAdapter(this.deadLetters, {
      description: 'Turns given up. Retry runs the turn again through its lane, once per dead letter.',
    });
    deadLetters.setFormatter('data', withoutTexts);
    createBullBoard({
      queues: [turns, deadLetters],
      serverAdapter: board,
      options: {
        uiConfig: { boardTitle: 'tawasul', hideDocsLink: true },
        handlerHooks: {
          // A retry must re-run exactly what the turn held: no jobs or data written by hand.
          before: ({ route }) =>
            REFUSED_ROUTES.has(route)
              ? { allow: false, status: 405, message: 'not allowed on this dashboard' }
              : undefined,
        },
      },
    });
    board.setBasePath(ADMIN_QUEUES_PATH);
    const auth = basicAuth(ADMIN_USER, this.config.env.ADMIN_PASSWORD ?? '', 'tawasul admin');
    return async (scope) => {
      scope.addHook('onRequest', auth);
      await scope.register(board.registerPlugin(), { prefix: ADMIN_QUEUES_PATH });
    };
  }
}

/**
 * Without MANAGEMENT_PORT the dashboard is served on the public port, by the app's own Fastify
 * (main.ts otherwise serves it on the management server).
 */
@Injectable()
export class PublicQueueDashboard implements OnModuleInit {
  constructor(
    private readonly host: HttpAdapterHost,
    private readonly dashboard: QueueDashboard,
  ) {}

  onModuleInit(): void {
    const fastify = this.host.httpAdapter?.getInstance<FastifyInstance>();
    if (fastify) void fastify.register(this.dashboard.plugin());
  }
}

/**
 * What the dashboard shows of a dead letter: which items, not what the patient wrote (the job
 * keeps the whole items, for the retry).
 */
function withoutTexts(data: { items?: IngestItem[] } | undefined): unknown {
  if (!data || !Array.isArray(data.items)) return data;
  return { ...data, items: data.items.map(({ key, kind, receivedAt }) => ({ key, kind, receivedAt })) };
}
