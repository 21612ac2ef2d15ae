import { FUTURE_SKEW_S, serviceWindow, trustedInboundTs, WINDOW_MS } from './service-window';

describe('serviceWindow', () => {
  const ts = 1_780_000_000;

  it('is open until 24 h after the message timestamp, closed from then on', () => {
    expect(serviceWindow(ts, ts * 1000 + WINDOW_MS - 1)).toEqual({ open: true, closesAt: ts * 1000 + WINDOW_MS });
    expect(serviceWindow(ts, ts * 1000 + WINDOW_MS).open).toBe(false);
  });

  it('is closed when the patient never wrote', () => {
    expect(serviceWindow(undefined, ts * 1000)).toEqual({ open: false });
  });
});

describe('trustedInboundTs', () => {
  const now = 1_780_000_000_000;

  it('keeps a past or slightly skewed stamp', () => {
    expect(trustedInboundTs(now / 1000 - 3600, now)).toBe(now / 1000 - 3600);
    expect(trustedInboundTs(now / 1000 + FUTURE_SKEW_S, now)).toBe(now / 1000 + FUTURE_SKEW_S);
  });

  it('counts a stamp further ahead as written now (plus the skew)', () => {
    expect(trustedInboundTs(now / 1000 + 3 * 86_400, now)).toBe(now / 1000 + FUTURE_SKEW_S);
  });
});
