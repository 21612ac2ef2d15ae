import { type AppConfig } from '../config/app-config';
import { occursIn, type Phrase, tokensOf } from '../escalation/escalation-triggers';
import { type MetricsService } from '../metrics/metrics.service';
import { CLINIC_UTC_OFFSET_MS } from '../time/clinic-time';
import { hasArabicLetters, hasLetters, isolateLtr, type Language, pickLanguage } from './language';
import { LlmClient, LlmError, type LlmMessage, type LlmReply, type LlmRequest, type LlmTool } from './llm.client';
import { fillPlaceholders } from './placeholders';
import {
  DAY_KEYS,
  type DayKey,
  type FaqEntry,
  QUESTION_KEYS,
  type QuestionKey,
  type ReceptionistScript,
  type TextKey,
} from './receptionist-script';

/** `time` is a preferred time in the patient's words; `slot` one of the free times the clinic listed. */
type Step = 'name' | 'reason' | 'time' | 'slot';
/** What the receptionist's previous reply asked: a booking step, or whether to book at all. */
type Asked = Step | 'offer';

const ASKED_BY: Record<QuestionKey, Asked> = {
  askName: 'name',
  askReason: 'reason',
  askTime: 'time',
  pickSlot: 'slot',
  offerBooking: 'offer',
};
const QUESTION_OF: Record<Step, QuestionKey> = {
  name: 'askName',
  reason: 'askReason',
  time: 'askTime',
  slot: 'pickSlot',
};

/** The clinic actions the receptionist books through when they are offered (the demo clinic's). */
const FIND_SLOTS = 'find_free_slots';
const BOOK = 'book_appointment';
/** Free times listed in one reply: enough to choose from, short enough to read on a phone. */
const LISTED_SLOTS = 4;

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
  /** The preferred time as written, or the id of the listed slot the patient picked. */
  time?: string;
  /** The last booking was confirmed; asking for one again starts a new one. */
  booked: boolean;
  /** The clinic booked it: the values its bookedSlot reply gave (date, time, doctor, bookingId). */
  slot?: Record<string, string>;
}

/** What the conversation so far established, read back from the history alone (the port is stateless). */
interface State {
  booking: Booking;
  asked?: Asked;
  /** The reply that asked it: a slot is picked from the list in it. */
  askedIn?: string;
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

/** The day (and part of it) a patient asks for instead of picking from the list. */
interface Wanted {
  /** YYYY-MM-DD in the clinic's calendar; undefined: the day listed already. */
  date?: string;
  part?: 'morning' | 'afternoon';
}

type StepOutcome =
  | { kind: 'answer'; value: string }
  | { kind: 'day'; wanted: Wanted }
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

/** Every word that says what a message is about; none of them is part of a name (fillers say nothing). */
function knownWords(script: ReceptionistScript): Phrase[] {
  const { pick: _fillers, ...lists } = script.words;
  return [...Object.values(lists).flat(), ...script.faq.flatMap((entry) => entry.keywords)];
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
function atStep(script: ReceptionistScript, step: Step, reading: Reading, askedIn = ''): StepOutcome {
  if (step === 'slot') {
    // Only an explicit choice books: "not 2, something later" or "alert(1)" is no choice of a number.
    const slot = pickedSlot(script, reading.text, listedSlots(askedIn));
    if (slot) return { kind: 'answer', value: slot.id };
    const wanted = wantedDay(script, reading.text);
    if (wanted) return { kind: 'day', wanted };
    if (reading.booking && !reading.question) return { kind: 'reask' };
  }
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
    case 'slot':
      return { kind: 'unclear' };
  }
}

/** A free time as the clinic lists it (the demo clinic's `find_free_slots` answer). */
interface Slot {
  id: string;
  date: string;
  time: string;
  doctor?: string;
}

const SLOT_LINE = /^(\d+)\) (\d{2}:\d{2})(?: — (.+))?$/gmu;
const ISO_DATE = /\b(\d{4}-\d{2}-\d{2})\b/u;
/** The marks an Arabic reply wraps its left-to-right parts in (isolateLtr, a leading RLM). */
const DIRECTION_MARKS = /[\u200E\u200F\u2066-\u2069]/gu;
const RLM = '\u200F';

