/**
 * How the caller should react to a failed send (docs/integrations.md, docs/architecture.md §7):
 * - `retry`: transient (throttling, 5xx, network). Retry the part with backoff.
 * - `pair_rate`: 131056, too many messages to this one recipient. Delay only this chat by 4^n
 *   seconds (pairRateDelayMs); other chats are unaffected.
 * - `window_closed`: 131047, the 24-hour window is closed. Send REENGAGEMENT_TEMPLATE or hand over.
 * - `permanent`: this message to this recipient will never go through. Record it, do not retry.
 * - `config`: token, permission, number or template problem. A human must act; the alert metric is
 *   already raised. Retrying later (after the fix) is safe.
 */
export type BspErrorKind = 'retry' | 'pair_rate' | 'window_closed' | 'permanent' | 'config';

/**
 * Whether the request may have reached the BSP:
 * - `not_sent`: certainly not accepted (refused connection, error before the body was written, a
 *   4xx, or a 5xx carrying a Graph error code). Resending cannot duplicate.
 * - `unknown`: the request was fully written and then the connection broke or the call timed out,
 *   or the answer was a bare 5xx (a gateway's) or a 2xx without a wamid. Meta may have accepted it:
 *   resend only after no status carrying this send's `biz_opaque_callback_data` arrived within
 *   SEND_UNKNOWN_WAIT_MS, and count it as a possible duplicate.
 */
export type SendOutcome = 'not_sent' | 'unknown';

export interface BspSendErrorDetails {
  httpStatus?: number;
  fbtraceId?: string;
  /**
   * Set when Meta advises only a few retries for this code (code 1: "retry a couple of times, then
   * treat as a bad request"): after this many retries treat the error as permanent.
   */
  retryLimit?: number;
}

/**
 * A failed send. `code` is Meta's `error.code` when the answer carried one, else the HTTP status,
 * else a transport code such as 'ECONNRESET' or 'ETIMEDOUT'. The message never contains patient
 * text, phone numbers or secrets.
 */
export class BspSendError extends Error {
  override readonly name = 'BspSendError';
  readonly httpStatus?: number;
  readonly fbtraceId?: string;
  readonly retryLimit?: number;

  constructor(
    readonly code: number | string,
    readonly kind: BspErrorKind,
    readonly outcome: SendOutcome,
    message: string,
    details: BspSendErrorDetails = {},
  ) {
    super(message);
    this.httpStatus = details.httpStatus;
    this.fbtraceId = details.fbtraceId;
    this.retryLimit = details.retryLimit;
  }
}
