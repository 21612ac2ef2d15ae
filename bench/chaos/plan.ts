import { type ChaosConfig } from './config';
import { Prng } from './prng';

/**
 * The whole schedule of a run, drawn from the seed before anything starts: which chat writes what
 * and when, which messages Meta delivers twice, and every fault. Only what reacts to the app
 * (retries, statuses, the agent's answers) is decided while the run goes.
 */

export interface PlannedMessage {
  /** Position in the whole run (0-based). */
  index: number;
  chat: number;
  /** 1-based position within its chat: the order the patient wrote in. */
  seq: number;
  wamid: string;
  text: string;
  /** Asks for a person: hands the chat over to Chatwoot. */
  handover: boolean;
  /** Milliseconds after the traffic starts. */
  at: number;
  /** Meta delivers it once more, this long after it was first accepted. */
  redeliverAfterMs?: number;
}

export type LlmOutageMode = 'error500' | 'unavailable503' | 'hang' | 'reset' | 'down';
export type GraphFault = 'throttled' | 'error-before-send' | 'error-after-send';

export type ChaosEvent =
  | { at: number; kind: 'kill'; role: 'receiver' | 'worker'; pick: number; restartAfterMs: number }
  | { at: number; kind: 'pause'; role: 'receiver' | 'worker'; pick: number; durationMs: number }
  | { at: number; kind: 'redis'; downMs: number }
  | { at: number; kind: 'llm'; mode: LlmOutageMode; durationMs: number }
  /** `throttled` lasts `durationMs` (every send in it gets 130429); the 500s hit the next `count` sends. */
  | { at: number; kind: 'graph'; fault: GraphFault; count: number; durationMs: number };

export interface ChaosPlan {
  messages: PlannedMessage[];
  /** Per chat, its messages in order. */
  byChat: PlannedMessage[][];
  events: ChaosEvent[];
}

/** The token every message carries: the echoing LLM copies it, so each reply says what it answers. */
export const tokenOf = (chat: number, seq: number): string => `[c${chat}.${seq}]`;
export const TOKEN = /\[c(\d+)\.(\d+)\]/g;

/** A WhatsApp id per chat: 12 digits, stable for a given chat number. */
export const waIdOf = (chat: number): string => `9715${String(20_000_000 + chat)}`;
export const chatOfWaId = (waId: string): number | undefined =>
  /^9715\d{8}$/.test(waId) ? Number(waId.slice(4)) - 20_000_000 : undefined;

/** Plain questions without escalation keywords or words that ask for a person. */
const QUESTIONS = [
  'When are you open on Friday?',
  'Is there parking near the clinic?',
  'How much is a cleaning?',
  'Can I book for next Tuesday morning?',
  'Do you accept my insurance card?',
  'What is the address please?',
  'Thanks, see you then.',
  'Is doctor Samir available this week?',
  'Can I bring my son too?',
  'How long does a check-up take?',
  'Do I need to fast before the blood test?',
  'Can I pay by card?',
];

/** humanRequest phrases of config/escalation.json. */
const ASKS_FOR_A_PERSON = ['Can I talk to a real person please?', 'I would like to speak to someone.'];

export function makePlan(config: ChaosConfig): ChaosPlan {
  const rng = Prng.stream(config.seed, 'messages');
  const trafficMs = config.durationS * 1000 * 0.9;
  const counts = spread(config.messages, config.chats, config.maxPerChat, rng);
  const handovers = new Set(
    rng
      .shuffle(Array.from({ length: config.chats }, (_, i) => i))
      .slice(0, config.handoverShare > 0 ? Math.max(1, Math.round(config.chats * config.handoverShare)) : 0),
  );
  const byChat: PlannedMessage[][] = [];
  const all: PlannedMessage[] = [];
  for (let chat = 0; chat < config.chats; chat++) {
    const n = counts[chat];
    const times = arrivalTimes(n, trafficMs, rng);
    const handoverAt = handovers.has(chat) && n > 0 ? Math.min(n - 1, rng.int(1, Math.max(1, n - 2))) : -1;
    const list: PlannedMessage[] = [];
    for (let i = 0; i < n; i++) {
      const seq = i + 1;
      const handover = i === handoverAt;
      const words = handover ? rng.pick(ASKS_FOR_A_PERSON) : rng.pick(QUESTIONS);
      const message: PlannedMessage = {
        index: 0,
        chat,
        seq,
        wamid: '',
        text: `${words} ${tokenOf(chat, seq)}`,
        handover,
        at: times[i],
        redeliverAfterMs: rng.chance(config.redeliveryShare) ? Math.round(rng.between(200, 5000)) : undefined,
      };
      list.push(message);
      all.push(message);
    }
    byChat.push(list);
  }
  all.sort((a, b) => a.at - b.at || a.chat - b.chat || a.seq - b.seq);
  all.forEach((m, i) => {
    m.index = i;
    m.wamid = `wamid.CHAOS_${config.seed.toString(36)}_${m.chat}_${m.seq}`;
  });
  return { messages: all, byChat, events: chaosEvents(config) };
}

/**
 * Every chat gets at least one message; the rest go to chats at random, some busier than others,
 * none above `cap` (raised when the total would not fit under it).
 */
