import { type FinishResult } from './turn.types';

/** What running a lane produced, for the runner to re-arm it. */
export type RunOutcome =
  { kind: 'finished'; result: FinishResult } | { kind: 'deferred'; at: number } | { kind: 'lost' };

export const LOST: RunOutcome = { kind: 'lost' };
export const finished = (result: FinishResult): RunOutcome => (result === 'lost' ? LOST : { kind: 'finished', result });
export const deferredOrLost = (ok: boolean, at: number): RunOutcome => (ok ? { kind: 'deferred', at } : LOST);
