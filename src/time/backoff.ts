/**
 * Retry delays. One helper for every retry loop of the worker (LLM calls, sends, desk steps, turns
 * that threw), so that they grow, cap and spread the same way.
 */

/** `base` doubled for each failure after the first (`failures` counts from 1), at most `capMs`. */
export function exponentialMs(base: number, failures: number, capMs = Number.POSITIVE_INFINITY): number {
  return Math.min(base * 2 ** Math.max(failures - 1, 0), capMs);
}

/**
 * ±20 % around `ms`: chats that failed together (an LLM or Graph API outage) come back spread out
 * instead of as one burst that fails them all again.
 */
export function withJitter(ms: number, random: () => number = Math.random): number {
  return Math.round(ms * (0.8 + random() * 0.4));
}
