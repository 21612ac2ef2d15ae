import { readJsonConfigFile } from '../config/json-config-file';
import { compilePhrase, type Phrase } from '../escalation/escalation-triggers';
import { detectLanguage, hasArabicLetters, hasLetters, type Language, LANGUAGES } from './language';
import { LlmSetupError } from './llm-setup.error';
import { placeholdersOf } from './placeholders';

/**
 * Word lists that tell what a message is, besides the FAQ keywords. `pick`: the filler words a
 * choice from the list of free times may carry ("option 2 please"); `negation`: words that make a
 * message no choice and strike out the day after them ("not 2", "not Thursday"); `morning` and
 * `afternoon`: the part of a day the patient asks for.
 */
export const WORD_LISTS = [
  'greeting',
  'booking',
  'thanks',
  'yes',
  'no',
  'question',
  'pick',
  'negation',
  'morning',
  'afternoon',
] as const;
export type WordList = (typeof WORD_LISTS)[number];

/** The days a patient can ask for while choosing a time, besides the weekdays' names. */
export const DAY_KEYS = [
  'today',
  'tomorrow',
  'sunday',
  'monday',
  'tuesday',
  'wednesday',
  'thursday',
  'friday',
  'saturday',
] as const;
export type DayKey = (typeof DAY_KEYS)[number];

/**
 * The receptionist's questions. Its state is read back from the history, so these double as
 * markers: the last one found in its previous reply is what the patient is answering now.
 */
export const QUESTION_KEYS = ['askName', 'askReason', 'askTime', 'pickSlot', 'offerBooking'] as const;
export type QuestionKey = (typeof QUESTION_KEYS)[number];

export const TEXT_KEYS = [
  'greeting',
  'menu',
  'notUnderstood',
  'notAName',
  ...QUESTION_KEYS,
  'thankName',
  'gotReason',
  'confirm',
  'slotsOn',
  'noSlots',
  'bookedSlot',
  'slotTaken',
  'bookingPending',
  'urgent',
  'booked',
  'bookedReminder',
  'welcome',
  'declined',
  'notAPick',
] as const;
export type TextKey = (typeof TEXT_KEYS)[number];

export type Texts = Record<Language, string>;

export interface FaqEntry {
  topic: string;
  keywords: Phrase[];
  answer: Texts;
}

export interface ReceptionistScript {
  words: Record<WordList, Phrase[]>;
  days: Record<DayKey, Phrase[]>;
  texts: Record<TextKey, Texts>;
  faq: FaqEntry[];
}

// Markers (the questions) take none: a filled-in marker could no longer be found in the history.
const ALLOWED_PLACEHOLDERS: Record<TextKey, readonly string[]> = {
  greeting: ['clinicName'],
  menu: ['clinicName'],
  notUnderstood: ['clinicName'],
  notAName: ['clinicName'],
  askName: [],
  askReason: [],
  askTime: [],
  pickSlot: [],
  offerBooking: [],
  thankName: ['clinicName', 'name'],
  gotReason: ['clinicName'],
  confirm: ['clinicName', 'name', 'reason', 'time'],
  // From the clinic's answer to find_free_slots and book_appointment.
  slotsOn: ['clinicName', 'date'],
  noSlots: ['clinicName', 'date'],
  bookedSlot: ['clinicName', 'name', 'date', 'time', 'doctor', 'bookingId'],
  slotTaken: ['clinicName'],
  bookingPending: ['clinicName'],
  urgent: ['clinicName', 'clinicPhone'],
  booked: ['clinicName'],
  // Read back from the bookedSlot reply in the history: the clinic's answer is no longer at hand.
  bookedReminder: ['clinicName', 'name', 'date', 'time', 'doctor', 'bookingId'],
  welcome: ['clinicName'],
  declined: ['clinicName'],
  notAPick: ['clinicName'],
};
const LANGUAGE_NAMES: Record<Language, string> = { en: 'English', ar: 'Arabic' };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const unknownKeys = (value: Record<string, unknown>, keys: readonly string[]): string[] =>
  Object.keys(value).filter((k) => !k.startsWith('_') && !keys.includes(k));

/** Collects every problem of the file, so that one start-up attempt shows them all. */
class Problems {
  readonly lines: string[] = [];
  add(where: string, what: string): void {
    this.lines.push(`${where}: ${what}`);
  }
}

