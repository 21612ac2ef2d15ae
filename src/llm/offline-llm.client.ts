import { type AppConfig } from '../config/app-config';
import { occursIn, type Phrase, tokensOf } from '../escalation/escalation-triggers';
import { type MetricsService } from '../metrics/metrics.service';
import { CLINIC_UTC_OFFSET_MS } from '../time/clinic-time';
import { hasLetters, isolateLtr, type Language, pickLanguage } from './language';
import { LlmClient, LlmError, type LlmMessage, type LlmReply, type LlmRequest, type LlmTool } from './llm.client';
import { fillPlaceholders } from './placeholders';
import {
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
function atStep(script: ReceptionistScript, step: Step, reading: Reading, askedIn = ''): StepOutcome {
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
    case 'slot': {
      const slot = pickedSlot(reading.text, listedSlots(askedIn));
      return slot ? { kind: 'answer', value: slot.id } : { kind: 'unclear' };
    }
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

/** The numbered list of a reply (`1) 09:00 — Dr. Sara Haddad`), read back as slots of the date it names. */
function listedSlots(reply: string): Slot[] {
  const date = ISO_DATE.exec(reply)?.[1];
  if (!date) return [];
  return [...reply.matchAll(SLOT_LINE)].map(([, , time, doctor]) => ({ id: `${date}T${time}`, date, time, doctor }));
}

/** "2", "٢", "the 2nd one", "10:30", "١٠:٣٠": a number of the list or one of its times. */
function pickedSlot(text: string, slots: readonly Slot[]): Slot | undefined {
  const latin = text.replace(/[\u0660-\u0669\u06F0-\u06F9]/gu, (d) => String((d.codePointAt(0)! - 0x0660) % 0x90));
  const clock = /(\d{1,2})[:.](\d{2})/u.exec(latin);
  if (clock) return slots.find((s) => s.time === `${clock[1].padStart(2, '0')}:${clock[2]}`);
  const numbers = latin.match(/\d+/gu) ?? [];
  return numbers.length === 1 ? slots[Number(numbers[0]) - 1] : undefined;
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

/** Tomorrow in the clinic's calendar, as the demo clinic's `date` parameter takes it. */
function tomorrow(now = Date.now()): string {
  return new Date(now + CLINIC_UTC_OFFSET_MS + 86_400_000).toISOString().slice(0, 10);
}

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
 * the patient picks, reading the clinic's answers from the turn's tool messages.
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
    const values: Record<string, string | undefined> = {};
    if (done) {
      const booked = this.booking(state, asked, done, parts, values);
      if ('call' in booked) return booked;
      parts = booked.parts;
      const listed = this.slotList(state, asked, done, parts, values, language);
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
    if (reading.ack) return [...(reading.thanks ? ['welcome' as const] : []), booking.booked ? 'booked' : 'menu'];
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

  /** The reply asks for a slot: fetch the free times (one call), then list them before the question. */
  private slotList(
    state: State,
    asked: Asked | undefined,
    done: DoneCall[],
    parts: Part[],
    values: Record<string, string | undefined>,
    language: Language,
  ): Call | { parts: Part[] } {
    const at = parts.indexOf('pickSlot');
    if (at < 0) return { parts };
    const finds = done.filter((c) => c.name === FIND_SLOTS);
    const last = finds.at(-1);
    // The day listed before, when asking again; tomorrow otherwise; the next open day after a closed one.
    const date =
      last && !last.ok
        ? undefined
        : last && last.result.open === false
          ? stringOf(last.result.nextOpenDate)
          : last
            ? stringOf(last.args.date)
            : ((asked === 'slot' ? listedSlots(state.askedIn ?? '')[0]?.date : undefined) ?? tomorrow());
    const fetched = last && last.ok && last.result.open !== false;
    if (!fetched && date && finds.length < 2 && !done.some((c) => c.name === FIND_SLOTS && c.args.date === date)) {
      return { call: { name: FIND_SLOTS, args: { date } } };
    }
    const free = fetched ? slotsOf(last.result).slice(0, LISTED_SLOTS) : [];
    values.date = dateLabel(date ?? tomorrow(), language);
    if (free.length === 0) {
      // Nothing to pick from: ask for a preferred time, and the team confirms, as without actions.
      const fallback: Part[] = date ? ['noSlots', 'askTime'] : ['askTime'];
      return { parts: [...parts.slice(0, at), ...fallback, ...parts.slice(at + 1)] };
    }
    const list: Part = { list: free.map((s, i) => `${i + 1}) ${s.time}${s.doctor ? ` — ${s.doctor}` : ''}`) };
    return { parts: [...parts.slice(0, at), 'slotsOn', list, 'pickSlot', ...parts.slice(at + 1)] };
  }

  private text(part: Part, language: Language, booking: Booking, values: Record<string, string | undefined>): string {
    if (typeof part === 'object' && 'list' in part) return `\n${part.list.join('\n')}\n`;
    const template = typeof part === 'string' ? this.script.texts[part][language] : part.answer[language];
    const phone = this.config.env.CLINIC_PHONE;
    return fillPlaceholders(template, {
      clinicName: this.config.env.CLINIC_NAME,
      clinicPhone: phone && language === 'ar' ? isolateLtr(phone) : phone,
      name: booking.name,
      reason: booking.reason,
      time: booking.time,
      ...values,
    });
  }
}

/** Both demo actions are offered: the receptionist books through the clinic's system. */
function booksThrough(tools: readonly LlmTool[] | undefined): boolean {
  const names = new Set((tools ?? []).map((t) => t.function.name));
  return names.has(FIND_SLOTS) && names.has(BOOK);
}

/** "Tuesday 2026-12-01": the weekday helps the patient, the ISO date lets the next turn read the list back. */
function dateLabel(date: string, language: Language): string {
  const day = new Date(`${date}T12:00:00Z`);
  if (Number.isNaN(day.getTime())) return date;
  const weekday = new Intl.DateTimeFormat(language === 'ar' ? 'ar-AE' : 'en-GB', { weekday: 'long', timeZone: 'UTC' });
  return `${weekday.format(day)} ${date}`;
}

/** A piece of a reply: a text of the script, an FAQ answer, or the numbered list of free times. */
type Part = TextKey | FaqEntry | { list: string[] };
