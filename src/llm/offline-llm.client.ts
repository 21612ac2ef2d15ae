import { type AppConfig } from '../config/app-config';
import { occursIn, type Phrase, tokensOf } from '../escalation/escalation-triggers';
import { hasLetters, isolateLtr, type Language, pickLanguage } from './language';
import { LlmClient, LlmError, type LlmMessage, type LlmReply, type LlmRequest } from './llm.client';
import { type LlmMetrics } from './llm.metrics';
import { fillPlaceholders } from './placeholders';
import {
  type FaqEntry,
  QUESTION_KEYS,
  type QuestionKey,
  type ReceptionistScript,
  type TextKey,
} from './receptionist-script';

type Step = 'name' | 'reason' | 'time';
/** What the receptionist's previous reply asked: a booking step, or whether to book at all. */
type Asked = Step | 'offer';

const ASKED_BY: Record<QuestionKey, Asked> = {
  askName: 'name',
  askReason: 'reason',
  askTime: 'time',
  offerBooking: 'offer',
};
const QUESTION_OF: Record<Step, QuestionKey> = { name: 'askName', reason: 'askReason', time: 'askTime' };

// A prefix only before a space: "Imran" is a name, not "I'm ran".
const NAME_PREFIX =
  /^(?:(?:my name is|my name['’]s|i am|i['’]m|im|this is|it['’]s|اسمي|إسمي|انا|أنا)\s+|name\s*:\s*)/iu;
const NAME_WORD_SEPARATOR = /[\s,،.!;؛]+/u;
const MAX_NAME_CHARS = 60;
const MAX_NAME_WORDS = 5;
const MAX_ANSWER_CHARS = 200;

interface Booking {
  name?: string;
  reason?: string;
  time?: string;
  /** The last booking was confirmed; asking for one again starts a new one. */
  booked: boolean;
}

/** What the conversation so far established, read back from the history alone (the port is stateless). */
interface State {
  booking: Booking;
  asked?: Asked;
  /** The receptionist has replied before: it greets only once. */
  spoke: boolean;
}

/** One patient message read against the script's word lists. */
interface Reading {
  text: string;
  faq: FaqEntry[];
  booking: boolean;
  question: boolean;
  /** Nothing but greetings: "Hi", "السلام عليكم", "good morning, how are you?". */
  greeting: boolean;
  /** Nothing but greetings, thanks, yes and no: "ok thanks", "لا شكراً". */
  ack: boolean;
  thanks: boolean;
  yes: boolean;
  no: boolean;
}

type StepOutcome =
  | { kind: 'answer'; value: string }
  | { kind: 'cancel' }
  | { kind: 'reask' }
  | { kind: 'question' }
  | { kind: 'not_a_name' }
  | { kind: 'unclear' };

/** Which tokens some phrase covers, so that "only greetings" can be told from "a greeting, then a request". */
function covered(tokens: readonly string[], phrases: readonly Phrase[]): boolean[] {
  const mask = tokens.map(() => false);
  for (const phrase of phrases) {
    const length = phrase.tokens.length;
    for (let i = 0; i + length <= tokens.length; i++) {
      if (occursIn(phrase, tokens.slice(i, i + length))) mask.fill(true, i, i + length);
    }
  }
  return mask;
}

const onlyOf = (tokens: readonly string[], phrases: readonly Phrase[]): boolean =>
  tokens.length > 0 && covered(tokens, phrases).every(Boolean);

function read(script: ReceptionistScript, text: string): Reading {
  const { words } = script;
  const tokens = tokensOf(text);
  const has = (phrases: readonly Phrase[]): boolean => phrases.some((p) => occursIn(p, tokens));
  const opensWithQuestionWord = text.split('\n').some((line) => {
    const lineTokens = tokensOf(line);
    return words.question.some((p) => occursIn(p, lineTokens.slice(0, p.tokens.length)));
  });
  return {
    text,
    faq: script.faq.filter((entry) => has(entry.keywords)),
    booking: has(words.booking),
    question: /[?؟]/.test(text) || opensWithQuestionWord,
    greeting: onlyOf(tokens, words.greeting),
    ack: onlyOf(tokens, [...words.greeting, ...words.thanks, ...words.yes, ...words.no]),
    thanks: has(words.thanks),
    yes: has(words.yes),
    no: has(words.no),
  };
}

/** Every word that says what a message is about; none of them is part of a name. */
function knownWords(script: ReceptionistScript): Phrase[] {
  return [...Object.values(script.words).flat(), ...script.faq.flatMap((entry) => entry.keywords)];
}

/**
 * The name in an answer to the name question ("Sara", "My name is Sara Ali.", "Hi, I'm John",
 * "السلام عليكم، اسمي أحمد"); undefined for a question, a greeting, a request, digits or a sentence.
 */
export function extractName(text: string, script: ReceptionistScript): string | undefined {
  if (/[?؟]/.test(text)) return undefined;
  const line = (text.split('\n').find((l) => hasLetters(l)) ?? '').trim();
  const words = line.split(NAME_WORD_SEPARATOR).filter((w) => w !== '');
  // A greeting in front ("Hi, I'm John") is not part of the name: skip the words it covers.
  const owners = words.flatMap((word, index) => tokensOf(word).map(() => index));
  const greeted = covered(
    words.flatMap((word) => tokensOf(word)),
    [...script.words.greeting, ...script.words.thanks],
  );
  let start = 0;
  while (start < words.length && owners.every((owner, i) => owner !== start || greeted[i])) start++;
  let name = words.slice(start).join(' ');
  for (let i = 0; i < 2; i++) name = name.replace(NAME_PREFIX, ''); // "انا اسمي أحمد"
  name = name.replace(/[.!،,؛;:]+$/u, '').trim();
  if (!hasLetters(name) || /\p{N}/u.test(name) || name.split(/\s+/).length > MAX_NAME_WORDS) return undefined;
  const tokens = tokensOf(name);
  if (knownWords(script).some((p) => occursIn(p, tokens))) return undefined;
  return name.slice(0, MAX_NAME_CHARS);
}

/** A reason or a time as the patient wrote it, on one line and short enough to repeat back. */
function answerText(text: string): string {
  const oneLine = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join(', ')
    .replace(/[.!،,؛;]+$/u, '');
  return oneLine.length > MAX_ANSWER_CHARS ? `${oneLine.slice(0, MAX_ANSWER_CHARS - 1)}…` : oneLine;
}

/** How a message answers the booking question it follows. Replaying the history uses the same rules. */
function atStep(script: ReceptionistScript, step: Step, reading: Reading): StepOutcome {
  if (reading.ack) return reading.no && !reading.yes ? { kind: 'cancel' } : { kind: 'reask' };
  if (reading.question) return { kind: 'question' };
  switch (step) {
    case 'name': {
      if (reading.booking) return { kind: 'reask' };
      const name = extractName(reading.text, script);
      return name === undefined ? { kind: 'not_a_name' } : { kind: 'answer', value: name };
    }
    case 'reason':
      return hasLetters(reading.text) ? { kind: 'answer', value: answerText(reading.text) } : { kind: 'unclear' };
    case 'time':
      return /[\p{L}\p{N}]/u.test(reading.text)
        ? { kind: 'answer', value: answerText(reading.text) }
        : { kind: 'unclear' };
  }
}

/** The question the reply ends with, in either language; when several appear, the last one. */
function askedIn(script: ReceptionistScript, content: string): Asked | undefined {
  let asked: Asked | undefined;
  let at = -1;
  for (const key of QUESTION_KEYS) {
    for (const question of Object.values(script.texts[key])) {
      const index = content.lastIndexOf(question);
      if (index > at) {
        at = index;
        asked = ASKED_BY[key];
      }
    }
  }
  return asked;
}

const isStep = (asked: Asked | undefined): asked is Step => asked !== undefined && asked !== 'offer';

function replay(script: ReceptionistScript, history: readonly LlmMessage[]): State {
  const state: State = { booking: { booked: false }, spoke: false };
  for (const m of history) {
    // A tool round's call has no text: it asks the patient nothing.
    if (m.role === 'assistant' && m.content.trim() !== '') {
      state.spoke = true;
      state.asked = askedIn(script, m.content);
      if (isStep(state.asked) && state.booking.booked) state.booking = { name: state.booking.name, booked: false };
    } else if (m.role === 'user') {
      if (isStep(state.asked)) {
        const outcome = atStep(script, state.asked, read(script, m.content));
        if (outcome.kind === 'answer') take(state.booking, state.asked, outcome.value);
      }
      state.asked = undefined;
    }
  }
  return state;
}

function take(booking: Booking, step: Step, value: string): void {
  booking[step] = value;
  if (booking.name && booking.reason && booking.time) booking.booked = true;
}

const nextStep = (booking: Booking): Step => (!booking.name ? 'name' : !booking.reason ? 'reason' : 'time');

/**
 * LLM_PROVIDER=offline: a scripted receptionist for demos without a GPU, driven by
 * RECEPTIONIST_FILE. No network, deterministic (same messages, same reply), and stateless like a
 * model: what the patient already gave is read back from the request's history, so the worker's
 * holding message, retries and hand-over triggers behave exactly as with a real LLM.
 *
 * It answers the FAQ (matched on whole words, escalation-trigger normalisation), and books: the
 * name, the reason, the preferred time, then a confirmation that the clinic will confirm the slot
 * (with CLINIC_PHONE when set). A greeting, a question or a request is never taken for a name, and
 * what it cannot place gets a plain "did not understand" with what it can do. It replies in the
 * patient's language (pickLanguage); a name typed in the other script keeps the chat's language.
 */
export class OfflineLlmClient extends LlmClient {
  constructor(
    private readonly config: AppConfig,
    private readonly script: ReceptionistScript,
    private readonly metrics?: LlmMetrics,
  ) {
    super();
  }

  complete(request: LlmRequest): Promise<LlmReply> {
    const turnIndex = request.messages.map((m) => m.role).lastIndexOf('user');
    if (turnIndex < 0) {
      this.metrics?.observeFailure('error');
      return Promise.reject(new LlmError('error', 'offline responder needs a user message'));
    }
    const content = this.answer(request.messages.slice(0, turnIndex), request.messages[turnIndex].content);
    this.metrics?.observeSuccess(0);
    return Promise.resolve({ content, finishReason: 'stop', latencyMs: 0 });
  }

  private answer(history: readonly LlmMessage[], turn: string): string {
    const state = replay(this.script, history);
    const reading = read(this.script, turn);
    const asked = state.asked;
    const outcome = isStep(asked) ? atStep(this.script, asked, reading) : undefined;

    const earlier = history.filter((m) => m.role === 'user').map((m) => m.content);
    // A name says little about the language: "Ahmed Khan" in an Arabic chat keeps it Arabic.
    const language =
      asked === 'name' && outcome?.kind === 'answer' && earlier.length > 0
        ? pickLanguage(earlier, pickLanguage([turn]))
        : pickLanguage([...earlier, turn]);

    const parts =
      isStep(asked) && outcome ? this.stepReply(state, asked, outcome, reading) : this.reply(state, reading);
    if (!state.spoke) parts.unshift('greeting');
    return parts.map((part) => this.text(part, language, state.booking)).join(' ');
  }

  /** The patient was answering a booking question. */
  private stepReply(state: State, step: Step, outcome: StepOutcome, reading: Reading): Part[] {
    const ask = QUESTION_OF[step];
    switch (outcome.kind) {
      case 'cancel':
        return ['declined', 'menu'];
      case 'reask':
        return [ask];
      case 'question':
        if (reading.faq.length > 0) return [...reading.faq, ask];
        return reading.booking ? [ask] : ['notUnderstood', ask];
      case 'not_a_name':
        return ['notAName', ask];
      case 'unclear':
        return ['notUnderstood', ask];
      case 'answer': {
        take(state.booking, step, outcome.value);
        if (state.booking.booked) return this.config.env.CLINIC_PHONE ? ['confirm', 'urgent'] : ['confirm'];
        const thanks: Part = step === 'name' ? 'thankName' : 'gotReason';
        return [thanks, QUESTION_OF[nextStep(state.booking)]];
      }
    }
  }

  /** Anything else: a greeting, a question, a request to book, thanks. */
  private reply(state: State, reading: Reading): Part[] {
    const { booking } = state;
    if (state.asked === 'offer' && reading.ack && reading.no) return ['declined', 'menu'];
    if (reading.booking || (state.asked === 'offer' && reading.ack && reading.yes)) {
      if (booking.booked) state.booking = { name: booking.name, booked: false };
      return [...reading.faq, QUESTION_OF[nextStep(state.booking)]];
    }
    if (reading.faq.length > 0) return booking.booked ? reading.faq : [...reading.faq, 'offerBooking'];
    if (reading.greeting) return ['menu'];
    if (reading.ack) return [...(reading.thanks ? ['welcome' as const] : []), booking.booked ? 'booked' : 'menu'];
    return ['notUnderstood', 'menu'];
  }

  private text(part: Part, language: Language, booking: Booking): string {
    const template = typeof part === 'string' ? this.script.texts[part][language] : part.answer[language];
    const phone = this.config.env.CLINIC_PHONE;
    return fillPlaceholders(template, {
      clinicName: this.config.env.CLINIC_NAME,
      clinicPhone: phone && language === 'ar' ? isolateLtr(phone) : phone,
      name: booking.name,
      reason: booking.reason,
      time: booking.time,
    });
  }
}

/** A piece of a reply: a text of the script, or an FAQ answer. */
type Part = TextKey | FaqEntry;
