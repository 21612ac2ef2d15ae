import { type DynamicModule, Module } from '@nestjs/common';
import { type NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { type AppRole, servesHttpApi } from '../app-role';
import { type AppConfig } from '../config/app-config';
import { CostsModule } from '../costs/costs.module';
import { RedisConversationStore } from '../conversation/redis-conversation.store';
import { DedupModule } from '../dedup/dedup.module';
import { QueueModule } from '../queue/queue.module';
import { ApiMessagesService } from './api-messages.service';
import { ConversationsController, CostsController, MessagesController } from './api.controllers';
import { ConversationsService } from './conversations.service';

/** Where the OpenAPI document of /v1 is served (without a key: it holds no secret). */
export const OPENAPI_PATH = '/v1/openapi.json';

@Module({})
export class ApiModule {
  /** /v1, for the clinic's own systems: receivers only, and only when API_KEYS is set (else 404). */
  static forRole(role: AppRole, config: AppConfig): DynamicModule {
    if (!apiEnabled(role, config)) return { module: ApiModule };
    return {
      module: ApiModule,
      imports: [QueueModule, DedupModule, CostsModule],
      controllers: [MessagesController, ConversationsController, CostsController],
      providers: [RedisConversationStore.provider('ingest'), ApiMessagesService, ConversationsService],
    };
  }
}

export function apiEnabled(role: AppRole, config: AppConfig): boolean {
  return servesHttpApi(role) && Boolean(config.env.API_KEYS);
}

/** The OpenAPI 3 document of /v1, built from the controllers and DTO classes themselves. */
export function openApiDocument(app: NestFastifyApplication): OpenAPIObject {
  const options = new DocumentBuilder()
    .setTitle('tawasul /v1')
    .setDescription(
      'Business-initiated WhatsApp messages, conversation state and the cost ledger, for the clinic’s own systems. ' +
        'Every error body is { error, message, fields? }.',
    )
    .setVersion('1')
    .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'API key', description: 'one of API_KEYS' })
    .build();
  return SwaggerModule.createDocument(app, options, { include: [ApiModule] });
}
