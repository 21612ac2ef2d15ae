import { RETRY_LIMITS, classifyBspError } from './bsp-error-taxonomy';
import { BspSendError, type SendOutcome } from './bsp-send.error';

const MAX_MESSAGE = 160;

interface GraphError {
  code?: number;
  message?: string;
  fbtraceId?: string;
}

/** `error.code`, `error.message` and `error.fbtrace_id` of a Graph error body, when it is one. */
export function parseGraphError(data: unknown): GraphError {
  const body = typeof data === 'string' ? safeJson(data) : data;
  if (!isRecord(body) || !isRecord(body.error)) return {};
  const { code, message, fbtrace_id: fbtraceId } = body.error;
  const numeric = typeof code === 'number' ? code : typeof code === 'string' && /^\d+$/.test(code) ? Number(code) : NaN;
  return {
    code: Number.isInteger(numeric) ? numeric : undefined,
    message: typeof message === 'string' ? message : undefined,
    fbtraceId: typeof fbtraceId === 'string' ? fbtraceId : undefined,
  };
}

/**
 * A non-2xx answer. A 5xx carrying a Graph error code is Meta saying "not sent" (131000, 131016,
 * 133004…): retry at once. A bare 5xx (a gateway or proxy) is `unknown`: the server had the whole
 * request and may have accepted it before failing. Only Meta's `error.message` is kept (truncated), never
 * `error_data.details`, which can echo parameters of the request.
 */
export function errorFromResponse(status: number, data: unknown, traceHeader?: string): BspSendError {
  const graph = parseGraphError(data);
  const kind = classifyBspError({ metaCode: graph.code, httpStatus: status });
  const code = graph.code ?? status;
  const outcome: SendOutcome = status >= 500 && graph.code === undefined ? 'unknown' : 'not_sent';
  const detail = graph.message ? `: ${graph.message.slice(0, MAX_MESSAGE)}` : '';
  return new BspSendError(code, kind, outcome, `BSP answered HTTP ${status}, code ${code}${detail}`, {
    httpStatus: status,
    fbtraceId: graph.fbtraceId ?? traceHeader,
    retryLimit: graph.code !== undefined ? RETRY_LIMITS[graph.code] : undefined,
  });
}

/**
 * No answer. The request object tells whether the body had been handed to the kernel before the
 * failure (`writableFinished`, set just before 'finish'): if not (connection refused, DNS, a
 * connect timeout) the BSP cannot have it; if so (reset or timeout while waiting for the answer)
 * it may have been accepted.
 */
export function errorFromTransport(err: unknown): BspSendError {
  const e = isRecord(err) ? err : {};
  const cause = isRecord(e.cause) ? e.cause : {};
  const code = stringOr(e.code, stringOr(cause.code, 'ENETWORK'));
  const written = isRecord(e.request) && e.request.writableFinished === true;
  const kind = classifyBspError({ networkCode: code });
  const outcome: SendOutcome = written ? 'unknown' : 'not_sent';
  const phase = written ? 'after the request was written' : 'before the request was written';
  return new BspSendError(code, kind, outcome, `BSP call failed ${phase}: ${code}`);
}

/** A 2xx answer without a wamid: accepted, most likely, but we cannot tell which message it is. */
export function errorFromMalformedSuccess(status: number): BspSendError {
  return new BspSendError('EBADRESPONSE', 'retry', 'unknown', `BSP answered HTTP ${status} without a message id`, {
    httpStatus: status,
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function stringOr(value: unknown, fallback: string): string {
  return typeof value === 'string' && value !== '' ? value : fallback;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
