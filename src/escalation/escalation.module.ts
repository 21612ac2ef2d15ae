import { type DynamicModule, Module } from '@nestjs/common';
import { type AppRole, servesHttpApi } from '../app-role';
import { AppConfig } from '../config/app-config';
import { DedupModule } from '../dedup/dedup.module';
import { AppLogger } from '../logging/app-logger';
import { MetricsService } from '../metrics/metrics.service';
import { ChatwootEscalationDesk } from './chatwoot-escalation.desk';
import { ChatwootWebhookAuth } from './chatwoot-webhook.auth';
import { ChatwootWebhookController } from './chatwoot-webhook.controller';
import { DeskError, EscalationDesk } from './escalation-desk';
import { EscalationNotifier } from './escalation-notifier';
import { EscalationTriggers } from './escalation-triggers';

/** Without CHATWOOT_BASE_URL nobody asks the desk anything; if something did, it is a bug to see. */
class NoDesk extends EscalationDesk {
  private refuse(): Promise<never> {
    return Promise.reject(new DeskError('rejected', 'Chatwoot is not configured (CHATWOOT_BASE_URL)'));
  }
  ensureConversation = () => this.refuse();
  postMessage = () => this.refuse();
  findMessage = () => this.refuse();
  openConversation = () => this.refuse();
}

/**
 * What a worker needs to hand chats over (docs/handover.md): the triggers, the EscalationDesk (Chatwoot's
 * Application API, or none), and the ESCALATION_WEBHOOK_URL notifier. The hand-over itself runs in
 * the conversation module's lanes.
 */
@Module({
  providers: [
    EscalationTriggers,
    EscalationNotifier,
    {
      provide: EscalationDesk,
      inject: [AppConfig, MetricsService, AppLogger],
      useFactory: (config: AppConfig, metrics: MetricsService, logger: AppLogger): EscalationDesk =>
        config.chatwootEnabled ? new ChatwootEscalationDesk(config, metrics, logger) : new NoDesk(),
    },
  ],
  exports: [EscalationTriggers, EscalationNotifier, EscalationDesk],
})
export class EscalationDeskModule {}

@Module({})
export class EscalationModule {
  /** POST /chatwoot/webhook, for receivers, when Chatwoot is configured. */
  static forRole(role: AppRole, config: AppConfig): DynamicModule {
    if (!servesHttpApi(role) || !config.chatwootEnabled) return { module: EscalationModule };
    return {
      module: EscalationModule,
      imports: [DedupModule],
      controllers: [ChatwootWebhookController],
      providers: [
        { provide: ChatwootWebhookAuth, inject: [AppConfig], useFactory: (c: AppConfig) => new ChatwootWebhookAuth(c) },
      ],
    };
  }
}
