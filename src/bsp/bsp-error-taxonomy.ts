import { type BspErrorKind } from './bsp-send.error';

/**
 * Meta error codes by the client action they call for (the table in docs/integrations.md). Meta
 * answers most errors, transient ones included, with HTTP 400, so the code decides, never the
 * status alone.
 */
const RETRY_CODES: ReadonlySet<number> = new Set([
  1, // API Unknown: retried a couple of times only (RETRY_LIMITS)
  2, // API Service: temporary downtime
  4, // app call rate limit
  80007, // WABA rate limit
  130429, // throughput (messages per second per number)
  131000, // something went wrong
  131016, // service temporarily unavailable
  131057, // account in maintenance (throughput upgrade, up to ~1 min)
  132069, // Flow throttled ("retry later")
  133004, // server temporarily unavailable
]);

const PERMANENT_CODES: ReadonlySet<number> = new Set([
  100, 130472, 131008, 131009, 131021, 131026, 131049, 131050, 131051, 131052, 131053, 132000, 132005, 132007, 132012,
  135000, 137000,
]);

/** Token, permission, account, number and template problems: a human has to act. */
const CONFIG_CODES: ReadonlySet<number> = new Set([
  0,
  3,
  10,
  190,
  368,
  131005,
  131031,
  131042,
  131045,
  131048, // spam rate limit, number quality: stop and investigate
  132001,
  132015,
  132016,
  132068, // Flow blocked
  133010,
  133016,
]);

/**
 * Config codes that concern one template rather than the account: only a successful template send
 * clears their alert (BspMetrics), a free-form send proves nothing about them.
 */
export const TEMPLATE_CONFIG_CODES: ReadonlySet<number> = new Set([132001, 132015, 132016]);

/** Codes Meta says to retry only a couple of times; after that many retries, treat as permanent. */
export const RETRY_LIMITS: Readonly<Record<number, number>> = { 1: 2 };

/** Transport errors that come from our own configuration (a bad URL or header), not the network. */
const LOCAL_CONFIG_ERRORS: ReadonlySet<string> = new Set([
  'ERR_INVALID_URL',
  'ERR_INVALID_CHAR',
  'ERR_INVALID_HTTP_TOKEN',
  'ERR_INVALID_PROTOCOL',
  'ERR_UNESCAPED_CHARACTERS',
  'ERR_BAD_OPTION',
  'ERR_BAD_OPTION_VALUE',
  'ERR_NOT_SUPPORT',
]);

export interface BspErrorFacts {
  /** `error.code` of a Graph error answer, when there was one. */
  metaCode?: number;
  /** HTTP status of the answer, when there was one. */
  httpStatus?: number;
  /** Transport error code (ECONNREFUSED, ECONNRESET, ETIMEDOUT, …) when no answer came. */
  networkCode?: string;
}

/**
 * Classifies a failed call: by Meta's error code when present; by HTTP status for answers without
 * one (a gateway, a proxy, 360dialog's own errors); network errors are transient unless they come
 * from our own configuration. Unknown Meta codes: 5xx/429 retry, 401/403 config, else permanent.
 */
export function classifyBspError(facts: BspErrorFacts): BspErrorKind {
  const { metaCode, httpStatus, networkCode } = facts;
  if (metaCode !== undefined) return classifyMetaCode(metaCode, httpStatus);
  if (httpStatus !== undefined) return classifyHttpStatus(httpStatus);
  if (networkCode !== undefined && LOCAL_CONFIG_ERRORS.has(networkCode)) return 'config';
  return 'retry';
}

function classifyMetaCode(code: number, httpStatus: number | undefined): BspErrorKind {
  if (code === 131056) return 'pair_rate';
  if (code === 131047) return 'window_closed';
  if (RETRY_CODES.has(code)) return 'retry';
  if (CONFIG_CODES.has(code) || (code >= 200 && code <= 299)) return 'config';
  if (PERMANENT_CODES.has(code) || (code >= 132000 && code <= 132999)) return 'permanent';
  if (httpStatus === undefined) return 'permanent';
  if (httpStatus >= 500 || httpStatus === 429) return 'retry';
  if (httpStatus === 401 || httpStatus === 403) return 'config';
  return 'permanent';
}

function classifyHttpStatus(status: number): BspErrorKind {
  if (status >= 500 || status === 429 || status === 408 || status === 425) return 'retry';
  // Without a Graph error body these come from a gateway: a wrong key, token, URL or version.
  if (status === 401 || status === 403 || status === 404) return 'config';
  return 'permanent';
}

/**
 * The per-recipient delay after the n-th consecutive 131056 (n = 0, 1, 2, …): 4^n seconds, as Meta
 * suggests, capped so a chat is never parked for longer than `capMs`.
 */
export function pairRateDelayMs(consecutiveFailures: number, capMs = 3_600_000): number {
  const n = Math.max(0, Math.floor(consecutiveFailures));
  return Math.min(1000 * 4 ** n, capMs);
}
