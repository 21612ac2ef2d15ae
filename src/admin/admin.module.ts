import { type DynamicModule, Module, type Provider } from '@nestjs/common';
import { type AppRole, consumesJobs } from '../app-role';
import { type AppConfig } from '../config/app-config';
import { DedupModule } from '../dedup/dedup.module';
import { QueueModule } from '../queue/queue.module';
import { DeadLetterProcessor } from './dead-letter.processor';
import { dashboardEnabled, PublicQueueDashboard, QueueDashboard } from './queue-dashboard';

@Module({})
export class AdminModule {
  /**
   * The dashboard on receivers (and `all`) with ADMIN_PASSWORD — on the public port unless
   * MANAGEMENT_PORT takes it (main.ts) — and, wherever jobs are consumed, the dead-letter worker,
   * which parks dead letters and re-runs the retried ones: a retry clicked on any receiver's
   * dashboard is carried out by whichever worker takes it.
   */
  static forRole(role: AppRole, config: AppConfig): DynamicModule {
    const providers: Provider[] = [];
    if (dashboardEnabled(role, config)) {
      providers.push(QueueDashboard);
      if (config.env.MANAGEMENT_PORT === undefined) providers.push(PublicQueueDashboard);
    }
    if (consumesJobs(role)) providers.push(DeadLetterProcessor);
    if (providers.length === 0) return { module: AdminModule };
    return { module: AdminModule, imports: [QueueModule, DedupModule], providers };
  }
}
