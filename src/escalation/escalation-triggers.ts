import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { readJsonConfigFile } from '../config/json-config-file';

export type EscalationTrigger = 'keyword' | 'human_request';

export interface TriggerMatch {
  trigger: EscalationTrigger;
  /** the matched keywords or phrase, normalised, for the private note (never logged at info) */
  matched: string[];
  score: number;
}

/** Fixed, relative to the working directory: the defaults ship with the image, ESCALATION_KEYWORDS overrides. */
const ESCALATION_FILE = 'config/escalation.json';

const ARABIC_DIACRITICS = /[\u064B-\u065F\u0670\u06D6-\u06ED]/gu;
const TATWEEL = /\u0640/gu;
// Invisible direction, joiner and emoji marks (variation selectors, keycaps) come with copy-paste
// and emoji; as spaces they would split words.
const INVISIBLE = /[\u061C\u200C-\u200F\u202A-\u202E\u2066-\u2069\uFEFF]|\p{Variation_Selector}|\p{Me}/gu;
// Patients write these letters either way; the plain form is what keywords are written in.
const ARABIC_LETTER_FORMS: Readonly<Record<string, string>> = {
  أ: 'ا',
  إ: 'ا',
  آ: 'ا',
  ٱ: 'ا',
  ى: 'ي',
  ة: 'ه',
  ؤ: 'و',
  ئ: 'ي',
};
const ARABIC_LETTER_FORM = /[أإآٱىةؤئ]/gu;
// Marks stay: they belong to the letters of many scripts (Devanagari vowel signs, …); a mark on a
// symbol or emoji (a keycap, …) would only make a stray word.
const ORPHAN_MARKS = /(?<![\p{L}\p{M}\p{N}])\p{M}+/gu;
const SEPARATOR = /[^\p{L}\p{M}\p{N}]+/gu;

/**
 * The form keywords, phrases and messages are compared in: NFKC, lower case, Arabic without
 * diacritics or tatweel and with its letter variants unified, every run of punctuation, symbols
 * and spaces reduced to one space.
 */
export function normaliseForMatch(text: string): string {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .replace(ARABIC_DIACRITICS, '')
    .replace(TATWEEL, '')
    .replace(INVISIBLE, '')
    .replace(ARABIC_LETTER_FORM, (ch) => ARABIC_LETTER_FORMS[ch])
    .replace(ORPHAN_MARKS, '')
    .replace(SEPARATOR, ' ')
    .trim();
}

/**
 * Arabic writes the article and one-letter conjunctions/prepositions as part of the word ("الشكوى",
 * "والمحامي", "للموظف"), so an Arabic keyword also matches after exactly one of these clitics.
 * Nothing else may precede it and nothing may follow it: whole words stay whole words.
 */
const ARABIC_PREFIXES: ReadonlySet<string> = new Set(
  ['ال', 'و', 'ف', 'ب', 'ل', 'وال', 'فال', 'بال', 'لل', 'كال'].map(normaliseForMatch),
);
const STARTS_ARABIC = /^\p{Script=Arabic}/u;

/** A keyword or phrase ready for matching: its normalised tokens. */
export interface Phrase {
  text: string;
  tokens: string[];
  arabic: boolean;
}

export function compilePhrase(raw: string): Phrase {
  const text = normaliseForMatch(raw);
  return { text, tokens: text.split(' '), arabic: STARTS_ARABIC.test(text) };
}

export const tokensOf = (text: string): string[] => {
  const normalised = normaliseForMatch(text);
  return normalised === '' ? [] : normalised.split(' ');
};

function headMatches(token: string, word: string, arabic: boolean): boolean {
  if (token === word) return true;
  if (!arabic || !token.endsWith(word)) return false;
  return ARABIC_PREFIXES.has(token.slice(0, token.length - word.length));
}