function spread(total: number, chats: number, maxPerChat: number, rng: Prng): number[] {
  const cap = Math.max(maxPerChat, Math.ceil(total / chats));
  const counts: number[] = Array.from({ length: chats }, (_, i) => (i < total ? 1 : 0));
  const weights = counts.map(() => 0.3 + rng.next() ** 2 * 2);
  for (let left = total - counts.reduce((a, b) => a + b, 0); left > 0; left--) {
    const open = weights.map((w, i) => (counts[i] < cap ? w : 0));
    let r = rng.next() * open.reduce((a, b) => a + b, 0);
    let chat = 0;
    while (chat < chats - 1 && (r >= open[chat] || open[chat] === 0)) r -= open[chat++];
    counts[chat]++;
  }
  return counts;
}

/**
 * A patient writes in bursts (several lines within a second or two: batched into one turn) and
 * pauses; the times are squeezed into the traffic window when they overrun it.
 */
function arrivalTimes(n: number, windowMs: number, rng: Prng): number[] {
  const times: number[] = [];
  let t = rng.between(0, windowMs / Math.max(2, n));
  for (let i = 0; i < n; i++) {
    times.push(t);
    t += rng.chance(0.3) ? rng.between(100, 1500) : rng.exponential(windowMs / Math.max(1, n));
  }
  const last = times[times.length - 1] ?? 0;
  // Squeezed to end anywhere in the last part of the window: never all chats at its very end.
  const scale = last > windowMs ? (windowMs * rng.between(0.6, 1)) / last : 1;
  return times.map((x) => Math.round(x * scale));
}

interface ProcessFault {
  at: number;
  role: 'receiver' | 'worker';
  /** Which process of the role, as a fraction: the monkey maps it onto the ones running then. */
  pick: number;
  /** How long the process stays down (a kill) or stopped (a pause). */
  ms: number;
}

/** How one kind of process fault is drawn: the receiver's share of them, and their length. */
interface ProcessFaultKind {
  /** None this close to either end of the run. */
  marginMs: number;
  receiverShare: number;
  lengthMs: [number, number];
}

const KILL: ProcessFaultKind = { marginMs: 2000, receiverShare: 0.4, lengthMs: [300, 3000] };
// SIGSTOP, then SIGCONT: a process starved of CPU, or in a long GC pause, often past its lease.
const PAUSE: ProcessFaultKind = { marginMs: 3000, receiverShare: 0.3, lengthMs: [1000, 6000] };

/**
 * Faults of one kind, `everyS` apart on average: jittered, not Poisson, so that a short run does
 * not draw none. The draws keep their order (the gap after each fault's own draws): a seed replays
 * its schedule.
 */
function processFaults(rng: Prng, everyS: number, durationMs: number, kind: ProcessFaultKind): ProcessFault[] {
  const faults: ProcessFault[] = [];
  if (everyS <= 0) return faults;
  const gap = (): number => rng.between(0.5, 1.5) * everyS * 1000;
  for (let at = kind.marginMs + gap(); at < durationMs - kind.marginMs; at += gap()) {
    faults.push({
      at: Math.round(at),
      role: rng.chance(kind.receiverShare) ? 'receiver' : 'worker',
      pick: rng.next(),
      ms: Math.round(rng.between(...kind.lengthMs)),
    });
  }
  return faults;
}

function chaosEvents(config: ChaosConfig): ChaosEvent[] {
  const durationMs = config.durationS * 1000;
  const events: ChaosEvent[] = [];

  const kills = processFaults(Prng.stream(config.seed, 'kills'), config.killEveryS, durationMs, KILL);
  for (const { at, role, pick, ms } of kills) events.push({ at, kind: 'kill', role, pick, restartAfterMs: ms });
  const pauses = processFaults(Prng.stream(config.seed, 'pauses'), config.pauseEveryS, durationMs, PAUSE);
  for (const { at, role, pick, ms } of pauses) events.push({ at, kind: 'pause', role, pick, durationMs: ms });

  // Spread evenly with jitter, so that two restarts never overlap.
  const redis = Prng.stream(config.seed, 'redis');
  for (let i = 0; i < config.redisRestarts; i++) {
    const slot = (durationMs * 0.8) / config.redisRestarts;
    events.push({
      at: Math.round(durationMs * 0.1 + slot * i + redis.between(0, slot * 0.6)),
      kind: 'redis',
      downMs: Math.round(redis.between(500, 2500)),
    });
  }

  const llm = Prng.stream(config.seed, 'llm');
  const modes: LlmOutageMode[] = ['error500', 'unavailable503', 'hang', 'reset', 'down'];
  // Every mode in turn, from one the seed picks: a short run gets a different pair per seed.
  const first = llm.int(0, modes.length - 1);
  for (let i = 0; i < config.llmOutages; i++) {
    const slot = (durationMs * 0.8) / config.llmOutages;
    const mode = modes[(first + i) % modes.length];
    events.push({
      at: Math.round(durationMs * 0.05 + slot * i + llm.between(0, slot * 0.5)),
      kind: 'llm',
      mode,
      durationMs: Math.round(llm.between(1000, mode === 'hang' ? 4000 : 6000)),
    });
  }

  const graph = Prng.stream(config.seed, 'graph');
  const faults: GraphFault[] = ['throttled', 'error-before-send', 'error-after-send'];
  for (let i = 0; i < config.graphFaults; i++) {
    const fault = faults[i % faults.length];
    events.push({
      at: Math.round(graph.between(durationMs * 0.05, durationMs * 0.9)),
      kind: 'graph',
      fault,
      count: graph.int(1, 3),
      durationMs: Math.round(graph.between(500, 3000)),
    });
  }
  return events.sort((a, b) => a.at - b.at);
}
