import { classifyBspError, pairRateDelayMs, RETRY_LIMITS } from './bsp-error-taxonomy';
import { type BspErrorKind } from './bsp-send.error';

// The classes of docs/integrations.md ("Error codes the app classifies"), code by code. Most arrive
// with HTTP 400.
const EXPECTED: Record<BspErrorKind, number[]> = {
  retry: [1, 2, 4, 80007, 130429, 131000, 131016, 131057, 133004],
  pair_rate: [131056],
  window_closed: [131047],
  permanent: [
    131026, 100, 131008, 131009, 131021, 131051, 131052, 131053, 130472, 131049, 131050, 132000, 132005, 132007, 132012,
    135000, 137000,
  ],
  config: [0, 3, 10, 190, 200, 250, 299, 368, 131005, 131031, 131042, 131045, 132001, 132015, 132016, 133010, 133016],
};

describe('classifyBspError', () => {
  for (const [kind, codes] of Object.entries(EXPECTED) as [BspErrorKind, number[]][]) {
    it.each(codes)(`classifies Meta code %i as ${kind} whatever the HTTP status`, (code) => {
      for (const httpStatus of [400, 401, 403, 404, 429, 500, 503, undefined]) {
        expect(classifyBspError({ metaCode: code, httpStatus })).toBe(kind);
      }
    });
  }

  it('classifies every code in 200-299 as config', () => {
    for (let code = 200; code <= 299; code++)
      expect(classifyBspError({ metaCode: code, httpStatus: 403 })).toBe('config');
  });

  it('treats other 132xxx template codes as permanent', () => {
    for (const code of [132002, 132999, 132100])
      expect(classifyBspError({ metaCode: code, httpStatus: 400 })).toBe('permanent');
  });

  it('classifies the codes beyond the main lists: 131048 and 132068 config, 132069 retry', () => {
    expect(classifyBspError({ metaCode: 131048, httpStatus: 400 })).toBe('config');
    expect(classifyBspError({ metaCode: 132068, httpStatus: 400 })).toBe('config');
    expect(classifyBspError({ metaCode: 132069, httpStatus: 400 })).toBe('retry');
  });

  it('branches on error.code, not on the HTTP status', () => {
    expect(classifyBspError({ metaCode: 130429, httpStatus: 400 })).toBe('retry');
    expect(classifyBspError({ metaCode: 131026, httpStatus: 500 })).toBe('permanent');
    expect(classifyBspError({ metaCode: 190, httpStatus: 400 })).toBe('config');
  });

  it('classifies unknown Meta codes by status: 400 permanent, 5xx and 429 retry, 401/403 config', () => {
    expect(classifyBspError({ metaCode: 999999, httpStatus: 400 })).toBe('permanent');
    expect(classifyBspError({ metaCode: 131062, httpStatus: 400 })).toBe('permanent');
    expect(classifyBspError({ metaCode: 999999, httpStatus: 500 })).toBe('retry');
    expect(classifyBspError({ metaCode: 999999, httpStatus: 503 })).toBe('retry');
    expect(classifyBspError({ metaCode: 999999, httpStatus: 429 })).toBe('retry');
    expect(classifyBspError({ metaCode: 999999, httpStatus: 401 })).toBe('config');
    expect(classifyBspError({ metaCode: 999999 })).toBe('permanent');
  });

  it('classifies answers without a Meta code by HTTP status', () => {
    for (const status of [429, 408, 500, 502, 503, 504]) expect(classifyBspError({ httpStatus: status })).toBe('retry');
    for (const status of [401, 403, 404]) expect(classifyBspError({ httpStatus: status })).toBe('config');
    for (const status of [400, 413, 422]) expect(classifyBspError({ httpStatus: status })).toBe('permanent');
  });

  it('retries network errors and flags local configuration errors', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']) {
      expect(classifyBspError({ networkCode: code })).toBe('retry');
    }
    expect(classifyBspError({ networkCode: 'ERR_INVALID_URL' })).toBe('config');
    expect(classifyBspError({})).toBe('retry');
  });

  it('bounds retries of code 1 only', () => {
    expect(RETRY_LIMITS[1]).toBe(2);
    expect(RETRY_LIMITS[130429]).toBeUndefined();
  });
});

describe('pairRateDelayMs', () => {
  it('waits 4^n seconds, capped', () => {
    expect([0, 1, 2, 3].map((n) => pairRateDelayMs(n))).toEqual([1000, 4000, 16000, 64000]);
    expect(pairRateDelayMs(20)).toBe(3_600_000);
    expect(pairRateDelayMs(3, 10_000)).toBe(10_000);
    expect(pairRateDelayMs(-1)).toBe(1000);
  });
});
