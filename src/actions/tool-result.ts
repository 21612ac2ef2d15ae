import { type ToolResult } from '../conversation/turn.types';

/*
 * The results every source of actions (declared HTTP actions, MCP tools) gives the LLM: the same
 * JSON shapes and the same texts, so the model reads a booking the same way whichever ran it.
 */

/** The most of a clinic's answer the LLM reads: enough for a list of slots, not a database dump. */
export const MAX_RESULT_CHARS = 6000;

export const UNKNOWN_OUTCOME_TEXT = 'unknown — do not repeat; tell the patient a person will confirm';

/** Statuses that mean the clinic's system is down, not that it refused the request. */
export const UNAVAILABLE_STATUSES = new Set([502, 503, 504]);

export function invalid(error: string): ToolResult {
  return { outcome: 'invalid', content: JSON.stringify({ ok: false, error }) };
}

/** A side-effecting call that may have been done: never repeated, the chat is handed over. */
export function unknownOutcome(): ToolResult {
  return { outcome: 'unknown', content: JSON.stringify({ ok: false, outcome: UNKNOWN_OUTCOME_TEXT }) };
}

export function timedOut(): ToolResult {
  return {
    outcome: 'timeout',
    content: JSON.stringify({ ok: false, error: "the clinic's system did not answer in time" }),
  };
}

/** Never reached (or said it is down): the turn takes the holding path and calls again later. */
export function unavailable(status?: number): ToolResult {
  if (status === undefined) {
    return {
      outcome: 'unavailable',
      content: JSON.stringify({ ok: false, error: "the clinic's system cannot be reached right now" }),
    };
  }
  return {
    outcome: 'unavailable',
    status,
    content: JSON.stringify({ ok: false, status, error: "the clinic's system is unavailable right now" }),
  };
}

/** The result as JSON text the LLM reads, cut (and said so) when the clinic answered too much. */
export function capped(value: Record<string, unknown>): string {
  const text = JSON.stringify(value);
  if (text.length <= MAX_RESULT_CHARS) return text;
  return JSON.stringify({ ...value, result: undefined, error: undefined, truncated: text.slice(0, MAX_RESULT_CHARS) });
}
