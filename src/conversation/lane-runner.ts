import { Injectable } from '@nestjs/common';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { WakeUpService } from '../dedup/wake-up.service';
import { AppLogger } from '../logging/app-logger';
import { LogHasher } from '../logging/log-hasher';
import { type Notice, ReplySender } from './reply-sender';
import { CannedMessages } from '../llm/canned-messages';
import { MetricsService } from '../metrics/metrics.service';
import { laneKind, laneParts } from '../queue/lanes';
import { DeadLetters } from './dead-letters';
import { LlmStep, SLOT_WAKE_TAG } from './llm-step';
import { ChatTurnService } from './chat-turn.service';
import { ConversationStore } from './conversation.store';
import { DeskLaneService } from './desk-lane.service';
import { StatusLaneService } from './status-lane.service';
import { type RunOutcome } from './turn-outcome';
import { type Lease, leaseUsable } from './turn.types';
import { exponentialMs } from '../time/backoff';

/**
 * Handles one wake-up of a lane: respects its "not before" time, takes its lease (one turn at a
 * time per lane across every worker), keeps the lease alive while the turn works, and re-arms the
 * lane when more work waits or the turn parked itself. Wake-ups are cheap and may be redundant:
 * a wake-up that finds the lease taken or nothing to do simply ends.
 */
@Injectable()
export class LaneRunner {
  private readonly logger: Logger;

  constructor(
    private readonly store: ConversationStore,
    private readonly chats: ChatTurnService,
    private readonly llm: LlmStep,
    private readonly statuses: StatusLaneService,
    private readonly desks: DeskLaneService,
    private readonly wakeUps: WakeUpService,
    private readonly deadLetters: DeadLetters,
    private readonly sender: ReplySender,
    private readonly canned: CannedMessages,
    private readonly metrics: MetricsService,
    private readonly hasher: LogHasher,
    private readonly config: AppConfig,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('lane');
  }

  /** @param jobId the wake-up job running this, so a re-arm never reuses its id */
  async handle(lane: string, jobId?: string): Promise<void> {
    // A freed LLM slot wakes a chat parked in line for it before its recheck time.
    const slotFreed = jobId?.slice(lane.length + 1).startsWith(SLOT_WAKE_TAG) === true;
    const lease = slotFreed ? await this.store.acquire(lane) : await this.store.acquireDue(lane);
    if (typeof lease === 'number') {
      // Parked (debounce, backoff, 131056, unknown send outcome): make sure its delayed wake
      // exists. Woken a moment early (another process's clock promoted this job): wake again.
      await this.wakeUps.wake([{ lane, tag: notBeforeTag(lane, lease, jobId), at: lease }]);
      return;
    }
    if (!lease) return this.afterLeaseLapses(lane, jobId);
    let outcome: RunOutcome;
    try {
      outcome = await this.withHeartbeat(lease, () => this.run(lease));
    } catch (err) {
      outcome = await this.onUnexpected(lease, err as Error);
    }
    await this.rearm(lease, outcome, jobId);
  }

  /**
   * The turn threw (a bug, a stored item that cannot be read). Retried soon with backoff, counted
   * under the fence; after MAX_TURN_FAILURES it is dead-lettered with the apology, so the chat's
   * next messages are not held behind it for ever. When Redis itself failed nothing can be counted:
   * the error goes to the job, and the lease is let go as soon as Redis answers again, so the next
   * sweep re-arms the turn (about a second after the blip, not after the lease lapses).
   */
  private async onUnexpected(lease: Lease, err: Error): Promise<RunOutcome> {
    const chat = this.hasher.hash(lease.lane);
    const failures = await this.store.countFailure(lease).catch(async () => {
      await this.releaseOnceRedisAnswers(lease);
      throw err;
    });
    if (failures < 0) return { kind: 'lost' };
    if (failures < MAX_TURN_FAILURES) {
      this.metrics.turnFailures.inc({ outcome: 'retried' });
      // The stack, not the error object: a library's error may carry the request it failed on.
      this.logger.error({ chat, failures, err }, 'turn failed unexpectedly; retrying');
      // Parked, not only released: the sweeper would otherwise re-arm a turn in flight at once.
      const at = Date.now() + exponentialMs(FAILURE_BACKOFF_MS, failures);
      return (await this.store.defer(lease, at)) ? { kind: 'deferred', at } : { kind: 'lost' };
    }
    // Stalled past its own deadline, this worker may no longer be the only one with the turn, as
    // for a reply part: the next holder (once Redis lets the lease go) dead-letters it and apologises.
    if (!leaseUsable(lease)) return { kind: 'lost' };
    this.metrics.turnFailures.inc({ outcome: 'dead_lettered' });
    const items = await this.store.turnItems(lease.lane);
    await this.deadLetters.record('turn_failed', lease.lane, { failures, err: err.message.slice(0, 200) }, items);
    // Read before the commit: the turn's own messages are what opened the window the apology needs.
    const apology = laneKind(lease.lane) === 'chat' ? await this.apologyFor(lease) : undefined;
    const result = await this.store.finish(lease, undefined);
    if (result === 'lost') return { kind: 'lost' };
    if (laneKind(lease.lane) === 'chat') await this.llm.leaveLine(lease.lane);
    if (apology) await this.apologise(lease, apology);
    return { kind: 'finished', result };
  }

