import { Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { LLM_FAILURE_KINDS } from '../llm/llm.client';

export type WebhookOutcome = 'accepted' | 'duplicate' | 'ignored' | 'unauthorized' | 'invalid' | 'unavailable';

/**
 * The process's Prometheus registry. Every metric is declared here, once per registry (prom-client
 * refuses a name twice), so no module needs to know whether another already created it; modules
 * record through the fields below, or through a small injectable that keeps the state a metric
 * needs (BspMetrics). Labels are bounded: outcomes, kinds, route templates, never ids.
 */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();

  readonly webhookRequests = new Counter({
    name: 'tawasul_webhook_requests_total',
    help: 'Webhook requests by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly webhookAck = new Histogram({
    name: 'tawasul_webhook_ack_seconds',
    help: 'Time from receiving a webhook to answering it',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly webhookItems = new Counter({
    name: 'tawasul_webhook_items_total',
    help: 'Messages and statuses in webhooks: enqueued or duplicate',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly unhandledItems = new Counter({
    name: 'tawasul_unhandled_items_total',
    help: 'Signed items kept raw because they could not be handled',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly httpRequests = new Counter({
    name: 'tawasul_http_requests_total',
    help: 'HTTP requests by route template, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  });

  /** Read at scrape time; set by whoever can answer it (PendingAgeCollector). */
  oldestPendingSource?: () => Promise<number | undefined>;

  readonly oldestPending: Gauge = new Gauge({
    name: 'tawasul_oldest_pending_seconds',
    help: 'Age of the oldest chat waiting for a turn',
    registers: [this.registry],
    collect: async () => {
      const age = await this.oldestPendingSource?.();
      if (age !== undefined) this.oldestPending.set(age);
    },
  });

  /** Read at scrape time; set by whoever can answer it (PendingAgeCollector). */
  pendingChatsSource?: () => Promise<number | undefined>;

  readonly pendingChats: Gauge = new Gauge({
    name: 'tawasul_pending_chats',
    help: 'Chats (and status or desk lanes) with work waiting or in flight: the queue depth workers scale on',
    registers: [this.registry],
    collect: async () => {
      const count = await this.pendingChatsSource?.();
      if (count !== undefined) this.pendingChats.set(count);
    },
  });

  readonly turns = new Counter({
    name: 'tawasul_turns_total',
    help: 'Chat turns by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly turnFailures = new Counter({
    name: 'tawasul_turn_failures_total',
    help: 'Turns that threw unexpectedly (a bug, a bad stored item): retried, or dead-lettered after the last attempt',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly turnsRateLimited = new Counter({
    name: 'tawasul_turns_rate_limited_total',
    help: 'Turns that waited because their chat had too many turns in the last minute (a flood of messages)',
    registers: [this.registry],
  });

  readonly holdingMessages = new Counter({
    name: 'tawasul_holding_messages_total',
    help: 'Holding messages sent while the LLM was failing',
    registers: [this.registry],
  });

  readonly escalations = new Counter({
    name: 'tawasul_escalations_total',
    help: 'Chats handed over, by trigger',
    labelNames: ['trigger'] as const,
    registers: [this.registry],
  });

  readonly sends = new Counter({
    name: 'tawasul_sends_total',
    help: 'Outbound sends by mode, category and outcome',
    labelNames: ['mode', 'category', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly possibleDuplicateSends = new Counter({
    name: 'tawasul_possible_duplicate_sends_total',
    help: 'Resends after an unknown send outcome whose status never arrived: possible duplicates',
    registers: [this.registry],
  });

  readonly deadLetters = new Counter({
    name: 'tawasul_dead_letters_total',
    help: 'Work given up, visibly, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly orphanStatuses = new Counter({
    name: 'tawasul_orphan_statuses_total',
    help: 'Statuses for messages this deployment never sent',
    registers: [this.registry],
  });

  readonly costUsd = new Counter({
    name: 'tawasul_cost_usd_total',
    help: 'Message costs in USD, estimated at send and billed from statuses',
    labelNames: ['side', 'category'] as const,
    registers: [this.registry],
  });

  readonly templatesSent = new Counter({
    name: 'tawasul_templates_sent_total',
    help: 'Templates Meta accepted, by purpose (reengagement, api)',
    labelNames: ['purpose'] as const,
    registers: [this.registry],
  });

  readonly windowClosed = new Counter({
    name: 'tawasul_window_closed_total',
    help: 'Replies that met a closed 24-hour window, by where it was found (turn, send: 131047 answer, status: 131047 failed status, api, notice: a holding message or apology not sent)',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });

  readonly apiRequests = new Counter({
    name: 'tawasul_api_messages_total',
    help: 'POST /v1/messages by outcome (free_form, template, window_closed, replayed)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly chatwootWebhooks = new Counter({
    name: 'tawasul_chatwoot_webhooks_total',
    help: 'Chatwoot webhook requests by outcome (accepted, duplicate, ignored, unauthorized, invalid, unavailable)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly chatwootRequests = new Counter({
    name: 'tawasul_chatwoot_requests_total',
    help: 'Requests to the Chatwoot API by operation and outcome (ok, unavailable, config, not_found, rejected)',
    labelNames: ['operation', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly agentReplies = new Counter({
    name: 'tawasul_agent_replies_total',
    help: 'Agent replies from Chatwoot: relayed to the patient, or not sendable (a private note says why)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly escalationNotices = new Counter({
    name: 'tawasul_escalation_notices_total',
    help: 'Notices POSTed to ESCALATION_WEBHOOK_URL by outcome (ok, retried, failed)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  /** Read at scrape time; set by whoever can answer it (the desk lane). */
  deskBacklogSource?: () => Promise<number | undefined>;

  readonly deskBacklog: Gauge = new Gauge({
    name: 'tawasul_desk_backlog',
    help: 'Hand-over steps, mirrored messages and notices waiting to reach Chatwoot or the escalation webhook',
    registers: [this.registry],
    collect: async () => {
      const backlog = await this.deskBacklogSource?.();
      if (backlog !== undefined) this.deskBacklog.set(backlog);
    },
  });

  /** `action` is a declared action's name (or `unknown`): bounded by ACTIONS_FILE, never the model's text. */
  readonly actions = new Counter({
    name: 'tawasul_actions_total',
    help: 'Clinic action calls by action and outcome (ok, error, invalid, timeout, unavailable, unknown, reused)',
    labelNames: ['action', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly actionSeconds = new Histogram({
    name: 'tawasul_action_seconds',
    help: "Time of one call to the clinic's API, by action",
    labelNames: ['action'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly llmSeconds = new Histogram({
    name: 'tawasul_llm_seconds',
    help: 'Inference time of successful LLM calls',
    buckets: [0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60],
    registers: [this.registry],
  });

  /** Labelled by LlmError.kind, a closed set (LLM_FAILURE_KINDS): bounded, and zeroed below. */
  readonly llmFailures = new Counter({
    name: 'tawasul_llm_failures_total',
    help: 'Failed LLM calls by kind: error, timeout, empty, truncated, context, config',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly llmSlotsBusy = new Counter({
    name: 'tawasul_llm_slots_busy_total',
    help: 'Inference slot requests refused because LLM_MAX_CONCURRENCY calls were in flight',
    registers: [this.registry],
  });

  /** Recorded through BspMetrics, which also owns the config alert below. */
  readonly bspErrors = new Counter({
    name: 'tawasul_bsp_errors_total',
    help: 'Failed BSP calls by error code (Meta error.code, HTTP status or transport code) and class',
    labelNames: ['code', 'class'] as const,
    registers: [this.registry],
  });

  /** Set and cleared only by BspMetrics: it remembers which codes are raised. */
  readonly configAlert = new Gauge({
    name: 'tawasul_config_alert',
    help: '1 while a BSP configuration error (token, permission, number, template) is unresolved',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // Zero series exist from the start, so rate() and alerts work before the first event.
    for (const outcome of ['accepted', 'duplicate', 'ignored', 'unauthorized', 'invalid', 'unavailable'] as const) {
      this.webhookRequests.inc({ outcome }, 0);
    }
    for (const kind of LLM_FAILURE_KINDS) this.llmFailures.inc({ kind }, 0);
  }

  async render(): Promise<string> {
    return this.registry.metrics();
  }
}
