import { errorFromMalformedSuccess, errorFromResponse, errorFromTransport, parseGraphError } from './cloud-api-errors';

describe('Cloud API errors', () => {
  const graph = (code: number | string, extra: Record<string, unknown> = {}) => ({
    error: { message: `(#${code}) Something`, type: 'OAuthException', code, fbtrace_id: 'ATrace1', ...extra },
  });

  it('reads code, message and trace id from a Graph error body (object or text)', () => {
    expect(parseGraphError(graph(131056))).toEqual({
      code: 131056,
      message: '(#131056) Something',
      fbtraceId: 'ATrace1',
    });
    expect(parseGraphError(JSON.stringify(graph('190')))).toMatchObject({ code: 190 });
    expect(parseGraphError('<html>bad gateway</html>')).toEqual({});
    expect(parseGraphError({ meta: { http_code: 401 } })).toEqual({});
  });

  it('turns a Graph error answer into a classified, not-sent error', () => {
    const e = errorFromResponse(400, graph(131056));
    expect(e).toMatchObject({
      code: 131056,
      kind: 'pair_rate',
      outcome: 'not_sent',
      httpStatus: 400,
      fbtraceId: 'ATrace1',
    });
    expect(e.retryLimit).toBeUndefined();
    expect(errorFromResponse(400, graph(1)).retryLimit).toBe(2);
  });

  it('falls back to the HTTP status as the code, and marks 5xx answers unknown', () => {
    expect(errorFromResponse(500, 'Internal Server Error')).toMatchObject({
      code: 500,
      kind: 'retry',
      outcome: 'unknown',
    });
    // Meta answered with its own error code: it did not take the message.
    expect(errorFromResponse(500, graph(131000))).toMatchObject({ code: 131000, kind: 'retry', outcome: 'not_sent' });
    expect(errorFromResponse(429, {})).toMatchObject({ code: 429, kind: 'retry', outcome: 'not_sent' });
    expect(errorFromResponse(502, '', 'AHeaderTrace').fbtraceId).toBe('AHeaderTrace');
  });

  it('keeps error_data.details out of the message and truncates Meta text', () => {
    const e = errorFromResponse(400, graph(100, { message: 'x'.repeat(500), error_data: { details: 'PATIENT TEXT' } }));
    expect(e.message).not.toContain('PATIENT TEXT');
    expect(e.message.length).toBeLessThan(250);
  });

  it('decides the outcome of a transport error from whether the request body was written', () => {
    const refused = errorFromTransport({ code: 'ECONNREFUSED', request: { writableFinished: false } });
    expect(refused).toMatchObject({ code: 'ECONNREFUSED', kind: 'retry', outcome: 'not_sent' });
    const reset = errorFromTransport({ code: 'ECONNRESET', request: { writableFinished: true } });
    expect(reset).toMatchObject({ code: 'ECONNRESET', kind: 'retry', outcome: 'unknown' });
    expect(errorFromTransport({ cause: { code: 'EPIPE' } })).toMatchObject({ code: 'EPIPE', outcome: 'not_sent' });
    expect(errorFromTransport(new Error('boom'))).toMatchObject({ code: 'ENETWORK', kind: 'retry' });
    expect(errorFromTransport({ code: 'ERR_INVALID_URL' })).toMatchObject({ kind: 'config', outcome: 'not_sent' });
  });

  it('treats a 2xx without a wamid as an unknown outcome', () => {
    expect(errorFromMalformedSuccess(200)).toMatchObject({ code: 'EBADRESPONSE', kind: 'retry', outcome: 'unknown' });
  });
});