/** Whether `phrase` occurs as consecutive whole tokens (its first one may carry an Arabic clitic). */
export function occursIn(phrase: Phrase, tokens: readonly string[]): boolean {
  const [head, ...rest] = phrase.tokens;
  for (let i = 0; i + phrase.tokens.length <= tokens.length; i++) {
    if (headMatches(tokens[i], head, phrase.arabic) && rest.every((t, j) => tokens[i + 1 + j] === t)) return true;
  }
  return false;
}

/** Rejects a keyword or phrase that normalises to nothing (it could never match) and normalised duplicates. */
function checkWord(word: string, seen: Map<string, string>, what: string): void {
  const normalised = normaliseForMatch(word);
  if (normalised === '') throw new Error(`${what} "${word}" has no letters or digits to match`);
  const earlier = seen.get(normalised);
  if (earlier !== undefined) throw new Error(`${what} "${word}" duplicates "${earlier}" once normalised`);
  seen.set(normalised, word);
}

const WEIGHT = /^\d+(\.\d+)?$/;

/** Parses ESCALATION_KEYWORDS ('a:3,b c:1.5'); throws a one-line Error naming the first bad entry. */
export function parseKeywordList(value: string): Record<string, number> {
  const keywords: Record<string, number> = {};
  const seen = new Map<string, string>();
  value.split(',').forEach((entry, index) => {
    const parts = entry.split(':');
    const word = parts[0].trim();
    const weight = parts[1]?.trim() ?? '';
    if (parts.length !== 2 || word === '' || !WEIGHT.test(weight) || Number(weight) <= 0) {
      throw new Error(`entry ${index + 1} "${entry.trim()}": expected word:weight with a weight > 0`);
    }
    checkWord(word, seen, 'keyword');
    keywords[word] = Number(weight);
  });
  return keywords;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const FILE_KEYS = ['keywords', 'humanRequest'];

function parseFileKeywords(value: unknown): Record<string, number> {
  if (!isObject(value)) throw new Error('keywords: must be an object of word: weight');
  const keywords: Record<string, number> = {};
  const seen = new Map<string, string>();
  for (const [word, weight] of Object.entries(value)) {
    if (word.startsWith('_')) continue;
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) {
      throw new Error(`keywords."${word}": weight must be a number > 0`);
    }
    checkWord(word, seen, 'keyword');
    keywords[word] = weight;
  }
  return keywords;
}

function parseHumanRequest(value: unknown): string[] {
  if (!Array.isArray(value)) throw new Error('humanRequest: must be an array of phrases');
  const seen = new Map<string, string>();
  return value.map((phrase, index) => {
    if (typeof phrase !== 'string') throw new Error(`humanRequest[${index}]: must be a string`);
    checkWord(phrase, seen, 'humanRequest phrase');
    return phrase;
  });
}

/** Validates the parsed config/escalation.json; throws a one-line Error naming the first problem. */
export function parseEscalationFile(json: unknown): { keywords: Record<string, number>; humanRequest: string[] } {
  if (!isObject(json)) throw new Error('must be a JSON object');
  const extra = Object.keys(json).filter((k) => !k.startsWith('_') && !FILE_KEYS.includes(k));
  if (extra.length > 0) throw new Error(`unknown key "${extra[0]}"; known: ${FILE_KEYS.join(', ')}`);
  for (const key of FILE_KEYS) if (json[key] === undefined) throw new Error(`missing key "${key}"`);
  return { keywords: parseFileKeywords(json.keywords), humanRequest: parseHumanRequest(json.humanRequest) };
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined);
const field = (v: unknown, key: string): unknown => (isObject(v) ? v[key] : undefined);

/**
 * The ids of interactive replies in one raw Meta message: button and list reply ids, and the
 * payload of a template quick-reply button. Anything malformed yields nothing.
 */
