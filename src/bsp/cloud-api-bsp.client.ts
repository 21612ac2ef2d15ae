import http from 'node:http';
import https from 'node:https';
import { type OnApplicationShutdown } from '@nestjs/common';
import axios, { type AxiosInstance, type AxiosResponse } from 'axios';
import { type Logger } from 'pino';
import { type AppLogger } from '../logging/app-logger';
import {
  BspClient,
  type MarkReadInput,
  type SendReceipt,
  type SendTemplateInput,
  type SendTextInput,
} from './bsp.client';
import { type BspMetrics, type BspOperation } from './bsp.metrics';
import { type BspSendError } from './bsp-send.error';
import { errorFromMalformedSuccess, errorFromResponse, errorFromTransport } from './cloud-api-errors';
import { type CloudApiBody, markReadBody, templateBody, textBody } from './cloud-api-payloads';

export const DEFAULT_SEND_TIMEOUT_MS = 15_000;
export const DEFAULT_MARK_READ_TIMEOUT_MS = 5_000;

/**
 * Idle keep-alive sockets are dropped after 15 s, or earlier when the server announces a shorter
 * `Keep-Alive: timeout` (Node honours the hint only below the agent's own timeout). Reusing a
 * socket the server is closing turns a send into an `unknown` outcome, so stale sockets must go.
 */
const AGENT_OPTIONS: http.AgentOptions = { keepAlive: true, timeout: 15_000, maxSockets: 256, maxFreeSockets: 32 };

export interface CloudApiClientOptions {
  /** Whole-call limit of a send, connect included; a timeout after writing is an `unknown` outcome. */
  timeoutMs?: number;
  /** Mark-read is best effort and runs before the LLM call, so it gets a shorter limit. */
  markReadTimeoutMs?: number;
}

/**
 * The one HTTP implementation of the Cloud API send endpoint, shared by Meta and 360dialog, which
 * take identical JSON bodies and differ only in URL and credential header.
 *
 * axios is pinned to Node's own http(s) transport (maxRedirects: 0, no follow-redirects wrapper)
 * so that a failed call exposes the native ClientRequest, whose `writableFinished` separates "not
 * sent" from "unknown outcome". No redirects and no environment proxy: a POST is never replayed
 * elsewhere. Keep-alive agents save a TLS handshake per reply.
 */
export abstract class CloudApiBspClient extends BspClient implements OnApplicationShutdown {
  protected readonly logger: Logger;
  private readonly httpAgent = new http.Agent(AGENT_OPTIONS);
  private readonly httpsAgent = new https.Agent(AGENT_OPTIONS);
  private readonly client: AxiosInstance;
  private readonly timeoutMs: number;
  private readonly markReadTimeoutMs: number;

  protected constructor(
    private readonly url: string,
    private readonly credentials: Record<string, string>,
    private readonly metrics: BspMetrics,
    appLogger: AppLogger,
    options: CloudApiClientOptions = {},
  ) {
    super();
    this.logger = appLogger.child('bsp');
    this.timeoutMs = options.timeoutMs ?? DEFAULT_SEND_TIMEOUT_MS;
    this.markReadTimeoutMs = options.markReadTimeoutMs ?? Math.min(this.timeoutMs, DEFAULT_MARK_READ_TIMEOUT_MS);
    this.client = axios.create({
      adapter: 'http',
      httpAgent: this.httpAgent,
      httpsAgent: this.httpsAgent,
      maxRedirects: 0,
      proxy: false,
      maxContentLength: 1_048_576,
      maxBodyLength: 1_048_576,
      validateStatus: () => true,
      transitional: { clarifyTimeoutError: true, silentJSONParsing: true, forcedJSONParsing: true },
    });
  }

  async sendText(input: SendTextInput): Promise<SendReceipt> {
    return this.send('text', textBody(input));
  }

  async sendTemplate(input: SendTemplateInput): Promise<SendReceipt> {
    return this.send('template', templateBody(input));
  }

  async markRead(input: MarkReadInput): Promise<void> {
    try {
      await this.post('read', markReadBody(input), this.markReadTimeoutMs);
      this.metrics.recordSuccess('read');
    } catch (err) {
      const e = err as BspSendError;
      this.logger.debug(
        { provider: this.provider, code: e.code, kind: e.kind, fbtraceId: e.fbtraceId },
        'mark-read failed',
      );
    }
  }

  onApplicationShutdown(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private async send(operation: BspOperation, body: CloudApiBody): Promise<SendReceipt> {
    const response = await this.post(operation, body, this.timeoutMs);
    const wamid = wamidOf(response.data);
    if (!wamid) throw this.failed(operation, errorFromMalformedSuccess(response.status));
    this.metrics.recordSuccess(operation);
    return { wamid };
  }

  /** Resolves with a 2xx answer; throws a counted and logged BspSendError otherwise. */
  private async post(operation: BspOperation, body: CloudApiBody, timeout: number): Promise<AxiosResponse> {
    let response: AxiosResponse;
    try {
      response = await this.client.post(this.url, JSON.stringify(body), {
        timeout,
        headers: { ...this.credentials, 'content-type': 'application/json', accept: 'application/json' },
      });
    } catch (err) {
      throw this.failed(operation, errorFromTransport(err));
    }
    if (response.status >= 200 && response.status < 300) return response;
    const trace = response.headers['x-fb-trace-id'] as unknown;
    throw this.failed(
      operation,
      errorFromResponse(response.status, response.data, typeof trace === 'string' ? trace : undefined),
    );
  }

  /** Counts the failure and logs it: mark-read is logged by markRead itself, at debug. */
  private failed(operation: BspOperation, error: BspSendError): BspSendError {
    this.metrics.recordError(error);
    if (operation === 'read') return error;
    const fields = {
      provider: this.provider,
      operation,
      code: error.code,
      kind: error.kind,
      outcome: error.outcome,
      httpStatus: error.httpStatus,
      fbtraceId: error.fbtraceId,
    };
    // Configuration errors need a human; the rest are the caller's to retry or record.
    if (error.kind === 'config') this.logger.error(fields, 'BSP configuration error');
    else this.logger.debug(fields, 'BSP call failed');
    return error;
  }
}

function wamidOf(data: unknown): string | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const messages = (data as { messages?: unknown }).messages;
  if (!Array.isArray(messages)) return undefined;
  const id = (messages[0] as { id?: unknown } | undefined)?.id;
  return typeof id === 'string' && id !== '' ? id : undefined;
}