  /**
   * Retries the release while the lease is still this worker's: Redis may be back a moment later.
   * Once the lease lapses by itself the sweeper sees the turn anyway.
   */
  private async releaseOnceRedisAnswers(lease: Lease): Promise<void> {
    while (leaseUsable(lease)) {
      try {
        await this.store.release(lease);
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, RELEASE_RETRY_MS));
      }
    }
  }

  private async apologyFor(lease: Lease): Promise<Notice | undefined> {
    try {
      const [{ state }, waiting] = await Promise.all([
        this.store.readChat(lease.lane),
        this.store.waitingInboundTs(lease.lane),
      ]);
      const key = `a.${lease.fence.replace(/\W/g, '')}`;
      return {
        to: laneParts(lease.lane).sender,
        body: this.canned.text('apology', state.language ?? 'en'),
        key,
        turnId: key,
        lastInboundTs: Math.max(state.lastInboundTs ?? 0, waiting),
      };
    } catch {
      return undefined;
    }
  }

  /** Best effort, once: the patient learns their message was not handled and may call. */
  private async apologise(lease: Lease, apology: Notice): Promise<void> {
    try {
      if (!(await this.sender.sendNotice(lease, apology))) throw new Error('past the lease deadline or the window');
    } catch (err) {
      this.logger.warn({ chat: this.hasher.hash(lease.lane), err }, 'apology not sent');
    }
  }

  private run(lease: Lease): Promise<RunOutcome> {
    const kind = laneKind(lease.lane);
    switch (kind) {
      case 'chat':
        return this.chats.run(lease);
      case 'status':
        return this.statuses.run(lease);
      case 'desk':
        return this.desks.run(lease);
    }
  }

  /**
   * Another worker holds the lane. A live holder re-checks the inbox when it finishes; a dead one
   * (SIGKILL) never will, so look again right after its lease lapses instead of waiting for the
   * sweeper. While the holder lives and renews, this costs one delayed job per lease period.
   */
  private async afterLeaseLapses(lane: string, jobId?: string): Promise<void> {
    const ttl = await this.store.leaseTtl(lane);
    if (ttl <= 0) return;
    const at = Date.now() + ttl + 100;
    await this.wakeUps.wake([{ lane, tag: lapseTag(lane, at, jobId), at }]);
  }

  private async rearm(lease: Lease, outcome: RunOutcome, jobId?: string): Promise<void> {
    const { lane, fence } = lease;
    switch (outcome.kind) {
      case 'lost':
        this.logger.warn({ chat: this.hasher.hash(lane), fence }, 'lease lost; another worker continues this chat');
        return;
      case 'deferred':
        await this.wakeUps.wake([{ lane, tag: notBeforeTag(lane, outcome.at, jobId), at: outcome.at }]);
        return;
      case 'finished': {
        // Tagged with this lane's fence: unique per commit, never the id of a job running there.
        const others = (outcome.wake ?? []).map((other) => ({ lane: other, tag: `w${lane[0]}${fence}` }));
        if (outcome.result === 'more') others.push({ lane, tag: `f${fence}` });
        if (others.length > 0) await this.wakeUps.wake(others);
        return;
      }
    }
  }

  /** Renews the lease every third of its life while `work` runs; a failure to renew is logged. */
  private async withHeartbeat<T>(lease: Lease, work: () => Promise<T>): Promise<T> {
    const every = Math.max(200, Math.floor(this.config.env.TURN_LEASE_MS / 3));
    const timer = setInterval(() => {
      this.store.renew(lease).then(
        (ok) => {
          if (!ok) this.logger.warn({ chat: this.hasher.hash(lease.lane) }, 'lease could not be renewed');
        },
        (err: Error) => this.logger.warn({ err }, 'lease renewal failed'),
      );
    }, every);
    try {
      return await work();
    } finally {
      clearInterval(timer);
    }
  }
}

/** A turn that keeps throwing is dead-lettered after this many attempts (about 7 s of backoff). */
export const MAX_TURN_FAILURES = 5;
const FAILURE_BACKOFF_MS = 500;
const RELEASE_RETRY_MS = 200;

/**
 * A wake-up's tag, or `other` when `tag` names the job that is running now. BullMQ ignores an add
 * whose id is still active, so re-adding its own id would leave the chat to the sweeper.
 */
function notRunning(lane: string, tag: string, other: string, runningJobId?: string): string {
  return runningJobId === `${lane}.${tag}` ? other : tag;
}

/** The tag of a parked lane's delayed wake-up: `n<at>`, `m<at>` from the job `n<at>` itself. */
export function notBeforeTag(lane: string, at: number, runningJobId?: string): string {
  return notRunning(lane, `n${at}`, `m${at}`, runningJobId);
}

/**
 * The tag of the wake-up after another holder's lease lapses: `l<second>`, `k<second>` from the job
 * `l<second>` itself (run early, or finding the lease renewed since it was added).
 */
export function lapseTag(lane: string, at: number, runningJobId?: string): string {
  const second = Math.ceil(at / 1000);
  return notRunning(lane, `l${second}`, `k${second}`, runningJobId);
}
