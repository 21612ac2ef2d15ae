import { type JobsOptions } from 'bullmq';

/** Wake-up jobs: "lane X has items in its inbox". */
export const TURNS_QUEUE = 'turns';

export enum TurnJob {
  /** A lane (chat, status or desk) has items waiting. Job id = `<lane>.<tag>`. */
  Wake = 'wake',
  /** The scheduled sweeper: re-arms lanes whose wake-up was lost. */
  Sweep = 'sweep',
}

export const SWEEPER_SCHEDULER_ID = 'tawasul-sweeper';

/**
 * Work given up (DeadLetters): one job per dead letter, parked as failed where /admin/queues shows
 * it; retrying it re-runs its turn through its lane (DeadLetterProcessor).
 */
export const DEAD_LETTERS_QUEUE = 'dead-letters';

/** Dead letters hold patients' texts and numbers: kept only as long as an operator needs to look. */
export const DEAD_LETTER_RETENTION_MS = 30 * 86_400_000;
export const DEAD_LETTER_CAP = 10_000;

/**
 * One attempt: the first run only parks the job as failed. Failed and re-run jobs are kept for
 * the retention, at most the cap; BullMQ applies both only when another job finishes, so the
 * sweeper cleans by age as well.
 */
export const DEAD_LETTER_JOB_OPTIONS: JobsOptions = {
  attempts: 1,
  removeOnFail: { age: DEAD_LETTER_RETENTION_MS / 1000, count: DEAD_LETTER_CAP },
  removeOnComplete: { age: DEAD_LETTER_RETENTION_MS / 1000, count: DEAD_LETTER_CAP },
  // The failure is a parking, not a crash: a stack trace would only clutter the dashboard.
  stackTraceLimit: 0,
};

export interface WakeJobData {
  lane: string;
}

/** Wake-ups are removed as soon as they finish, so a retained job never blocks the next one. */
export const WAKE_JOB_OPTIONS: JobsOptions = {
  removeOnComplete: true,
  removeOnFail: true,
  attempts: 1,
};
