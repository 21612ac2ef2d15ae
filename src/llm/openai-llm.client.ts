import { Agent as HttpAgent, type ClientRequest } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { type OnApplicationShutdown } from '@nestjs/common';
import axios, { type AxiosInstance, isAxiosError } from 'axios';
import { type Logger } from 'pino';
import { type AppConfig } from '../config/app-config';
import { type AppLogger } from '../logging/app-logger';
import { type MetricsService } from '../metrics/metrics.service';
import { parseCompletion, classifyHttpFailure } from './completion-response';
import { LlmClient, LlmError, type LlmMessage, type LlmReply, type LlmRequest } from './llm.client';

export const LLM_TEMPERATURE = 0.3;
/** A WhatsApp answer, not an essay; also bounds inference time on a shared GPU. */
export const LLM_MAX_TOKENS = 512;
/**
 * Idle keep-alive sockets are closed by us after this long: vLLM's uvicorn closes them after 5 s,
 * and a request written onto a socket the server is closing at that moment fails with ECONNRESET.
 */
export const LLM_IDLE_SOCKET_MS = 4000;
/** A reply is a few KB; a huge body is a misbehaving proxy, not an answer. */
const MAX_RESPONSE_BYTES = 2 * 1024 * 1024;
// A phone number must never leave as `user`, even if a caller passes one by mistake.
const LOOKS_LIKE_PHONE = /^\+?\d{6,}$/;

export interface OpenAiLlmClientOptions {
  /** Overrides LLM_IDLE_SOCKET_MS (tests). */
  idleSocketTimeoutMs?: number;
}

/**
 * LlmClient for any OpenAI-compatible chat-completions server, vLLM first.
 * Plain axios rather than the OpenAI SDK: its defaults (10 min timeout, hidden retries) are
 * wrong for a chat bot, and vLLM's error shapes differ from OpenAI's anyway.
 */
export class OpenAiLlmClient extends LlmClient implements OnApplicationShutdown {
  private readonly http: AxiosInstance;
  private readonly agents: { http: HttpAgent; https: HttpsAgent };
  private readonly url: string;
  private readonly logger: Logger;

  constructor(
    private readonly config: AppConfig,
    private readonly metrics: MetricsService,
    appLogger: AppLogger,
    options: OpenAiLlmClientOptions = {},
  ) {
    super();
    if (!config.env.LLM_BASE_URL) throw new Error('OpenAiLlmClient needs LLM_BASE_URL');
    this.url = `${config.env.LLM_BASE_URL.replace(/\/+$/, '')}/chat/completions`;
    this.logger = appLogger.child('llm');
    const idle = options.idleSocketTimeoutMs ?? LLM_IDLE_SOCKET_MS;
    this.agents = {
      http: new HttpAgent({ keepAlive: true, timeout: idle }),
      https: new HttpsAgent({ keepAlive: true, timeout: idle }),
    };
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (config.env.LLM_API_KEY) headers.authorization = `Bearer ${config.env.LLM_API_KEY}`;
    this.http = axios.create({
      headers,
      timeout: config.env.LLM_TIMEOUT_MS,
      httpAgent: this.agents.http,
      httpsAgent: this.agents.https,
      maxRedirects: 0,
      maxContentLength: MAX_RESPONSE_BYTES,
      responseType: 'text',
      transformResponse: (data: unknown) => data,
      validateStatus: () => true,
    });
  }

  async complete(request: LlmRequest): Promise<LlmReply> {
    const started = performance.now();
    try {
      const reply = await this.infer(request, started);
      this.metrics.llmSeconds.observe(reply.latencyMs / 1000);
      return reply;
    } catch (err) {
      const error = err instanceof LlmError ? err : new LlmError('error', 'LLM call failed unexpectedly');
      const latencyMs = Math.round(performance.now() - started);
      this.metrics.llmFailures.inc({ kind: error.kind });
      const level = error.kind === 'config' ? 'error' : 'warn';
      this.logger[level]({ kind: error.kind, ...error.details, latencyMs }, error.message);
      throw error;
    }
  }