/** The numbered list of a reply (`1) 09:00 — Dr. Sara Haddad`), read back as slots of the date it names. */
function listedSlots(reply: string): Slot[] {
  const plain = reply.replace(DIRECTION_MARKS, '');
  const date = ISO_DATE.exec(plain)?.[1];
  if (!date) return [];
  return [...plain.matchAll(SLOT_LINE)].map(([, , time, doctor]) => ({ id: `${date}T${time}`, date, time, doctor }));
}

const latinDigits = (text: string): string =>
  text.replace(/[\u0660-\u0669\u06F0-\u06F9]/gu, (d) => String((d.codePointAt(0)! - 0x0660) % 0x90));

const CLOCK = /(?<![\d:.])(\d{1,2})[:.٫](\d{2})(?:\s*([ap])\.?m\b\.?)?(?![\d:.]*\d)/iu;
const LIST_NUMBER = /^(\d{1,2})(?:st|nd|rd|th)?$/u;

/**
 * A choice from the list, and only that: one number of the list ("2", "٢", "option 2 please", "the
 * 2nd one", "رقم ٢") or one of its times ("10:30", "١٠:٣٠", "at 2:30 pm"), with nothing else but
 * words of words.pick. "not 2, something later", "2 or 3" and "<script>alert(1)</script>" are
 * not choices: booking a slot the patient did not choose is worse than asking again.
 */
function pickedSlot(script: ReceptionistScript, text: string, slots: readonly Slot[]): Slot | undefined {
  if (slots.length === 0) return undefined;
  const latin = latinDigits(text);
  const clock = CLOCK.exec(latin);
  let slot: Slot | undefined;
  let rest: string[];
  if (clock) {
    let hour = Number(clock[1]);
    const half = clock[3]?.toLowerCase();
    if (half === 'p' && hour < 12) hour += 12;
    if (half === 'a' && hour === 12) hour = 0;
    slot = slots.find((s) => s.time === `${String(hour).padStart(2, '0')}:${clock[2]}`);
    rest = tokensOf(latin.slice(0, clock.index) + ' ' + latin.slice(clock.index + clock[0].length));
  } else {
    const tokens = tokensOf(latin);
    const numbers = tokens.filter((t) => LIST_NUMBER.test(t));
    if (numbers.length !== 1) return undefined;
    slot = slots[Number(LIST_NUMBER.exec(numbers[0])![1]) - 1];
    rest = tokens.filter((t) => t !== numbers[0]);
  }
  if (!slot || /\d/u.test(rest.join(' '))) return undefined;
  return rest.length === 0 || onlyOf(rest, script.words.pick) ? slot : undefined;
}

/** Sunday first, as getUTCDay counts: DAY_KEYS after today and tomorrow. */
const WEEKDAYS: readonly DayKey[] = DAY_KEYS.slice(2);
const DAY_MS = 86_400_000;
/** Where a negation word reaches: "not Thursday", "not on Thursday", "مش يوم الخميس". */
const NEGATION_REACH = 2;

/** The clinic's calendar day `ahead` days from now, as the demo clinic's `date` parameter takes it. */
function clinicDay(ahead: number, now = Date.now()): string {
  return new Date(now + CLINIC_UTC_OFFSET_MS + ahead * DAY_MS).toISOString().slice(0, 10);
}

/**
 * The day and part of the day a patient asks for while choosing ("Can I come on Thursday
 * afternoon instead?", "بكرة العصر", "not Thursday, Friday"): the first one named that no negation
 * word strikes out. A weekday is the next one after today. Undefined when the message names none.
 */
