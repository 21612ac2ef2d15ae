/** The languages the bot speaks: every canned message and the offline responder exist in both. */
export const LANGUAGES = ['en', 'ar'] as const;
export type Language = (typeof LANGUAGES)[number];

export const DEFAULT_LANGUAGE: Language = 'en';

// Letters only: digits (Arabic-Indic included), punctuation and emoji say nothing about language.
const ARABIC_LETTER = /\p{Script=Arabic}/u;
const LETTER = /\p{L}/u;

function countLetters(text: string): { arabic: number; other: number } {
  let arabic = 0;
  let other = 0;
  for (const ch of text) {
    if (!LETTER.test(ch)) continue;
    if (ARABIC_LETTER.test(ch)) arabic++;
    else other++;
  }
  return { arabic, other };
}

export function hasLetters(text: string): boolean {
  return LETTER.test(text);
}

export function hasArabicLetters(text: string): boolean {
  for (const ch of text) if (LETTER.test(ch) && ARABIC_LETTER.test(ch)) return true;
  return false;
}

/**
 * 'ar' when Arabic-script letters are at least as many as all other letters, else 'en'. Ties go to
 * Arabic: UAE patients writing Arabic often mix in English words (clinic names, drugs), rarely the
 * reverse. Text without letters (emoji, digits) is 'en'; use pickLanguage to carry a language over.
 */
export function detectLanguage(text: string): Language {
  const { arabic, other } = countLetters(text);
  return arabic > 0 && arabic >= other ? 'ar' : 'en';
}

/**
 * The language of a conversation from its messages in order: the last one with letters wins, so
 * a thumbs-up or a phone number after Arabic text keeps the chat in Arabic.
 */
export function pickLanguage(texts: readonly string[], fallback: Language = DEFAULT_LANGUAGE): Language {
  for (let i = texts.length - 1; i >= 0; i--) {
    if (hasLetters(texts[i])) return detectLanguage(texts[i]);
  }
  return fallback;
}

/**
 * Wraps left-to-right text (a phone number) in a Unicode isolate for use inside Arabic text:
 * otherwise "+971 4 000 0000" is laid out right to left group by group ("0000 000 4 971+").
 */
export function isolateLtr(text: string): string {
  return `\u2066${text}\u2069`;
}
