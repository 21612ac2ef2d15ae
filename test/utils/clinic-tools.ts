import { type FakeChatwootServer } from '../fakes/fake-chatwoot.server';
import { type ChatRequestBody, type FakeLlmBehaviour } from '../fakes/fake-llm.server';
import { type BotCluster } from './bot-cluster';

/*
 * The fake clinic's booking tools, whether an actions file points at FakeClinicApi or the app lists
 * them from FakeMcpServer, and the fake LLM's side of a turn that calls them. One definition, so
 * that both sources refuse the same arguments and both suites script the LLM the same way.
 */

/** Name, description and argument schema: an action's `parameters`, an MCP tool's `inputSchema`. */
export const FIND_FREE_SLOTS = {
  name: 'find_free_slots',
  description: 'Free appointment slots on a day.',
  parameters: {
    type: 'object',
    properties: { date: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$' } },
    required: ['date'],
    additionalProperties: false,
  },
};

export const BOOK_APPOINTMENT = {
  name: 'book_appointment',
  description: 'Books a free slot for the patient.',
  parameters: {
    type: 'object',
    properties: { slotId: { type: 'string', minLength: 1 }, patientName: { type: 'string', minLength: 1 } },
    required: ['slotId', 'patientName'],
    additionalProperties: false,
  },
};

/** What the tool calls of the turn so far returned, in order (the request's `tool` messages). */
export const toolResultsOf = (body: ChatRequestBody): Record<string, any>[] =>
  (body.messages as { role: string; content: string | null }[])
    .filter((m) => m.role === 'tool')
    .map((m) => JSON.parse(m.content ?? '{}') as Record<string, any>);

interface ToolCall {
  name: string;
  arguments: Record<string, unknown>;
}

type Script = (body: ChatRequestBody) => FakeLlmBehaviour;

/**
 * The fake LLM through one turn: one tool call a request, `calls` in order (a function of the
 * results so far where a call needs them), then `answer` of all the results.
 */
export function toolScript(
  calls: readonly (ToolCall | ((results: Record<string, any>[]) => ToolCall))[],
  answer: (results: Record<string, any>[]) => string,
): Script {
  return (body) => {
    const results = toolResultsOf(body);
    const call = calls[results.length];
    if (call === undefined) return { content: answer(results) };
    return { toolCalls: [typeof call === 'function' ? call(results) : call] };
  };
}

/** Find the slots of 6 January, book the first for `patientName`, then answer from the booking's result. */
export const bookingScript = (patientName: string, reply: (booking: any) => string): Script =>
  toolScript(
    [
      { name: 'find_free_slots', arguments: { date: '2030-01-06' } },
      (results) => ({ name: 'book_appointment', arguments: { slotId: results[0].result.slots[0].id, patientName } }),
    ],
    (results) => reply(results[1]),
  );

/** Books `slotId` for `patientName`, then answers from that one result. */
export const bookSlotScript = (
  slotId: string,
  patientName: string,
  answer: (result: Record<string, any>) => string,
): Script =>
  toolScript([{ name: 'book_appointment', arguments: { slotId, patientName } }], (results) => answer(results[0]));

/**
 * Arguments the schemas refuse, one call a request (a number for slotId and no patientName, then a
 * date that is not one), then `answer`.
 */
export const refusedArgumentsScript = (answer: string): Script =>
  toolScript(
    [
      { name: 'book_appointment', arguments: { slotId: 42 } },
      { name: 'find_free_slots', arguments: { date: 'tomorrow' } },
    ],
    () => answer,
  );

/**
 * The LLM's last request of refusedArgumentsScript carried an error result for each call, naming
 * the schema; returns them.
 */
export function expectArgumentsRefused(bot: BotCluster): Record<string, any>[] {
  const results = toolResultsOf(bot.llm.requests[2].body);
  expect(results).toHaveLength(2);
  for (const r of results) expect(r).toMatchObject({ ok: false, error: expect.stringContaining('do not match') });
  return results;
}

/**
 * `script`, except that the first request carrying `resultCount` tool results gets `instead(what the
 * script would do)`: a failure or a delay at that point of the turn, once.
 */
export function onceAtResults(
  resultCount: number,
  script: Script,
  instead: (behaviour: FakeLlmBehaviour) => FakeLlmBehaviour,
): Script {
  let done = false;
  return (body) => {
    const behaviour = script(body);
    if (done || toolResultsOf(body).length !== resultCount) return behaviour;
    done = true;
    return instead(behaviour);
  };
}

/**
 * After the LLM failed once past both results of bookingScript: two texts, the answer last, four
 * LLM requests, and the booking's stored result reused rather than the tool called again.
 */
export async function expectStoredResultReused(bot: BotCluster, from: string, answer: string): Promise<void> {
  const texts = bot.sentTexts(from);
  expect(texts).toHaveLength(2);
  expect(texts[1]).toBe(answer);
  expect(bot.llm.requests).toHaveLength(4);
  expect(
    await bot.metric('tawasul_actions_total', 'action="book_appointment",outcome="reused"'),
  ).toBeGreaterThanOrEqual(1);
}

/** The private notes left for the agents, in every conversation, once there is one. */
export async function privateNotes(chatwoot: FakeChatwootServer): Promise<string[]> {
  const notes = (): string[] =>
    chatwoot
      .conversations()
      .flatMap((c) => chatwoot.messagesOf(c.id))
      .filter((m) => m.private)
      .map((m) => m.content);
  await chatwoot.waitFor(() => notes().length > 0, 20_000, 'the private note');
  return notes();
}
