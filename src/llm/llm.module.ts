import { Module } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { AppLogger } from '../logging/app-logger';
import { MetricsService } from '../metrics/metrics.service';
import { CannedMessages } from './canned-messages';
import { LlmClient } from './llm.client';
import { LlmConcurrencyLimiter } from './llm-concurrency.limiter';
import { OfflineLlmClient } from './offline-llm.client';
import { OpenAiLlmClient } from './openai-llm.client';
import { loadReceptionistScript } from './receptionist-script';
import { SystemPromptLoader } from './system-prompt.loader';

/**
 * Everything a turn needs to get an answer, for workers; relies on the global AppConfig,
 * AppLogger, MetricsService, RedisConnections and RedisKeys. How a turn uses it is LlmStep's
 * (src/conversation/llm-step.ts, docs/architecture.md §6). The prompt and messages files (and,
 * offline, RECEPTIONIST_FILE) are read when the module is built: a missing or broken file fails
 * start-up.
 */
@Module({
  providers: [
    {
      provide: LlmClient,
      inject: [AppConfig, MetricsService, AppLogger],
      useFactory: (config: AppConfig, metrics: MetricsService, logger: AppLogger): LlmClient =>
        config.env.LLM_PROVIDER === 'openai'
          ? new OpenAiLlmClient(config, metrics, logger)
          : new OfflineLlmClient(config, loadReceptionistScript(config.env.RECEPTIONIST_FILE), metrics),
    },
    SystemPromptLoader,
    CannedMessages,
    LlmConcurrencyLimiter,
  ],
  exports: [LlmClient, SystemPromptLoader, CannedMessages, LlmConcurrencyLimiter],
})
export class LlmModule {}