function readTexts(value: unknown, where: string, allowed: readonly string[], problems: Problems): Texts | undefined {
  if (!isObject(value)) {
    problems.add(where, 'must be an object with en and ar texts');
    return undefined;
  }
  for (const extra of unknownKeys(value, LANGUAGES))
    problems.add(`${where}.${extra}`, 'unknown language; known: en, ar');
  const texts = {} as Texts;
  let ok = true;
  for (const language of LANGUAGES) {
    const text = value[language];
    const at = `${where}.${language}`;
    if (typeof text !== 'string' || text.trim() === '') {
      problems.add(at, 'missing or empty');
      ok = false;
      continue;
    }
    const unknown = placeholdersOf(text).filter((p) => !allowed.includes(p));
    if (unknown.length > 0) {
      const hint =
        allowed.length > 0 ? `allowed here: ${allowed.map((p) => `{{${p}}}`).join(', ')}` : 'none allowed here';
      problems.add(at, `unknown placeholder {{${unknown[0]}}} (${hint})`);
      ok = false;
    }
    // Placeholders hold names and numbers in any script; the words around them tell the language.
    const words = text.replace(/\{\{[^}]*\}\}/g, ' ');
    if (hasLetters(words) && detectLanguage(words) !== language) {
      problems.add(at, `is not written in ${LANGUAGE_NAMES[language]}`);
      ok = false;
    }
    texts[language] = text.trim();
  }
  return ok ? texts : undefined;
}

/** A list of words or phrases per language; each must match something, once. */
function readWords(value: unknown, where: string, problems: Problems, seen = new Map<string, string>()): Phrase[] {
  if (!isObject(value)) {
    problems.add(where, 'must be an object with en and ar lists of words');
    return [];
  }
  for (const extra of unknownKeys(value, LANGUAGES))
    problems.add(`${where}.${extra}`, 'unknown language; known: en, ar');
  const phrases: Phrase[] = [];
  for (const language of LANGUAGES) {
    const list = value[language];
    const at = `${where}.${language}`;
    if (!Array.isArray(list) || list.length === 0) {
      problems.add(at, 'must be a non-empty list of words');
      continue;
    }
    list.forEach((word: unknown, index) => {
      if (typeof word !== 'string') return problems.add(`${at}[${index}]`, 'must be a string');
      const phrase = compilePhrase(word);
      if (phrase.text === '') return problems.add(`${at}[${index}]`, `"${word}" has no letters or digits to match`);
      if (language === 'ar' && !hasArabicLetters(word))
        return problems.add(`${at}[${index}]`, `"${word}" is not Arabic`);
      if (language === 'en' && hasArabicLetters(word)) return problems.add(`${at}[${index}]`, `"${word}" is Arabic`);
      const earlier = seen.get(phrase.text);
      if (earlier !== undefined) return problems.add(`${at}[${index}]`, `"${word}" repeats ${earlier} once normalised`);
      seen.set(phrase.text, `"${word}" of ${at}`);
      phrases.push(phrase);
    });
  }
  return phrases;
}

function readFaq(value: unknown, problems: Problems): FaqEntry[] {
  if (!Array.isArray(value) || value.length === 0) {
    problems.add('faq', 'must be a non-empty list of { topic, keywords, answer }');
    return [];
  }
  // A keyword of two topics would answer both every time: almost certainly a slip.
  const seen = new Map<string, string>();
  const entries: FaqEntry[] = [];
  value.forEach((raw: unknown, index) => {
    const where = `faq[${index}]`;
    if (!isObject(raw)) return problems.add(where, 'must be an object with topic, keywords and answer');
    for (const extra of unknownKeys(raw, ['topic', 'keywords', 'answer'])) {
      problems.add(`${where}.${extra}`, 'unknown key; known: topic, keywords, answer');
    }
    const topic = typeof raw.topic === 'string' && raw.topic.trim() !== '' ? raw.topic.trim() : undefined;
    if (topic === undefined) problems.add(`${where}.topic`, 'missing or empty');
    const keywords = readWords(raw.keywords, `${where}.keywords`, problems, seen);
    const answer = readTexts(raw.answer, `${where}.answer`, ['clinicName'], problems);
    if (topic !== undefined && answer !== undefined) entries.push({ topic, keywords, answer });
  });
  return entries;
}

