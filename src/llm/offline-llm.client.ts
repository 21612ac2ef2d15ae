import { type AppConfig } from '../config/app-config';
import { hasArabicLetters, hasLetters, isolateLtr, type Language, pickLanguage } from './language';
import { LlmClient, LlmError, type LlmMessage, type LlmReply, type LlmRequest } from './llm.client';
import { type LlmMetrics } from './llm.metrics';

interface Phrases {
  greet: (clinic: string) => string;
  askName: string;
  askReason: (name: string) => string;
  close: (name: string, clinic: string) => string;
  followUp: (clinic: string) => string;
  urgent: (phone: string) => string;
}

// The questions double as state markers: the conversation is re-read on every call, and a
// user message right after `askName` is the name, right after `askReason` the reason.
const PHRASES: Record<Language, Phrases> = {
  en: {
    greet: (clinic) => `Hello, and welcome to ${clinic}! I am the clinic's virtual assistant.`,
    askName: 'May I have your full name, please?',
    askReason: (name) => `Thank you, ${name}. What is the reason for your visit?`,
    close: (name, clinic) =>
      `Thank you, ${name}. We have noted your request, and the ${clinic} team will call you back shortly to arrange your appointment.`,
    followUp: (clinic) => `Thank you for your message. The ${clinic} team will call you back shortly.`,
    urgent: (phone) => `If it is urgent, you can call us on ${phone}.`,
  },
  ar: {
    greet: (clinic) => `مرحباً بك في ${clinic}! أنا المساعد الافتراضي للعيادة.`,
    askName: 'هل يمكنني معرفة اسمك الكامل من فضلك؟',
    askReason: (name) => `شكراً لك يا ${name}. ما سبب زيارتك؟`,
    close: (name, clinic) => `شكراً لك يا ${name}. لقد سجلنا طلبك، وسيتصل بك فريق ${clinic} قريباً لترتيب موعدك.`,
    followUp: (clinic) => `شكراً لرسالتك. سيتصل بك فريق ${clinic} قريباً.`,
    urgent: (phone) => `وإذا كان الأمر عاجلاً يمكنك الاتصال بنا على الرقم ${isolateLtr(phone)}.`,
  },
};

const ASK_NAME = [PHRASES.en.askName, PHRASES.ar.askName];
const ASK_REASON = ['What is the reason for your visit?', 'ما سبب زيارتك؟'];
const CLOSED = ['will call you back shortly', 'سيتصل بك فريق'];
// A prefix only before a space: "Imran" is a name, not "I'm ran".
const NAME_PREFIX = /^(?:(?:my name is|my name's|i am|i'm|im|this is|it's|اسمي|إسمي|انا|أنا)\s+|name\s*:\s*)/iu;
const MAX_NAME_CHARS = 60;

interface Facts {
  name?: string;
  reason?: string;
  /** The current message answers the name question (a name says little about the language). */
  answeredName: boolean;
  greeted: boolean;
  closed: boolean;
}

/** The name in an answer such as "My name is Sara Ali." or "اسمي أحمد"; undefined for a question or no letters. */
export function extractName(text: string): string | undefined {
  if (/[?؟]/.test(text)) return undefined;
  const line = (text.split('\n').find((l) => hasLetters(l)) ?? '').trim();
  const name = line
    .replace(NAME_PREFIX, '')
    .replace(/[.!،,؛;]+$/u, '')
    .trim();
  return hasLetters(name) ? name.slice(0, MAX_NAME_CHARS) : undefined;
}

/** Re-derives what the conversation already established, from the messages alone (stateless). */
function readFacts(messages: readonly LlmMessage[]): Facts {
  const facts: Facts = { answeredName: false, greeted: false, closed: false };
  let asked: 'name' | 'reason' | undefined;
  for (const m of messages) {
    if (m.role === 'system') continue;
    if (m.role === 'assistant') {
      facts.greeted = true;
      asked = ASK_NAME.some((q) => m.content.includes(q)) ? 'name' : undefined;
      if (ASK_REASON.some((q) => m.content.includes(q))) asked = 'reason';
      if (facts.name && facts.reason && CLOSED.some((c) => m.content.includes(c))) facts.closed = true;
      continue;
    }
    facts.answeredName = false;
    if (asked === 'name' && !facts.name) {
      facts.name = extractName(m.content);
      facts.answeredName = true;
    } else if (asked === 'reason' && !facts.reason && hasLetters(m.content)) {
      facts.reason = m.content.trim();
    }
    asked = undefined;
  }
  return facts;
}

function languageOf(messages: readonly LlmMessage[], facts: Facts): Language {
  const userTexts = messages.filter((m) => m.role === 'user').map((m) => m.content);
  const last = userTexts[userTexts.length - 1] ?? '';
  if (facts.answeredName && userTexts.length > 1) return pickLanguage(userTexts.slice(0, -1), pickLanguage([last]));
  if (hasLetters(last)) return hasArabicLetters(last) ? 'ar' : 'en';
  return pickLanguage(userTexts);
}

/**
 * LLM_PROVIDER=offline: the built-in demo receptionist. No network, deterministic (same messages,
 * same reply), bilingual: Arabic when the patient's last message has Arabic letters, else English
 * (a message that only answers the name question keeps the conversation's language). It greets
 * and asks for the name, then for the reason of the visit, then promises a call back from
 * CLINIC_NAME (with CLINIC_PHONE when set).
 */
export class OfflineLlmClient extends LlmClient {
  constructor(
    private readonly config: AppConfig,
    private readonly metrics?: LlmMetrics,
  ) {
    super();
  }

  complete(request: LlmRequest): Promise<LlmReply> {
    if (!request.messages.some((m) => m.role === 'user')) {
      this.metrics?.observeFailure('error');
      return Promise.reject(new LlmError('error', 'offline responder needs a user message'));
    }
    const content = this.answer(request.messages);
    this.metrics?.observeSuccess(0);
    return Promise.resolve({ content, finishReason: 'stop', latencyMs: 0 });
  }

  private answer(messages: readonly LlmMessage[]): string {
    const facts = readFacts(messages);
    const p = PHRASES[languageOf(messages, facts)];
    const clinic = this.config.env.CLINIC_NAME;
    const phone = this.config.env.CLINIC_PHONE;
    if (!facts.name) return facts.greeted ? p.askName : `${p.greet(clinic)} ${p.askName}`;
    if (!facts.reason) return p.askReason(facts.name);
    const text = facts.closed ? p.followUp(clinic) : p.close(facts.name, clinic);
    return phone ? `${text} ${p.urgent(phone)}` : text;
  }
}
