import { type JobsOptions } from 'bullmq';

/** Wake-up jobs: "lane X has items in its inbox". The worker issue consumes them. */
export const TURNS_QUEUE = 'turns';

export enum TurnJob {
  /** A lane (chat or status stream) has items waiting. Job id = `<lane>.<tag>`. */
  Wake = 'wake',
  /** The scheduled sweeper: re-arms lanes whose wake-up was lost. */
  Sweep = 'sweep',
}

export const SWEEPER_SCHEDULER_ID = 'tawasul-sweeper';

export interface WakeJobData {
  lane: string;
}

/**
 * Lanes are the unit of ordering. Chat lanes: `c.<phone_number_id>.<sender>`; status lanes:
 * `s.<phone_number_id>.<recipient>`, separate so that statuses never wait behind an LLM call.
 * Lane ids double as BullMQ job ids, which must not contain `:`.
 */
export const chatLane = (phoneNumberId: string, sender: string): string => `c.${phoneNumberId}.${sender}`;
export const statusLane = (phoneNumberId: string, recipient: string): string => `s.${phoneNumberId}.${recipient}`;

/** Wake-ups are removed as soon as they finish, so a retained job never blocks the next one (SPEC §5). */
export const WAKE_JOB_OPTIONS: JobsOptions = {
  removeOnComplete: true,
  removeOnFail: true,
  attempts: 1,
};