function wantedDay(script: ReceptionistScript, text: string, now = Date.now()): Wanted | undefined {
  const { negation } = script.words;
  let day: { key: DayKey; at: number } | undefined;
  let part: Wanted['part'];
  let offset = 0;
  // A clause at a time: in "no, tomorrow" the "no" answers the list, it does not strike out tomorrow.
  for (const clause of text.split(/[,،.;؛!?؟\n]+/u)) {
    const tokens = tokensOf(clause);
    const struck = (at: number): boolean =>
      negation.some((p) => {
        for (let end = at - 1; end >= Math.max(0, at - NEGATION_REACH); end--) {
          const start = end - p.tokens.length + 1;
          if (start >= 0 && occursIn(p, tokens.slice(start, end + 1))) return true;
        }
        return false;
      });
    const firstAt = (phrases: readonly Phrase[]): number | undefined => {
      for (let i = 0; i < tokens.length; i++) {
        if (phrases.some((p) => occursIn(p, tokens.slice(i, i + p.tokens.length))) && !struck(i)) return i;
      }
      return undefined;
    };
    for (const key of DAY_KEYS) {
      const at = firstAt(script.days[key]);
      if (at !== undefined && (!day || offset + at < day.at)) day = { key, at: offset + at };
    }
    if (!part) {
      const morning = firstAt(script.words.morning);
      const afternoon = firstAt(script.words.afternoon);
      if (morning !== undefined || afternoon !== undefined) {
        part = afternoon === undefined || (morning !== undefined && morning < afternoon) ? 'morning' : 'afternoon';
      }
    }
    offset += tokens.length;
  }
  if (!day && !part) return undefined;
  if (!day) return { part };
  const today = new Date(now + CLINIC_UTC_OFFSET_MS).getUTCDay();
  const weekday = WEEKDAYS.indexOf(day.key);
  const ahead = day.key === 'today' ? 0 : day.key === 'tomorrow' ? 1 : (weekday - today + 7) % 7 || 7;
  return { date: clinicDay(ahead, now), part };
}

/** What a reminder repeats of a booking; the name and the clinic's name are the chat's own. */
const BOOKED_VALUES = ['date', 'time', 'doctor', 'bookingId'] as const;

/**
 * The values of a bookedSlot reply ("Your appointment is booked, Sara: 2026-12-01 at 09:30 with …"),
 * read back with the template of either language: the history keeps the texts, not the clinic's
 * answers. Undefined when the reply holds none.
 */
function bookedSlotIn(script: ReceptionistScript, content: string): Record<string, string> | undefined {
  const plain = content.replace(DIRECTION_MARKS, '');
  for (const template of Object.values(script.texts.bookedSlot)) {
    const names: string[] = [];
    const pieces = template.split(/\{\{\s*([A-Za-z][A-Za-z0-9_]*)\s*\}\}/u);
    const source = pieces
      .map((piece, i) => {
        if (i % 2 === 0) return piece.replace(/[.*+?^${}()|[\]\\]/gu, '\\$&');
        names.push(piece);
        // A value that ends the template runs to the end of its word, not one character.
        return i === pieces.length - 2 && pieces[i + 1] === '' ? '(\\S+)' : '(.+?)';
      })
      .join('');
    const match = new RegExp(source, 'u').exec(plain);
    if (match) {
      const values = names.map((name, i) => [name, match[i + 1]] as const);
      return Object.fromEntries(values.filter(([name]) => (BOOKED_VALUES as readonly string[]).includes(name)));
    }
  }
  return undefined;
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
      state.askedIn = m.content;
      if (isStep(state.asked) && state.booking.booked) {
        // Asked for a time again: the slot was taken, the name and reason still hold.
        const retime = state.asked === 'slot' || state.asked === 'time';
        state.booking = { name: state.booking.name, reason: retime ? state.booking.reason : undefined, booked: false };
      }
      const slot = bookedSlotIn(script, m.content);
      if (slot) state.booking = { ...state.booking, booked: true, slot };
    } else if (m.role === 'user') {
      if (isStep(state.asked)) {
        const outcome = atStep(script, state.asked, read(script, m.content), state.askedIn);
        if (outcome.kind === 'answer') take(state.booking, state.asked, outcome.value);
      }
      state.asked = undefined;
    }
  }
  return state;
}

function take(booking: Booking, step: Step, value: string): void {
  booking[step === 'slot' ? 'time' : step] = value;
  if (booking.name && booking.reason && booking.time) booking.booked = true;
}

const nextStep = (booking: Booking, slots: boolean): Step =>
  !booking.name ? 'name' : !booking.reason ? 'reason' : slots ? 'slot' : 'time';

/** One clinic action this turn already ran, with the clinic's answer as the tool message carries it. */
interface DoneCall {
  name: string;
  args: Record<string, unknown>;
  ok: boolean;
  status?: number;
  result: Record<string, unknown>;
}

