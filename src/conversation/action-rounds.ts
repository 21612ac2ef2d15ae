import { Injectable } from '@nestjs/common';
import { ClinicActions } from '../actions/clinic-actions';
import { AppConfig } from '../config/app-config';
import { type LlmMessage, type LlmReply, type LlmTool } from '../llm/llm.client';
import { ConversationStore } from './conversation.store';
import { leaseUsable, type Lease, type ToolResult, type TurnEscalation, type TurnMeta } from './turn.types';

/** Calls beyond this many in one answer are refused (an error result), not run. */
export const MAX_CALLS_PER_ROUND = 5;

/**
 * - done: every call of every round has its result stored;
 * - down: the clinic's system could not be reached by any call of the turn (take the holding path;
 *   those results are dropped so that the retried turn calls again);
 * - lost: the lease went (nothing more may be done).
 */
export type SettleResult = 'done' | 'down' | 'lost';

/**
 * The clinic actions of one turn (docs/actions.md): the rounds of calls the LLM asked for and their
 * results live in the turn in flight, each stored under the fence before the turn goes on, so a
 * retried turn — after a crash, an LLM failure or a takeover — replays them to the LLM and never
 * runs a call twice. Tool messages are part of the turn's LLM requests only: they are not kept in
 * the chat's history (the assistant's reply says what was done) and never reach the patient.
 */
@Injectable()
export class ActionRounds {
  constructor(
    private readonly actions: ClinicActions,
    private readonly store: ConversationStore,
    private readonly config: AppConfig,
  ) {}

  get enabled(): boolean {
    return this.actions.enabled;
  }

  /** The tools to offer for the next LLM call: none once ACTIONS_MAX_STEPS rounds were used. */
  tools(turn: TurnMeta): LlmTool[] | undefined {
    if (!this.enabled || (turn.toolRounds?.length ?? 0) >= this.config.env.ACTIONS_MAX_STEPS) return undefined;
    return this.actions.tools;
  }

  /** Stored results a retried turn finds: counted as reused (the clinic is not asked again). */
  countReused(turn: TurnMeta): void {
    for (const key of Object.keys(turn.toolResults ?? {})) {
      const [round, index] = key.split('.').map(Number);
      const call = turn.toolRounds?.[round]?.calls[index];
      if (call) this.actions.reused(call.name);
    }
  }

  /** Stores the LLM's answer with calls as the turn's next round, before any of them runs. */
  async begin(lease: Lease, turn: TurnMeta, reply: LlmReply): Promise<boolean> {
    const rounds = (turn.toolRounds ??= []);
    const seen = new Set(rounds.flatMap((r) => r.calls.map((c) => c.id)));
    const calls = (reply.toolCalls ?? []).map((call, index) => ({
      // Tool messages name their call: ids must be unique within the turn's request.
      id: seen.has(call.id) ? `call_${rounds.length}_${index}` : call.id,
      name: call.name,
      arguments: call.arguments,
    }));
    rounds.push({ content: reply.content, calls });
    return this.store.saveTurn(lease, turn);
  }

  /** Some stored call has no stored result yet: settle() has work to do. */
  pending(turn: TurnMeta): boolean {
    return (turn.toolRounds ?? []).some((r, round) =>
      r.calls.some((_c, index) => turn.toolResults?.[`${round}.${index}`] === undefined),
    );
  }

  /** Runs, in order, every stored call without a stored result, storing each result as it comes. */
  async settle(lease: Lease, turn: TurnMeta): Promise<SettleResult> {
    const results = (turn.toolResults ??= {});
    const ran: string[] = [];
    for (const [round, { calls }] of (turn.toolRounds ?? []).entries()) {
      for (const [index, call] of calls.entries()) {
        const key = `${round}.${index}`;
        if (results[key]) continue;
        if (!leaseUsable(lease)) return 'lost';
        results[key] =
          index >= MAX_CALLS_PER_ROUND
            ? refused(`at most ${MAX_CALLS_PER_ROUND} actions per answer`)
            : await this.actions.run(call, { turnId: turn.id, round, index });
        ran.push(key);
        if (!(await this.store.saveTurn(lease, turn))) return 'lost';
      }
    }
    const all = Object.values(results);
    const reached = all.some((r) => r.outcome !== 'unavailable' && r.outcome !== 'invalid');
    if (ran.length > 0 && !reached && all.some((r) => r.outcome === 'unavailable')) {
      for (const key of Object.keys(results)) if (results[key].outcome === 'unavailable') delete results[key];
      return 'down';
    }
    return 'done';
  }

  /** The turn's rounds as LLM messages: each answer with its calls, then one tool message per call. */
  messages(turn: TurnMeta): LlmMessage[] {
    const messages: LlmMessage[] = [];
    for (const [round, { content, calls }] of (turn.toolRounds ?? []).entries()) {
      messages.push({ role: 'assistant', content, toolCalls: calls });
      for (const [index, call] of calls.entries()) {
        const result = turn.toolResults?.[`${round}.${index}`];
        messages.push({ role: 'tool', toolCallId: call.id, content: result?.content ?? '{"ok":false}' });
      }
    }
    return messages;
  }

  /**
   * A side-effecting call of unknown outcome hands the chat over: a person checks the clinic's
   * system and confirms. The private note names the call, its arguments and its Idempotency-Key.
   */
  escalation(turn: TurnMeta): TurnEscalation | undefined {
    const matched: string[] = [];
    for (const [round, { calls }] of (turn.toolRounds ?? []).entries()) {
      for (const [index, call] of calls.entries()) {
        if (turn.toolResults?.[`${round}.${index}`]?.outcome !== 'unknown') continue;
        matched.push(`${call.name} ${call.arguments}, Idempotency-Key ${turn.id}.${round}.${index}`);
      }
    }
    return matched.length > 0 ? { trigger: 'action_unknown', matched, pause: true } : undefined;
  }
}

function refused(error: string): ToolResult {
  return { outcome: 'invalid', content: JSON.stringify({ ok: false, error }) };
}
