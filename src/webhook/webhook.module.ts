import { type DynamicModule, Module } from '@nestjs/common';
import { AppRole, servesHttpApi } from '../app-role';
import { AppConfig } from '../config/app-config';
import { DedupModule } from '../dedup/dedup.module';
import { WebhookAuth } from './webhook-auth';
import { WebhookController } from './webhook.controller';
import { WebhookService } from './webhook.service';

@Module({})
export class WebhookModule {
  /** Only receivers (and `all`) expose POST /webhook. */
  static forRole(role: AppRole): DynamicModule {
    if (!servesHttpApi(role)) return { module: WebhookModule };
    return {
      module: WebhookModule,
      imports: [DedupModule],
      controllers: [WebhookController],
      providers: [
        WebhookService,
        { provide: WebhookAuth, inject: [AppConfig], useFactory: (c: AppConfig) => new WebhookAuth(c) },
      ],
      exports: [WebhookAuth],
    };
  }
}
