import { type FinishResult } from './turn.types';

/**
 * What running a lane produced, for the runner to re-arm it. `wake`: other lanes the commit queued
 * work on (a chat's desk lane).
 */
export type RunOutcome =
  { kind: 'finished'; result: FinishResult; wake?: string[] } | { kind: 'deferred'; at: number } | { kind: 'lost' };

export const LOST: RunOutcome = { kind: 'lost' };
export const finished = (result: FinishResult, wake?: string): RunOutcome =>
  result === 'lost' ? LOST : { kind: 'finished', result, wake: wake ? [wake] : undefined };
export const deferredOrLost = (ok: boolean, at: number): RunOutcome => (ok ? { kind: 'deferred', at } : LOST);