export function interactiveIdsOf(raw: unknown): string[] {
  const interactive = field(raw, 'interactive');
  const ids = [field(field(interactive, 'button_reply'), 'id'), field(field(interactive, 'list_reply'), 'id')];
  if (field(raw, 'type') === 'button') ids.push(field(field(raw, 'button'), 'payload'));
  return ids.map(str).filter((id): id is string => id !== undefined);
}

// Button ids are written by whoever builds the templates and menus: talk_to_agent, REQ-HUMAN-1, …
const ID_SEPARATORS = /[_\-.:]/g;
const AGENT_ID_WORDS = ['human', 'agent', 'representative', 'operator', 'staff', 'person', 'موظف'].map(compilePhrase);

interface Keyword extends Phrase {
  weight: number;
}

/**
 * Decides, before any LLM call, whether a patient's turn goes to a human (docs/handover.md §1): a message
 * whose distinct keywords weigh at least ESCALATION_THRESHOLD, an explicit request for a person in
 * any message, or an interactive reply whose id asks for one. The defaults come from
 * config/escalation.json, read once at start-up; ESCALATION_KEYWORDS replaces its keywords.
 */
@Injectable()
export class EscalationTriggers {
  private readonly keywords: Keyword[];
  private readonly humanRequest: Phrase[];
  private readonly threshold: number;

  constructor(config: AppConfig) {
    const file = readEscalationFile();
    const listed = config.env.ESCALATION_KEYWORDS;
    const weights = listed === undefined ? file.keywords : parseEnvKeywords(listed);
    this.keywords = Object.entries(weights).map(([word, weight]) => ({ ...compilePhrase(word), weight }));
    this.humanRequest = file.humanRequest.map(compilePhrase);
    this.threshold = config.env.ESCALATION_THRESHOLD;
  }

  /**
   * `texts`: the turn's patient texts, in order; `interactiveIds`: the ids of its interactive replies.
   * Undefined: no escalation.
   */
  check(texts: readonly string[], interactiveIds: readonly string[] = []): TriggerMatch | undefined {
    const messages = texts.map(tokensOf);
    const scored = messages.map((tokens) => this.score(tokens));
    const best = scored.reduce((a, b) => (b.score > a.score ? b : a), { matched: [], score: 0 });
    const requested = [
      ...messages.flatMap((tokens) => this.requestsIn(tokens)),
      ...interactiveIds.flatMap(agentWordsIn),
    ];
    if (requested.length > 0) return { trigger: 'human_request', matched: [...new Set(requested)], score: best.score };
    if (best.score >= this.threshold) return { trigger: 'keyword', ...best };
    return undefined;
  }

  private score(tokens: readonly string[]): { matched: string[]; score: number } {
    const hits = this.keywords.filter((k) => occursIn(k, tokens));
    const sum = hits.reduce((total, k) => total + k.weight, 0);
    // Rounded so that decimal weights add up as written (0.7 + 0.2 + 0.1 reaches a threshold of 1).
    return { matched: hits.map((k) => k.text), score: Math.round(sum * 1e6) / 1e6 };
  }

  private requestsIn(tokens: readonly string[]): string[] {
    return this.humanRequest.filter((p) => occursIn(p, tokens)).map((p) => p.text);
  }
}

function agentWordsIn(id: string): string[] {
  const tokens = tokensOf(id.replace(ID_SEPARATORS, ' '));
  return AGENT_ID_WORDS.filter((w) => occursIn(w, tokens)).map((w) => w.text);
}

function parseEnvKeywords(value: string): Record<string, number> {
  try {
    return parseKeywordList(value);
  } catch (err) {
    throw new Error(`ESCALATION_KEYWORDS: ${(err as Error).message}`);
  }
}

function readEscalationFile(): ReturnType<typeof parseEscalationFile> {
  const json = readJsonConfigFile(ESCALATION_FILE, ESCALATION_FILE, (message) => new Error(message));
  try {
    return parseEscalationFile(json);
  } catch (err) {
    throw new Error(`${ESCALATION_FILE}: ${(err as Error).message}`);
  }
}
