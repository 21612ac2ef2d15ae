import { type DynamicModule, Global, Injectable, Module, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { type FastifyInstance } from 'fastify';
import { serveMetrics } from './management-server';
import { MetricsService } from './metrics.service';
import { PendingAgeCollector } from './pending-age.collector';

/** /metrics on the app's own Fastify, for the role's public port. */
@Injectable()
class PublicMetrics implements OnModuleInit {
  constructor(
    private readonly host: HttpAdapterHost,
    private readonly metrics: MetricsService,
  ) {}

  onModuleInit(): void {
    const fastify = this.host.httpAdapter?.getInstance<FastifyInstance>();
    if (fastify) serveMetrics(fastify, this.metrics);
  }
}

/**
 * /metrics on the main port, unless MANAGEMENT_PORT moves it (main.ts then serves the same
 * registry on the management port).
 */
@Global()
@Module({})
export class MetricsModule {
  static forRoot(options: { servePublicly: boolean }): DynamicModule {
    return {
      module: MetricsModule,
      providers: [MetricsService, PendingAgeCollector, ...(options.servePublicly ? [PublicMetrics] : [])],
      exports: [MetricsService],
    };
  }
}
