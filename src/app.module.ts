import { type DynamicModule, Module } from '@nestjs/common';
import { AdminModule } from './admin/admin.module';
import { ApiModule } from './api/api.module';
import { type AppRole } from './app-role';
import { type AppConfig } from './config/app-config';
import { AppConfigModule } from './config/config.module';
import { ConversationModule } from './conversation/conversation.module';
import { EscalationModule } from './escalation/escalation.module';
import { HealthModule } from './health/health.module';
import { LoggingModule } from './logging/logging.module';
import { MetricsModule } from './metrics/metrics.module';
import { QueueModule } from './queue/queue.module';
import { RedisModule } from './redis/redis.module';
import { SandboxModule } from './sandbox/sandbox.module';
import { ClockModule } from './time/clock';
import { WebhookModule } from './webhook/webhook.module';

@Module({})
export class AppModule {
  /**
   * The one module graph, cut by role: config, Redis, queue registration (every role enqueues),
   * health and metrics always; HTTP ingress only for receiver/all; job processors only for
   * worker/all (a receiver never consumes).
   */
  static forRole(role: AppRole, config: AppConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        AppConfigModule.forRoot(config),
        LoggingModule,
        ClockModule,
        RedisModule,
        QueueModule,
        HealthModule,
        MetricsModule.forRoot({ servePublicly: config.env.MANAGEMENT_PORT === undefined }),
        WebhookModule.forRole(role),
        ConversationModule.forRole(role),
        EscalationModule.forRole(role, config),
        ApiModule.forRole(role, config),
        AdminModule.forRole(role, config),
        SandboxModule.forRole(role, config),
      ],
    };
  }
}
