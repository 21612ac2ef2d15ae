import { exponentialMs, withJitter } from './backoff';

describe('retry delays', () => {
  it('double from the base with each failure after the first, up to the cap', () => {
    expect([1, 2, 3, 4].map((n) => exponentialMs(1000, n))).toEqual([1000, 2000, 4000, 8000]);
    expect(exponentialMs(1000, 0)).toBe(1000);
    expect(exponentialMs(30_000, 5, 300_000)).toBe(300_000);
  });

  it('spread ±20 % around the delay, never outside it', () => {
    expect(withJitter(1000, () => 0)).toBe(800);
    expect(withJitter(1000, () => 0.5)).toBe(1000);
    expect(withJitter(1000, () => 0.999999)).toBe(1200);
    for (let i = 0; i < 100; i++) {
      const ms = withJitter(5000);
      expect(ms).toBeGreaterThanOrEqual(4000);
      expect(ms).toBeLessThanOrEqual(6000);
    }
  });
});
