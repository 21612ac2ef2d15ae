import { timingSafeEqual } from 'node:crypto';

/**
 * The one comparison for every secret (webhook signature, 360dialog secret, verify token, API keys,
 * Chatwoot token, dashboard password). Constant time for equal lengths; a length mismatch is simply
 * "not equal" (timingSafeEqual would throw, and a throw must never become a 500).
 */
export function safeEqual(actual: string | Buffer | undefined, expected: string | Buffer): boolean {
  if (actual === undefined) return false;
  const a = typeof actual === 'string' ? Buffer.from(actual, 'utf8') : actual;
  const b = typeof expected === 'string' ? Buffer.from(expected, 'utf8') : expected;
  if (a.length !== b.length || b.length === 0) return false;
  return timingSafeEqual(a, b);
}

/** True when `actual` equals any of `candidates`; every candidate is compared, so timing reveals nothing. */
export function safeEqualAny(actual: string | undefined, candidates: readonly string[]): boolean {
  let found = false;
  for (const candidate of candidates) found = safeEqual(actual, candidate) || found;
  return found;
}
