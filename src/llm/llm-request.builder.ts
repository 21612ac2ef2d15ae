import { type LlmMessage, type LlmRequest } from './llm.client';

/**
 * Characters of prompt (system + history + turn) sent by default. A character budget stands in
 * for tokens: about 6–12k tokens depending on the script (Arabic costs more tokens per character),
 * which leaves room for the reply in a 16k context. The 'context' retry halves the history anyway.
 */
export const DEFAULT_PROMPT_BUDGET_CHARS = 24000;

/**
 * The most a turn's own messages may take: a flood of messages (or one enormous paste) would
 * otherwise make a prompt that fails every attempt. The newest messages are kept.
 */
export const MAX_TURN_CHARS = 8000;

export interface HistoryEntry {
  role: 'user' | 'assistant';
  text: string;
}

export interface BuildLlmRequestInput {
  systemPrompt: string;
  /** Oldest first. Consecutive entries of one role are merged (see below). */
  history: readonly HistoryEntry[];
  /** The current turn's patient messages, in arrival order. At least one. */
  turnMessages: readonly string[];
  /** Total characters of all message contents; only history is trimmed to meet it. */
  budgetChars?: number;
  /** A hashed chat id for the server's accounting; never a phone number. */
  user?: string;
}

/**
 * The system prompt first, then the history as user/assistant messages in order, and
 * last the current turn's patient messages verbatim as ONE user message joined by '\n'.
 *
 * History is trimmed from the oldest entry until everything fits budgetChars; the system prompt
 * is never trimmed, the current turn only to MAX_TURN_CHARS (capTurn; if they alone exceed the
 * budget, no history is sent).
 * Consecutive history entries of the same role are then joined by '\n' into one message: a burst
 * of patient messages was answered as one turn, so this is what the model saw then, and strict
 * chat templates (Mistral, Gemma) reject two user messages in a row.
 */
export function buildLlmRequest(input: BuildLlmRequestInput): LlmRequest {
  if (input.turnMessages.length === 0) throw new Error('buildLlmRequest: a turn needs at least one patient message');
  const budget = input.budgetChars ?? DEFAULT_PROMPT_BUDGET_CHARS;
  const turn = capTurn(input.turnMessages, MAX_TURN_CHARS);
  let remaining = budget - input.systemPrompt.length - turn.length;

  // Walk back from the newest entry; stop at the first that does not fit, so no gap appears.
  let first = input.history.length;
  while (first > 0 && input.history[first - 1].text.length <= remaining) {
    first--;
    remaining -= input.history[first].text.length;
  }

  const messages: LlmMessage[] = [{ role: 'system', content: input.systemPrompt }];
  messages.push(...mergeSameRole(input.history.slice(first)));
  messages.push({ role: 'user', content: turn });
  return input.user === undefined ? { messages } : { messages, user: input.user };
}

/**
 * The turn's messages joined by '\n', verbatim while they fit `max` characters; beyond it the
 * newest are kept, and a first line tells the model what was left out (so it can say so rather
 * than answer half a question). A single newest message longer than `max` keeps its beginning.
 */
export function capTurn(messages: readonly string[], max: number): string {
  const joined = messages.join('\n');
  if (joined.length <= max) return joined;
  const kept: string[] = [];
  let used = 0;
  for (let i = messages.length - 1; i >= 0; i--) {
    const cost = messages[i].length + (kept.length > 0 ? 1 : 0);
    if (used + cost > max - 200) break;
    kept.unshift(messages[i]);
    used += cost;
  }
  const dropped = messages.length - kept.length;
  const droppedChars = messages.slice(0, dropped).reduce((sum, m) => sum + m.length, 0);
  if (kept.length === 0) {
    const newest = messages[messages.length - 1];
    const head = newest.slice(0, max - 200);
    const note = `[The patient's message was too long: its last ${newest.length - head.length} characters are not included.]`;
    const earlier = dropped > 1 ? ` [${dropped - 1} earlier messages were not included either.]` : '';
    return `${note}${earlier}\n${head}`;
  }
  return `[${dropped} earlier messages of the patient (${droppedChars} characters) are not included: they sent more than fits.]\n${kept.join('\n')}`;
}

function mergeSameRole(entries: readonly HistoryEntry[]): LlmMessage[] {
  const merged: LlmMessage[] = [];
  for (const entry of entries) {
    const last = merged[merged.length - 1];
    if (last && last.role === entry.role) last.content = `${last.content}\n${entry.text}`;
    else merged.push({ role: entry.role, content: entry.text });
  }
  return merged;
}

/** History messages of a built request: everything between the leading system message(s) and the turn. */
export function historyLength(request: LlmRequest): number {
  return request.messages.length - leadingSystemCount(request.messages) - 1;
}

/**
 * For the single "context too long → trim and retry once" retry (LlmError kind 'context',
 * docs/architecture.md §6): the same request with the older half of its history dropped (the newer
 * half kept, rounded down). Returns null when there is no history left to drop: give up then, do
 * not resend.
 */
export function halveHistory(request: LlmRequest): LlmRequest | null {
  const count = historyLength(request);
  if (count <= 0) return null;
  const head = leadingSystemCount(request.messages);
  const keep = Math.floor(count / 2);
  const messages = [
    ...request.messages.slice(0, head),
    ...request.messages.slice(head + count - keep, head + count),
    request.messages[request.messages.length - 1],
  ];
  return { ...request, messages };
}

function leadingSystemCount(messages: readonly LlmMessage[]): number {
  let n = 0;
  while (n < messages.length - 1 && messages[n].role === 'system') n++;
  return n;
}
