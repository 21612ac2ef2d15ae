import { Injectable, type OnModuleInit } from '@nestjs/common';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { type IngestItem } from '../dedup/ingest-item';
import { DeskError, EscalationDesk } from '../escalation/escalation-desk';
import { EscalationNotifier } from '../escalation/escalation-notifier';
import { AppLogger } from '../logging/app-logger';
import { LogHasher } from '../logging/log-hasher';
import { MetricsService } from '../metrics/metrics.service';
import { chatLaneOfDesk, laneParts } from '../queue/lanes';
import { ConversationStore, type DeskRecord } from './conversation.store';
import { DeadLetters } from './dead-letters';
import { type DeskStep } from './desk-steps';
import { deferredOrLost, finished, LOST, type RunOutcome } from './turn-outcome';
import { type Lease, leaseUsable } from './turn.types';
import { withJitter } from '../time/backoff';

/** A step the desk refuses, or that waited longer than this, is dead-lettered: an outage of up to an hour is waited out. */
const GIVE_UP_MS = 60 * 60 * 1000;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 60_000;
const CONFIG_RETRY_MS = 30_000;

/** What a done step changes in the desk record, and the Chatwoot message it created. */
interface StepDone {
  record?: Partial<DeskRecord>;
  own?: string;
}

/**
 * A desk lane's turn: the steps a chat owes Chatwoot and the escalation webhook, in order, each
 * done once. Each step is dropped under the lane's lease once done; a post is marked in flight
 * before it is made, and a retry that finds the mark first looks for the post by its source_id, so
 * a crash never posts twice. A failing step parks the lane with a growing delay (the chat's own
 * lane goes on: the patient is never held by a Chatwoot outage); after an hour it is dead-lettered.
 */
@Injectable()
export class DeskLaneService implements OnModuleInit {
  private readonly logger: Logger;

  constructor(
    private readonly store: ConversationStore,
    private readonly desk: EscalationDesk,
    private readonly notifier: EscalationNotifier,
    private readonly deadLetters: DeadLetters,
    private readonly metrics: MetricsService,
    private readonly hasher: LogHasher,
    private readonly config: AppConfig,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('desk');
  }

  onModuleInit(): void {
    this.metrics.deskBacklogSource = () => this.store.deskBacklog().catch(() => undefined);
  }

  async run(lease: Lease): Promise<RunOutcome> {
    const snapshot = await this.store.join(lease);
    if (!snapshot) return LOST;
    const chat = chatLaneOfDesk(lease.lane);
    const record = await this.store.readDesk(chat);
    for (const item of snapshot.items) {
      let done: StepDone | 'lost';
      try {
        done = await this.apply(lease, chat, item, record);
      } catch (err) {
        if (!(err instanceof DeskError)) throw err;
        const at = this.retryAt(err, item);
        if (at !== undefined) return deferredOrLost(await this.store.defer(lease, at), at);
        await this.deadLetters.record('desk_step', chat, { op: (item.raw as DeskStep).op, kind: err.kind }, [item]);
        done = {};
      }
      if (done === 'lost' || !(await this.store.shiftDesk(lease, chat, done.record ?? {}, done.own))) return LOST;
      for (const [key, value] of Object.entries(done.record ?? {})) {
        record[key as keyof DeskRecord] = value || undefined;
      }
      record.posting = undefined;
    }
    return finished(await this.store.finish(lease, undefined));
  }

  private async apply(lease: Lease, chat: string, item: IngestItem, record: DeskRecord): Promise<StepDone | 'lost'> {
    const step = item.raw as DeskStep;
    if (!leaseUsable(lease)) return 'lost';
    if (step.op === 'notify') {
      await this.notifier.notify({
        event: 'escalation',
        clinic: this.config.env.CLINIC_NAME,
        chat: this.hasher.hash(chat),
        trigger: step.trigger,
        reason: step.reason,
        at: new Date(step.at).toISOString(),
        chatwootConversationId: record.conversationId ?? null,
      });
      return {};
    }
    // Steps queued while Chatwoot was configured, run after it was switched off: nothing to do.
    if (!this.config.chatwootEnabled) return {};
    switch (step.op) {
      case 'open':
        return { record: await this.open(chat, step.reason, step.name) };
      case 'post':
        return this.post(lease, chat, step, record);
      case 'activate':
        if (record.conversationId) await this.desk.openConversation(record.conversationId);
        this.logger.info(
          { chat: this.hasher.hash(chat), conversation: record.conversationId },
          'hand-over in Chatwoot',
        );
        return {};
      case 'forget':
        return record.conversationId === step.conversationId ? { record: { conversationId: '' } } : {};
    }
  }

  private async open(chat: string, reason: string, name?: string): Promise<Partial<DeskRecord>> {
    const { phoneNumberId, sender } = laneParts(chat);
    const found = await this.desk.ensureConversation({ waId: sender, name, phoneNumberId }, reason);
    return { contactId: found.contactId, conversationId: found.conversationId };
  }

  /**
   * Into the step's conversation, else the chat's; a chat without one (its hand-over was
   * dead-lettered, or the conversation was deleted) gets one found or created first.
   */
  private async post(
    lease: Lease,
    chat: string,
    step: Extract<DeskStep, { op: 'post' }>,
    record: DeskRecord,
  ): Promise<StepDone | 'lost'> {
    const opened: Partial<DeskRecord> = {};
    let target = step.conversationId ?? record.conversationId;
    if (!target) {
      Object.assign(opened, await this.open(chat, 'mirror'));
      target = opened.conversationId!;
    }
    const { sourceId } = step.post;
    if (record.posting === sourceId) {
      const existing = await this.desk.findMessage(target, sourceId);
      if (existing) return { record: opened, own: existing };
    }
    if (!(await this.store.markDeskPosting(lease, chat, sourceId))) return 'lost';
    try {
      return { record: opened, own: await this.desk.postMessage(target, step.post) };
    } catch (err) {
      if (!(err instanceof DeskError) || err.kind !== 'not_found' || step.conversationId) throw err;
      // The chat's conversation is gone (deleted in Chatwoot): continue in a new one.
      Object.assign(opened, await this.open(chat, 'conversation missing'));
      return { record: opened, own: await this.desk.postMessage(opened.conversationId!, step.post) };
    }
  }

  /** When to try the step again, or undefined to give it up. Delays grow with the step's age. */
  private retryAt(err: DeskError, item: IngestItem): number | undefined {
    const age = Date.now() - item.receivedAt;
    const op = (item.raw as DeskStep).op;
    this.logger.warn({ chat: this.hasher.hash(item.lane), op, kind: err.kind, err }, 'desk step failed');
    if (err.kind === 'rejected' || err.kind === 'not_found' || age > GIVE_UP_MS) return undefined;
    const base = err.kind === 'config' ? CONFIG_RETRY_MS : Math.min(Math.max(age / 2, RETRY_MIN_MS), RETRY_MAX_MS);
    return Date.now() + withJitter(base);
  }
}
