import { InjectQueue } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import { Queue } from 'bullmq';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { ConversationStore } from '../conversation/conversation.store';
import { serviceWindow } from '../conversation/service-window';
import { AppLogger } from '../logging/app-logger';
import { LogHasher } from '../logging/log-hasher';
import { DEAD_LETTER_CAP, DEAD_LETTERS_QUEUE } from '../queue/queue.constants';
import { chatLane, deskLaneOf } from '../queue/lanes';
import { Clock } from '../time/clock';
import { ApiError } from './api-error';
import { type ConversationDto, type ErasedDto, type ResumedDto } from './api.dto';

const WA_ID = /^\+?[1-9]\d{6,14}$/;

/** GET, resume and erase of one chat for the clinic's systems (docs/http-api.md). */
@Injectable()
export class ConversationsService {
  private readonly logger: Logger;

  constructor(
    private readonly store: ConversationStore,
    @InjectQueue(DEAD_LETTERS_QUEUE) private readonly deadLetters: Queue<{ lane?: string }>,
    private readonly clock: Clock,
    private readonly hasher: LogHasher,
    private readonly config: AppConfig,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('api');
  }

  async show(waId: string): Promise<ConversationDto> {
    const lane = this.laneOf(waId);
    const { state, history, handoff } = await this.guard(this.store.readChat(lane));
    if (history.length === 0 && Object.keys(state).length === 0 && handoff.state === 'bot') throw notFound();
    const window = serviceWindow(state.lastInboundTs, this.clock.now());
    return {
      waId: waId.replace(/^\+/, ''),
      window: { open: window.open, closesAt: isoTime(window.closesAt) },
      handoff: handoff.state,
      language: state.language ?? 'en',
      history: history.map((entry) => ({ role: entry.role, text: entry.text, at: new Date(entry.at).toISOString() })),
    };
  }

  async resume(waId: string): Promise<ResumedDto> {
    const lane = this.laneOf(waId);
    const { state, history, handoff } = await this.guard(this.store.readChat(lane));
    if (history.length === 0 && Object.keys(state).length === 0 && handoff.state === 'bot') throw notFound();
    const resumed = await this.guard(this.store.resume(lane));
    this.logger.info({ chat: this.hasher.hash(lane), resumed }, 'chat resumed by the API');
    return { waId: waId.replace(/^\+/, ''), handoff: 'bot', resumed };
  }

  async erase(waId: string): Promise<ErasedDto> {
    const lane = this.laneOf(waId);
    const erased = await this.guard(this.store.erase(lane));
    const letters = await this.guard(this.eraseDeadLetters(lane));
    if (!erased && letters === 0) throw notFound();
    this.logger.info({ chat: this.hasher.hash(lane) }, 'chat erased by the API');
    return { waId: waId.replace(/^\+/, ''), erased: true };
  }

  /**
   * Dead letters keep a turn's items (patients' texts) for 30 days so an operator can re-run them:
   * an erasure removes the chat's (and its desk lane's) too. Rare and bounded (at most 10,000
   * jobs), so a scan of the queue is fine.
   */
  private async eraseDeadLetters(lane: string): Promise<number> {
    const lanes = new Set([lane, deskLaneOf(lane)]);
    const jobs = await this.deadLetters.getJobs(
      ['failed', 'completed', 'waiting', 'delayed', 'paused'],
      0,
      DEAD_LETTER_CAP,
    );
    const mine = jobs.filter((job) => job?.data?.lane !== undefined && lanes.has(job.data.lane));
    await Promise.all(mine.map((job) => job.remove()));
    return mine.length;
  }

  private laneOf(waId: string): string {
    if (!WA_ID.test(waId)) {
      throw ApiError.invalid('invalid_path', [
        { field: 'waId', problem: 'must be an international phone number, digits only' },
      ]);
    }
    return chatLane(this.config.phoneNumberId, waId.replace(/^\+/, ''));
  }

  private async guard<T>(work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (err) {
      this.logger.error({ err }, 'redis did not answer; 503');
      throw new ApiError(503, { error: 'unavailable', message: 'storage unavailable; retry' });
    }
  }
}

/**
 * The window runs from the patient's message's own timestamp, which a signed payload may carry past
 * what a Date can hold: such a window shows no end time rather than failing the whole read.
 */
function isoTime(ms: number | undefined): string | null {
  const date = new Date(ms || Number.NaN);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

function notFound(): ApiError {
  return new ApiError(404, { error: 'not_found', message: 'no conversation with this number' });
}
