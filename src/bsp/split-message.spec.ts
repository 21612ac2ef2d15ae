import { splitMessage, TEXT_BODY_LIMIT } from './split-message';

const words = (parts: string[]): string[] => parts.join(' ').split(/\s+/).filter(Boolean);
const sentence = (i: number): string => `Sentence number ${i} explains the clinic opening hours in detail.`;
const isLowSurrogate = (code: number): boolean => code >= 0xdc00 && code <= 0xdfff;
const isHighSurrogate = (code: number): boolean => code >= 0xd800 && code <= 0xdbff;

function expectWellFormed(parts: string[], original: string, limit = TEXT_BODY_LIMIT): void {
  for (const part of parts) {
    expect(part.length).toBeGreaterThan(0);
    expect(part.length).toBeLessThanOrEqual(limit);
    expect(part).toBe(part.trim());
    expect(isLowSurrogate(part.charCodeAt(0))).toBe(false);
    expect(isHighSurrogate(part.charCodeAt(part.length - 1))).toBe(false);
  }
  expect(words(parts)).toEqual(words([original]));
}

describe('splitMessage', () => {
  it('returns a short reply as one trimmed part, and nothing for blank text', () => {
    expect(splitMessage('  Hello there.  ')).toEqual(['Hello there.']);
    expect(splitMessage('x'.repeat(4096))).toHaveLength(1);
    expect(splitMessage(' \n\t ')).toEqual([]);
  });

  it('splits a 9,000-character reply into 3 parts of at most 4096', () => {
    let text = '';
    for (let i = 0; text.length < 9000; i++) text += `${sentence(i)} `;
    text = text.slice(0, 9000).trim();
    const parts = splitMessage(text);
    expect(parts).toHaveLength(3);
    expectWellFormed(parts, text);
    // Each part but the last ends at a sentence end, not mid-sentence.
    for (const part of parts.slice(0, -1)) expect(part.endsWith('.')).toBe(true);
  });

  it('prefers a paragraph break over a later sentence end', () => {
    const first = Array.from({ length: 40 }, (_, i) => sentence(i)).join(' '); // ~2.6k
    const second = Array.from({ length: 40 }, (_, i) => sentence(i + 40)).join(' ');
    const text = `${first}\n\n${second}`;
    const parts = splitMessage(text);
    expect(parts[0]).toBe(first);
    expect(parts[1]).toBe(second);
  });

  it('ignores a paragraph break that would leave a tiny part, using a sentence end instead', () => {
    const text = `Hi.\n\n${Array.from({ length: 80 }, (_, i) => sentence(i)).join(' ')}`;
    const parts = splitMessage(text);
    expect(parts[0].startsWith('Hi.\n\nSentence number 0')).toBe(true);
    expect(parts[0].length).toBeGreaterThan(2048);
    expectWellFormed(parts, text);
  });

  it('splits Arabic at Arabic sentence ends (؟ and ۔) and keeps the text intact', () => {
    const ar = (i: number): string =>
      i % 2 ? `هل يمكنني حجز موعد يوم الأحد رقم ${i}؟` : `شكراً لتواصلكم مع العيادة رقم ${i}۔`;
    const text = Array.from({ length: 300 }, (_, i) => ar(i)).join(' ');
    expect(text.length).toBeGreaterThan(4096 * 2);
    const parts = splitMessage(text);
    expectWellFormed(parts, text);
    for (const part of parts.slice(0, -1)) expect(/[؟۔]$/.test(part)).toBe(true);
    expect(parts.join(' ')).toBe(text);
  });

  it('splits at line breaks when there are no sentence ends', () => {
    const text = Array.from({ length: 200 }, (_, i) => `- item ${i} with no full stop at all`).join('\n');
    const parts = splitMessage(text, 1000);
    expectWellFormed(parts, text, 1000);
    for (const part of parts.slice(0, -1)) expect(text.includes(`${part}\n`)).toBe(true);
  });

  it('does not treat decimals or domains as sentence ends', () => {
    const text = `${'word '.repeat(150)}costs 3.5 dirhams at example.com today ${'word '.repeat(5)}`.trim();
    const parts = splitMessage(text, 770);
    expectWellFormed(parts, text, 770);
    expect(parts.join(' ')).toContain('3.5 dirhams at example.com');
  });

  it('falls back to whitespace, then a hard cut that never splits a surrogate pair', () => {
    const spaced = 'abcdefghij '.repeat(1000);
    expectWellFormed(splitMessage(spaced), spaced);

    const emoji = '😀'.repeat(3000); // 6000 code units, no boundary at all
    const parts = splitMessage(emoji, 4097);
    expect(parts.join('')).toBe(emoji);
    for (const part of parts) {
      expect(part.length).toBeLessThanOrEqual(4097);
      expect(isHighSurrogate(part.charCodeAt(part.length - 1))).toBe(false);
      expect(isLowSurrogate(part.charCodeAt(0))).toBe(false);
    }
  });

  it('does not separate a base letter from its combining marks or a ZWJ sequence on a hard cut', () => {
    const marked = 'بَ'.repeat(100); // letter + fatha, no spaces
    const parts = splitMessage(marked, 51);
    expect(parts.join('')).toBe(marked);
    for (const part of parts) expect(/^\p{M}/u.test(part)).toBe(false);

    const family = '👨‍👩‍👧'.repeat(50);
    const familyParts = splitMessage(family, 30);
    expect(familyParts.join('')).toBe(family);
    for (const part of familyParts) expect(part.startsWith('\u200d')).toBe(false);
  });

  it('rejects a nonsensical limit', () => {
    expect(() => splitMessage('abc', 1)).toThrow(RangeError);
  });
});
