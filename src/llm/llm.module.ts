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
 * Everything a turn needs to get an answer, for workers. Relies on the global
 * AppConfig, AppLogger, MetricsService, RedisConnections and RedisKeys.
 *
 * - LlmClient: OpenAiLlmClient (LLM_PROVIDER=openai) or OfflineLlmClient (offline).
 * - SystemPromptLoader.prompt: the filled system prompt; CannedMessages.text(key, language).
 * - LlmConcurrencyLimiter: the cross-process cap on calls in flight (LLM_MAX_CONCURRENCY).
 * - buildLlmRequest / halveHistory (llm-request.builder.ts), detectLanguage / pickLanguage
 *   (language.ts) are plain functions.
 *
 * A turn's inference, in outline:
 *   const request = buildLlmRequest({ systemPrompt: prompts.prompt, history, turnMessages, user: chatHash });
 *   if (!(await limiter.tryAcquire(holder, chat))) → park the turn in line (no attempt counted)
 *   try { reply = await llm.complete(request) }
 *   catch (e: LlmError) → 'context': halveHistory(request) and call once more (null: treat as error);
 *                         'config': alert, do not count an attempt;
 *                         else: holding message once, count the attempt, back off
 *   finally { wake(await limiter.release(holder)) }   // the chats first in line for the slot
 *
 * The prompt and messages files (and, offline, RECEPTIONIST_FILE) are read when the module is
 * built: a missing or broken file fails start-up.
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
