import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Injectable, type OnApplicationShutdown } from '@nestjs/common';
import axios, { type AxiosInstance } from 'axios';
import { AppConfig } from '../config/app-config';
import { MetricsService } from '../metrics/metrics.service';
import { DeskError } from './escalation-desk';

/**
 * The JSON notice POSTed to ESCALATION_WEBHOOK_URL: a pager or a ticket system, outside the clinic's
 * patient systems, so it carries the chat's keyed hash and never the number or any message text.
 */
export interface EscalationNotice {
  event: 'escalation';
  clinic: string;
  /** The chat's keyed hash (the same one the logs use). */
  chat: string;
  trigger: string;
  reason: string;
  /** ISO time of the hand-over. */
  at: string;
  chatwootConversationId: string | null;
}

const TIMEOUT_MS = 10_000;

/** Posts escalation notices; the desk lane retries them (a DeskError says whether to). */
@Injectable()
export class EscalationNotifier implements OnApplicationShutdown {
  private readonly http?: AxiosInstance;
  private readonly agents = [new HttpAgent({ keepAlive: true }), new HttpsAgent({ keepAlive: true })];

  constructor(
    private readonly config: AppConfig,
    private readonly metrics: MetricsService,
  ) {
    const url = config.env.ESCALATION_WEBHOOK_URL;
    if (!url) return;
    this.http = axios.create({
      timeout: TIMEOUT_MS,
      httpAgent: this.agents[0],
      httpsAgent: this.agents[1],
      validateStatus: () => true,
      headers: { 'content-type': 'application/json', 'user-agent': 'tawasul' },
    });
  }

  get enabled(): boolean {
    return this.http !== undefined;
  }

  async notify(notice: EscalationNotice): Promise<void> {
    if (!this.http) return;
    let status: number;
    try {
      status = (await this.http.post(this.config.env.ESCALATION_WEBHOOK_URL!, notice)).status;
    } catch (err) {
      this.metrics.escalationNotices.inc({ outcome: 'retried' });
      throw new DeskError('unavailable', `escalation webhook unreachable: ${(err as Error).message}`);
    }
    if (status >= 200 && status < 300) {
      this.metrics.escalationNotices.inc({ outcome: 'ok' });
      return;
    }
    const retry = status === 408 || status === 429 || status >= 500;
    this.metrics.escalationNotices.inc({ outcome: retry ? 'retried' : 'failed' });
    throw new DeskError(retry ? 'unavailable' : 'rejected', `escalation webhook answered ${status}`, status);
  }

  onApplicationShutdown(): void {
    for (const agent of this.agents) agent.destroy();
  }
}
