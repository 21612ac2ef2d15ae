import { safeEqual, safeEqualAny } from './safe-equal';

describe('safeEqual', () => {
  it('is true for equal strings and equal buffers', () => {
    expect(safeEqual('s3cret-token', 's3cret-token')).toBe(true);
    expect(safeEqual(Buffer.from('abc'), Buffer.from('abc'))).toBe(true);
    expect(safeEqual('شكوى', 'شكوى')).toBe(true);
  });

  it('is false for unequal values of the same length', () => {
    expect(safeEqual('s3cret-token', 's3cret-tokeN')).toBe(false);
    expect(safeEqual(Buffer.from([1, 2, 3]), Buffer.from([1, 2, 4]))).toBe(false);
  });

  it('is false, without throwing, for different lengths', () => {
    expect(() => safeEqual('short', 'much-longer-secret')).not.toThrow();
    expect(safeEqual('short', 'much-longer-secret')).toBe(false);
    expect(safeEqual('much-longer-secret', 'short')).toBe(false);
    // Same number of characters, different number of bytes: the check is on bytes.
    expect(() => safeEqual('é', 'e')).not.toThrow();
    expect(safeEqual('é', 'e')).toBe(false);
  });

  it('is false for a missing value', () => {
    expect(safeEqual(undefined, 'secret')).toBe(false);
  });

  it('never accepts an empty expected secret (an unset secret must not open the door)', () => {
    expect(safeEqual('', '')).toBe(false);
    expect(safeEqual(Buffer.alloc(0), Buffer.alloc(0))).toBe(false);
    expect(safeEqual('anything', '')).toBe(false);
  });
});

describe('safeEqualAny', () => {
  const keys = ['key-one', 'key-two', 'a-longer-key-three'];

  it('is true when any candidate matches, wherever it is in the list', () => {
    for (const key of keys) expect(safeEqualAny(key, keys)).toBe(true);
  });

  it('is false when none matches, for a missing value and for no candidates', () => {
    expect(safeEqualAny('key-four', keys)).toBe(false);
    expect(safeEqualAny('key', keys)).toBe(false);
    expect(safeEqualAny(undefined, keys)).toBe(false);
    expect(safeEqualAny('key-one', [])).toBe(false);
    expect(safeEqualAny('', [''])).toBe(false);
  });
});