  /**
   * Runs after the job loop has drained (TurnProcessor closes it before shutdown): destroyed any
   * earlier, on module destroy, the agents would cut the inference of the turn SIGTERM lets finish.
   */
  onApplicationShutdown(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  private async infer(request: LlmRequest, started: number): Promise<LlmReply> {
    const timeoutMs = this.config.env.LLM_TIMEOUT_MS;
    // One deadline for the whole call: axios' own timeout only measures socket idleness, so a
    // server that trickles bytes, or a retried stale socket, could otherwise run past it.
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    try {
      const body = this.body(request);
      const response = await this.post(body, controller.signal);
      const latencyMs = Math.round(performance.now() - started);
      if (response.status < 200 || response.status > 299) {
        throw classifyHttpFailure(response.status, response.data, this.config.env.LLM_MODEL);
      }
      return parseCompletion(response.data, latencyMs);
    } catch (err) {
      if (err instanceof LlmError) throw err;
      throw transportFailure(err, timedOut, timeoutMs);
    } finally {
      clearTimeout(timer);
    }
  }

  private body(request: LlmRequest): Record<string, unknown> {
    const body: Record<string, unknown> = {
      model: this.config.env.LLM_MODEL,
      messages: request.messages.map(wireMessage),
      temperature: LLM_TEMPERATURE,
      max_tokens: LLM_MAX_TOKENS,
      stream: false,
    };
    // tool_choice is left to its default, `auto` when tools are sent (vLLM needs
    // --enable-auto-tool-choice and a --tool-call-parser for it: docs/actions.md).
    if (request.tools && request.tools.length > 0) body.tools = request.tools;
    if (request.user && !LOOKS_LIKE_PHONE.test(request.user)) body.user = request.user;
    return body;
  }

  /** Posts once; again once when a reused keep-alive socket turned out to be closed by the server. */
  private async post(body: Record<string, unknown>, signal: AbortSignal): Promise<{ status: number; data: unknown }> {
    try {
      return await this.http.post(this.url, body, { signal });
    } catch (err) {
      if (!isStaleSocket(err) || signal.aborted) throw err;
      this.logger.debug('llm keep-alive socket was closed by the server; retrying on a new one');
      return await this.http.post(this.url, body, { signal });
    }
  }
}

/** A port message in the chat-completions wire shape (snake_case fields, tool calls as functions). */
function wireMessage(message: LlmMessage): Record<string, unknown> {
  if (message.role === 'tool')
    return { role: 'tool', tool_call_id: message.toolCallId ?? '', content: message.content };
  if (message.role === 'assistant' && message.toolCalls && message.toolCalls.length > 0) {
    return {
      role: 'assistant',
      content: message.content === '' ? null : message.content,
      tool_calls: message.toolCalls.map((call) => ({
        id: call.id,
        type: 'function',
        function: { name: call.name, arguments: call.arguments },
      })),
    };
  }
  return { role: message.role, content: message.content };
}

function isStaleSocket(err: unknown): boolean {
  if (!isAxiosError(err) || err.response) return false;
  const request = err.request as ClientRequest | undefined;
  return request?.reusedSocket === true && (err.code === 'ECONNRESET' || err.code === 'EPIPE');
}

function transportFailure(err: unknown, timedOut: boolean, timeoutMs: number): LlmError {
  const code = isAxiosError(err) ? err.code : (err as NodeJS.ErrnoException | undefined)?.code;
  if (timedOut || code === 'ECONNABORTED' || code === 'ETIMEDOUT') {
    return new LlmError('timeout', `LLM did not answer within ${timeoutMs} ms`, { code });
  }
  // Connection refused while vLLM loads the model, reset on restart, DNS hiccups in Kubernetes:
  // all transient, all retried by the caller with backoff.
  return new LlmError('error', `LLM request failed (${code ?? 'network error'})`, { code });
}
