import { type DynamicModule, Global, Module } from '@nestjs/common';
import { MetricsController } from './metrics.controller';
import { MetricsService } from './metrics.service';
import { PendingAgeCollector } from './pending-age.collector';

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
      controllers: options.servePublicly ? [MetricsController] : [],
      providers: [MetricsService, PendingAgeCollector],
      exports: [MetricsService],
    };
  }
}