/** The turn's tool rounds (after its user message), each call paired with its result. */
function doneCalls(after: readonly LlmMessage[]): DoneCall[] {
  const results = new Map(after.filter((m) => m.role === 'tool').map((m) => [m.toolCallId, m.content]));
  return after.flatMap((m) =>
    (m.toolCalls ?? []).map((call) => {
      const answer = objectOf(parseJson(results.get(call.id) ?? ''));
      return {
        name: call.name,
        args: objectOf(parseJson(call.arguments)),
        ok: answer.ok === true,
        status: typeof answer.status === 'number' ? answer.status : undefined,
        result: objectOf(answer.result),
      };
    }),
  );
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const objectOf = (v: unknown): Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

const stringOf = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

function slotsOf(result: Record<string, unknown>): Slot[] {
  const slots = Array.isArray(result.slots) ? result.slots : [];
  return slots.flatMap((raw) => {
    const slot = objectOf(raw);
    const [id, date, time] = [stringOf(slot.id), stringOf(slot.date), stringOf(slot.time)];
    return id && date && time && /^\d{2}:\d{2}$/.test(time) ? [{ id, date, time, doctor: stringOf(slot.doctor) }] : [];
  });
}

const tomorrow = (): string => clinicDay(1);

/** A clinic action the receptionist needs the answer of before it can reply. */
type Call = { call: { name: string; args: Record<string, unknown> } };
/** What the receptionist says next, or the action to call first. */
type Answer = { text: string } | Call;

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
 *
 * When the request offers the clinic actions `find_free_slots` and `book_appointment` (the
 * sandbox's demo clinic does, docs/actions.md), it books for real, through tool calls as a model
 * would: it lists tomorrow's free times instead of asking for a preferred one, and books the one
 * the patient picks, reading the clinic's answers from the turn's tool messages. Only a plain
 * choice books (pickedSlot); a day named instead lists that day's free times (wantedDay); anything
 * else lists the same times again. Thanks after a booked slot repeat its time and booking number.
 */
export class OfflineLlmClient extends LlmClient {
  constructor(
    private readonly config: AppConfig,
    private readonly script: ReceptionistScript,
    private readonly metrics?: MetricsService,
  ) {
    super();
  }

  complete(request: LlmRequest): Promise<LlmReply> {
    const turnIndex = request.messages.map((m) => m.role).lastIndexOf('user');
    if (turnIndex < 0) {
      this.metrics?.llmFailures.inc({ kind: 'error' });
      return Promise.reject(new LlmError('error', 'offline responder needs a user message'));
    }
    const answer = this.answer(
      request.messages.slice(0, turnIndex),
      request.messages[turnIndex].content,
      booksThrough(request.tools) ? doneCalls(request.messages.slice(turnIndex + 1)) : undefined,
    );
    this.metrics?.llmSeconds.observe(0);
    if ('text' in answer) return Promise.resolve({ content: answer.text, finishReason: 'stop', latencyMs: 0 });
    const round = request.messages.slice(turnIndex + 1).filter((m) => m.toolCalls).length;
    const call = { id: `offline_${round}`, name: answer.call.name, arguments: JSON.stringify(answer.call.args) };
    return Promise.resolve({ content: '', toolCalls: [call], finishReason: 'tool_calls', latencyMs: 0 });
  }

  /** `done`: the clinic actions this turn ran so far, when it may call them; undefined when not. */
  private answer(history: readonly LlmMessage[], turn: string, done?: DoneCall[]): Answer {
    const state = replay(this.script, history);
    const reading = read(this.script, turn);
    const asked = state.asked;
    const outcome = isStep(asked) ? atStep(this.script, asked, reading, state.askedIn) : undefined;

    const earlier = history.filter((m) => m.role === 'user').map((m) => m.content);
    // A name says little about the language: "Ahmed Khan" in an Arabic chat keeps it Arabic.
    const language =
      asked === 'name' && outcome?.kind === 'answer' && earlier.length > 0
        ? pickLanguage(earlier, pickLanguage([turn]))
        : pickLanguage([...earlier, turn]);

    const slots = done !== undefined;
    let parts =
      isStep(asked) && outcome
        ? this.stepReply(state, asked, outcome, reading, slots)
        : this.reply(state, reading, slots);
    // A reminder of a booked slot repeats what the clinic answered then; this turn's answers win.
    const values: Record<string, string | undefined> = { ...state.booking.slot };
    if (done) {
      const booked = this.booking(state, asked, done, parts, values);
      if ('call' in booked) return booked;
      parts = booked.parts;
      const wanted = outcome?.kind === 'day' ? outcome.wanted : undefined;
      const listed = this.slotList(state, asked, done, parts, values, language, wanted);
      if ('call' in listed) return listed;
      parts = listed.parts;
    }
    if (!state.spoke) parts.unshift('greeting');
    // Sentences run on one line; a list of free times stands on lines of its own.
    const text = parts
      .map((part) => this.text(part, language, state.booking, values))
      .reduce(
        (all, piece) => (all === '' || all.endsWith('\n') || piece.startsWith('\n') ? all + piece : `${all} ${piece}`),
        '',
      );
    return { text };
  }

  /** The patient was answering a booking question. */
  private stepReply(state: State, step: Step, outcome: StepOutcome, reading: Reading, slots: boolean): Part[] {
    const ask = QUESTION_OF[step];
    switch (outcome.kind) {
      case 'cancel':
        return ['declined', 'menu'];
      case 'reask':
      case 'day':
        return [ask];
      case 'question':
        if (reading.faq.length > 0) return [...reading.faq, ask];
        return reading.booking ? [ask] : [step === 'slot' ? 'notAPick' : 'notUnderstood', ask];
      case 'not_a_name':
        return ['notAName', ask];
      case 'unclear':
        return [step === 'slot' ? 'notAPick' : 'notUnderstood', ask];
      case 'answer': {
        take(state.booking, step, outcome.value);
        if (state.booking.booked) return this.config.env.CLINIC_PHONE ? ['confirm', 'urgent'] : ['confirm'];
        const thanks: Part = step === 'name' ? 'thankName' : 'gotReason';
        return [thanks, QUESTION_OF[nextStep(state.booking, slots)]];
      }
    }
  }

  /** Anything else: a greeting, a question, a request to book, thanks. */
  private reply(state: State, reading: Reading, slots: boolean): Part[] {
    const { booking } = state;
    if (state.asked === 'offer' && reading.ack && reading.no) return ['declined', 'menu'];
    if (reading.booking || (state.asked === 'offer' && reading.ack && reading.yes)) {
      if (booking.booked) state.booking = { name: booking.name, booked: false };
      return [...reading.faq, QUESTION_OF[nextStep(state.booking, slots)]];
    }
    if (reading.faq.length > 0) return booking.booked ? reading.faq : [...reading.faq, 'offerBooking'];
    if (reading.greeting) return ['menu'];
    if (reading.ack) {
      const status: Part = !booking.booked ? 'menu' : booking.slot ? 'bookedReminder' : 'booked';
      return [...(reading.thanks ? ['welcome' as const] : []), status];
    }
    return ['notUnderstood', 'menu'];
  }

  /**
   * A slot was just picked: book it (one call), then say how it went. A taken slot lists the free
   * times again; any other failure leaves the booking to the clinic's team, as without actions.
   */
  private booking(
    state: State,
    asked: Asked | undefined,
    done: DoneCall[],
    parts: Part[],
    values: Record<string, string | undefined>,
  ): Call | { parts: Part[] } {
    const { booking } = state;
    if (asked !== 'slot' || !booking.booked || !parts.includes('confirm')) return { parts };
    const call = done.find((c) => c.name === BOOK);
    if (!call) {
      return {
        call: { name: BOOK, args: { slotId: booking.time, patientName: booking.name, reason: booking.reason } },
      };
    }
    const urgent: Part[] = this.config.env.CLINIC_PHONE ? ['urgent'] : [];
    if (call.ok) {
      const slot = listedSlots(state.askedIn ?? '').find((s) => s.id === booking.time);
      values.date = stringOf(call.result.date) ?? slot?.date;
      values.time = stringOf(call.result.time) ?? slot?.time;
      values.doctor = stringOf(call.result.doctor) ?? slot?.doctor;
      values.bookingId = stringOf(call.result.bookingId);
      return { parts: ['bookedSlot', ...urgent] };
    }
    if (call.status === 409) {
      booking.booked = false;
      return { parts: ['slotTaken', 'pickSlot'] };
    }
    return { parts: ['bookingPending', ...urgent] };
  }

  /**
   * The reply asks for a slot: fetch the free times (one call), then list them before the question.
   * `wanted`: the day (and part of it) the patient asked for instead of picking.
   */
  private slotList(
    state: State,
    asked: Asked | undefined,
    done: DoneCall[],
    parts: Part[],
    values: Record<string, string | undefined>,
    language: Language,
    wanted?: Wanted,
  ): Call | { parts: Part[] } {
    const at = parts.indexOf('pickSlot');
    if (at < 0) return { parts };
    const finds = done.filter((c) => c.name === FIND_SLOTS);
    const last = finds.at(-1);
    if (!last) {
      // The day asked for; else the day listed before, when asking again; else tomorrow.
      const listed = asked === 'slot' ? listedSlots(state.askedIn ?? '')[0]?.date : undefined;
      return { call: { name: FIND_SLOTS, args: { date: wanted?.date ?? listed ?? tomorrow() } } };
    }
    const all = last.ok ? slotsOf(last.result) : [];
    // A closed or full day: the next day the clinic works, once.
    const next = last.ok && all.length === 0 ? stringOf(last.result.nextOpenDate) : undefined;
    if (next && finds.length < 2 && !finds.some((c) => c.args.date === next)) {
      return { call: { name: FIND_SLOTS, args: { date: next } } };
    }
    const date = last.ok ? stringOf(last.args.date) : undefined;
    const inPart = all.filter((s) => !wanted?.part || (wanted.part === 'morning') === s.time < NOON);
    const free = (inPart.length > 0 ? inPart : all).slice(0, LISTED_SLOTS);
    values.date = dateLabel(date ?? tomorrow(), language);
    if (free.length === 0) {
      // Nothing to pick from: ask for a preferred time, and the team confirms, as without actions.
      const fallback: Part[] = date ? ['noSlots', 'askTime'] : ['askTime'];
      return { parts: [...parts.slice(0, at), ...fallback, ...parts.slice(at + 1)] };
    }
    const list: Part = { list: free.map((s, i) => listLine(i + 1, s, language)) };
    return { parts: [...parts.slice(0, at), 'slotsOn', list, 'pickSlot', ...parts.slice(at + 1)] };
  }

  private text(part: Part, language: Language, booking: Booking, values: Record<string, string | undefined>): string {
    if (typeof part === 'object' && 'list' in part) return `\n${part.list.join('\n')}\n`;
    const template = typeof part === 'string' ? this.script.texts[part][language] : part.answer[language];
    const filled: Record<string, string | undefined> = {
      clinicName: this.config.env.CLINIC_NAME,
      clinicPhone: this.config.env.CLINIC_PHONE,
      name: booking.name,
      reason: booking.reason,
      time: booking.time,
      ...values,
    };
    if (language === 'ar') {
      for (const key of LTR_VALUES) filled[key] = ltrInArabic(filled[key]);
    }
    return fillPlaceholders(template, filled);
  }
}

/** Both demo actions are offered: the receptionist books through the clinic's system. */
function booksThrough(tools: readonly LlmTool[] | undefined): boolean {
  const names = new Set((tools ?? []).map((t) => t.function.name));
  return names.has(FIND_SLOTS) && names.has(BOOK);
}

const NOON = '12:00';
/** Values that read left to right: a phone number, a time, a booking number, a doctor's Latin name. */
const LTR_VALUES = ['clinicPhone', 'time', 'date', 'doctor', 'bookingId'] as const;

/** A value without Arabic letters, kept whole inside Arabic text (isolateLtr). */
const ltrInArabic = (value: string | undefined): string | undefined =>
  value && !hasArabicLetters(value) ? isolateLtr(value) : value;

/**
 * `1) 09:00 — Dr. Sara Haddad`. In Arabic the line starts with a right-to-left mark and isolates
 * its number, time and name: otherwise the first line lays out as "09:00 (1 — Dr. …" and the
 * others left to right. listedSlots reads it back either way.
 */
function listLine(number: number, slot: Slot, language: Language): string {
  const line = [`${number})`, slot.time, ...(slot.doctor ? ['—', slot.doctor] : [])];
  return language === 'ar' ? RLM + line.map((p) => (p === '—' ? p : isolateLtr(p))).join(' ') : line.join(' ');
}

/** "Tuesday 2026-12-01": the weekday helps the patient, the ISO date lets the next turn read the list back. */
function dateLabel(date: string, language: Language): string {
  const day = new Date(`${date}T12:00:00Z`);
  if (Number.isNaN(day.getTime())) return date;
  const weekday = new Intl.DateTimeFormat(language === 'ar' ? 'ar-AE' : 'en-GB', { weekday: 'long', timeZone: 'UTC' });
  // Isolated in Arabic: "2026-12-01" would otherwise read "01-12-2026", unlike the booking's date.
  return `${weekday.format(day)} ${language === 'ar' ? isolateLtr(date) : date}`;
}

/** A piece of a reply: a text of the script, an FAQ answer, or the numbered list of free times. */
type Part = TextKey | FaqEntry | { list: string[] };
