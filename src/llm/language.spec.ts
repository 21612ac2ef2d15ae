import { detectLanguage, hasArabicLetters, hasLetters, isolateLtr, pickLanguage } from './language';

describe('detectLanguage', () => {
  it.each([
    ['مرحبا، أريد حجز موعد', 'ar'],
    ['Hello, I would like an appointment', 'en'],
    ['', 'en'],
    ['👍🙏', 'en'],
    ['١٢٣٤ 0501234567 !!', 'en'],
    // Arabic with an English word or two stays Arabic; English with one Arabic word stays English.
    ['عندي موعد مع Dr Smith بكرة', 'ar'],
    ['I have an appointment, شكرا', 'en'],
    ['مرحبا 👋😊', 'ar'],
    ['ok تمام', 'ar'], // 2 Latin, 4 Arabic letters
    ['hi يا', 'ar'], // 2 vs 2: ties go to Arabic
    ['Thanks! مع السلامة', 'ar'],
    ['مَرْحَبًا', 'ar'], // diacritics are marks, not letters: still Arabic
    ['Bonjour, ça va?', 'en'], // other Latin-script languages get English
    ['سلام عليكم، فارسی', 'ar'], // Persian/Urdu letters are Arabic script
  ])('%j is %s', (text, expected) => {
    expect(detectLanguage(text)).toBe(expected);
  });
});

describe('pickLanguage', () => {
  it('takes the last message that has letters', () => {
    expect(pickLanguage(['Hello', 'مرحبا'])).toBe('ar');
    expect(pickLanguage(['مرحبا', 'Hello'])).toBe('en');
    expect(pickLanguage(['مرحبا', '👍', '0501234567'])).toBe('ar');
  });

  it('falls back when no message has letters', () => {
    expect(pickLanguage([])).toBe('en');
    expect(pickLanguage(['👍', '123'])).toBe('en');
    expect(pickLanguage(['👍'], 'ar')).toBe('ar');
  });
});

describe('letters', () => {
  it('tells letters from digits, emoji and punctuation', () => {
    expect(hasLetters('١٢٣ 👍 ?!')).toBe(false);
    expect(hasLetters('a')).toBe(true);
    expect(hasArabicLetters('Hi ب')).toBe(true);
    expect(hasArabicLetters('Hi ١٢٣')).toBe(false);
  });

  it('isolates left-to-right text with LRI/PDI', () => {
    expect(isolateLtr('+971 4 000 0000')).toBe('\u2066+971 4 000 0000\u2069');
  });
});