/** The question texts must stay recognisable: distinct, and not hidden inside another text. */
function checkMarkers(texts: Partial<Record<TextKey, Texts>>, problems: Problems): void {
  for (const language of LANGUAGES) {
    for (const marker of QUESTION_KEYS) {
      const question = texts[marker]?.[language];
      if (question === undefined) continue;
      for (const key of TEXT_KEYS) {
        if (key === marker) continue;
        if (texts[key]?.[language].includes(question)) {
          problems.add(
            `texts.${key}.${language}`,
            `contains the ${marker} question; the receptionist could no longer tell what it asked`,
          );
        }
      }
    }
  }
}

/**
 * Validates a parsed RECEPTIONIST_FILE. Returns the script, or every problem as one line each
 * (`faq[2].answer.ar: missing or empty`), so a fix needs one restart, not one per mistake.
 */
export function parseReceptionistScript(json: unknown): { script?: ReceptionistScript; problems: string[] } {
  const problems = new Problems();
  if (!isObject(json)) return { problems: ['must be a JSON object with words, days, texts and faq'] };
  for (const extra of unknownKeys(json, ['words', 'days', 'texts', 'faq']))
    problems.add(extra, 'unknown key; known: words, days, texts, faq');

  const words = {} as Record<WordList, Phrase[]>;
  if (!isObject(json.words)) problems.add('words', `must be an object with ${WORD_LISTS.join(', ')}`);
  else for (const extra of unknownKeys(json.words, WORD_LISTS)) problems.add(`words.${extra}`, 'unknown word list');
  for (const list of WORD_LISTS) {
    const raw = isObject(json.words) ? json.words[list] : undefined;
    if (isObject(json.words) && raw === undefined) problems.add(`words.${list}`, 'missing');
    words[list] = raw === undefined ? [] : readWords(raw, `words.${list}`, problems);
  }
  // A filler that negates would let "not 2" through as a choice of 2.
  const negations = new Set(words.negation.map((p) => p.text));
  for (const phrase of words.pick) {
    if (negations.has(phrase.text)) problems.add('words.pick', `"${phrase.text}" is also a negation word`);
  }

  const days = {} as Record<DayKey, Phrase[]>;
  if (!isObject(json.days)) problems.add('days', `must be an object with ${DAY_KEYS.join(', ')}`);
  else for (const extra of unknownKeys(json.days, DAY_KEYS)) problems.add(`days.${extra}`, 'unknown day');
  for (const day of DAY_KEYS) {
    const raw = isObject(json.days) ? json.days[day] : undefined;
    if (isObject(json.days) && raw === undefined) problems.add(`days.${day}`, 'missing');
    days[day] = raw === undefined ? [] : readWords(raw, `days.${day}`, problems);
  }

  const texts: Partial<Record<TextKey, Texts>> = {};
  if (!isObject(json.texts)) problems.add('texts', `must be an object with ${TEXT_KEYS.join(', ')}`);
  else {
    const rawTexts = json.texts;
    for (const extra of unknownKeys(rawTexts, TEXT_KEYS)) problems.add(`texts.${extra}`, 'unknown text');
    for (const key of TEXT_KEYS) {
      if (rawTexts[key] === undefined) {
        problems.add(`texts.${key}`, 'missing');
        continue;
      }
      const read = readTexts(rawTexts[key], `texts.${key}`, ALLOWED_PLACEHOLDERS[key], problems);
      if (read) texts[key] = read;
    }
    for (const language of LANGUAGES) {
      const urgent = texts.urgent?.[language];
      if (urgent !== undefined && !placeholdersOf(urgent).includes('clinicPhone')) {
        problems.add(
          `texts.urgent.${language}`,
          'must mention {{clinicPhone}} (it is only added when CLINIC_PHONE is set)',
        );
      }
    }
    checkMarkers(texts, problems);
  }

  const faq = readFaq(json.faq, problems);
  if (problems.lines.length > 0) return { problems: problems.lines };
  return { script: { words, days, texts: texts as Record<TextKey, Texts>, faq }, problems: [] };
}

/**
 * Reads and validates RECEPTIONIST_FILE (relative to the working directory) at start-up. A broken
 * file stops start-up with one line per problem, each naming the variable and the file: the demo
 * is what a visitor judges the product by, so it must not start half-scripted.
 */
export function loadReceptionistScript(file: string): ReceptionistScript {
  const json = readJsonConfigFile('RECEPTIONIST_FILE', file, (message) => new LlmSetupError(message));
  const { script, problems } = parseReceptionistScript(json);
  if (!script) throw new LlmSetupError(problems.map((p) => `RECEPTIONIST_FILE: ${file}: ${p}`).join('\n'));
  return script;
}
