import { type JobsOptions } from 'bullmq';

/** Wake-up jobs: "lane X has items in its inbox". */
export const TURNS_QUEUE = 'turns';

export enum TurnJob {
  /** A lane (chat or status stream) has items waiting. Job id = `<lane>.<tag>`. */
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

/**
 * Lanes are the unit of ordering. Chat lanes: `c.<phone_number_id>.<sender>`; status lanes:
 * `s.<phone_number_id>.<recipient>`, separate so that statuses never wait behind an LLM call; desk
 * lanes `d.<phone_number_id>.<sender>`: what a chat owes Chatwoot and the escalation webhook, so a
 * Chatwoot outage never holds the patient's chat. Lane ids double as BullMQ job ids, which must
 * not contain `:`. A phone_number_id never contains a dot; a sender (a business-scoped id) may.
 */
export const chatLane = (phoneNumberId: string, sender: string): string => `c.${phoneNumberId}.${sender}`;
export const statusLane = (phoneNumberId: string, recipient: string): string => `s.${phoneNumberId}.${recipient}`;
export const deskLaneOf = (chat: string): string => `d.${chat.slice(2)}`;
export const chatLaneOfDesk = (desk: string): string => `c.${desk.slice(2)}`;

export type LaneKind = 'chat' | 'status' | 'desk';
export function laneKind(lane: string): LaneKind {
  if (lane.startsWith('s.')) return 'status';
  if (lane.startsWith('d.')) return 'desk';
  return 'chat';
}

/** The parts of a chat (or desk) lane id. */
export function laneParts(lane: string): { phoneNumberId: string; sender: string } {
  const [, phoneNumberId = '', ...rest] = lane.split('.');
  return { phoneNumberId, sender: rest.join('.') };
}

/** Wake-ups are removed as soon as they finish, so a retained job never blocks the next one. */
export const WAKE_JOB_OPTIONS: JobsOptions = {
  removeOnComplete: true,
  removeOnFail: true,
  attempts: 1,
};
