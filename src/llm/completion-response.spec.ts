import { classifyHttpFailure, errorText, parseCompletion, stripThinking } from './completion-response';
import { type LlmError } from './llm.client';

const body = (content: unknown, finish = 'stop') =>
  JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: finish }] });

const failure = (fn: () => unknown): LlmError => {
  try {
    fn();
  } catch (err) {
    return err as LlmError;
  }
  throw new Error('expected a failure');
};

describe('errorText', () => {
  it('reads every vLLM error shape', () => {
    expect(errorText({ error: { message: 'nested' } })).toBe('nested');
    expect(errorText({ object: 'error', message: 'flat' })).toBe('flat');
    expect(errorText('{"error":"Unauthorized"}')).toBe('Unauthorized');
    expect(errorText({ detail: 'Not Found' })).toBe('Not Found');
    expect(errorText('plain text')).toBe('plain text');
    expect(errorText(null)).toBe('');
  });
});

describe('classifyHttpFailure', () => {
  const ctx = "This model's maximum context length is 16384 tokens. However, you requested 17020 tokens";
  it.each([
    [400, { error: { message: ctx, type: 'BadRequestError', code: 400 } }, 'context'],
    [400, { object: 'error', message: ctx }, 'context'],
    [
      400,
      { error: { message: 'The decoder prompt (length 17020) is longer than the maximum model length of 16384.' } },
      'context',
    ],
    [400, { error: { message: 'too many tokens in the prompt' } }, 'context'],
    [400, { error: { message: '"auto" tool choice requires --enable-auto-tool-choice' } }, 'error'],
    [401, { error: 'Unauthorized' }, 'config'],
    [404, { object: 'error', message: 'The model `x` does not exist.', type: 'NotFoundError', code: 404 }, 'config'],
    [404, { error: { message: 'The model `x` does not exist.', type: 'NotFoundError', code: 404 } }, 'config'],
    [404, { detail: 'Not Found' }, 'config'],
    [422, { detail: [{ msg: 'field required' }] }, 'error'],
    [429, {}, 'error'],
    [500, { error: { message: 'boom' } }, 'error'],
    [503, '', 'error'],
  ])('HTTP %i %j is %s', (status, data, kind) => {
    const error = classifyHttpFailure(status, data, 'wa-bot');
    expect(error.kind).toBe(kind);
    expect(error.details.status).toBe(status);
  });

  it('never copies the server text (which may echo the patient) into the message', () => {
    const error = classifyHttpFailure(400, { error: { message: 'bad input: "my private symptoms"' } }, 'm');
    expect(error.message).not.toContain('private');
  });
});

describe('stripThinking', () => {
  it.each([
    ['<think>plan</think>\n\nHello', '\n\nHello'],
    ['  <think>a\nb</think>Hi', 'Hi'],
    ['<think>never closed', ''],
    ['reasoning opened by the template</think>Answer', 'Answer'],
    ['No thinking here', 'No thinking here'],
    ['Answer mentioning <think> later', 'Answer mentioning <think> later'],
  ])('%j -> %j', (input, output) => {
    expect(stripThinking(input)).toBe(output);
  });
});

describe('parseCompletion', () => {
  it('returns the trimmed content and finish reason', () => {
    expect(parseCompletion(body('  أهلاً بك!  '), 12)).toEqual({
      content: 'أهلاً بك!',
      finishReason: 'stop',
      latencyMs: 12,
    });
  });

  it('ignores reasoning fields', () => {
    const data = JSON.stringify({
      choices: [
        { message: { content: 'Hi', reasoning_content: 'secret', reasoning: 'secret' }, finish_reason: 'stop' },
      ],
    });
    expect(JSON.stringify(parseCompletion(data, 1))).not.toContain('secret');
  });

  it.each([
    [body('partial answer', 'length'), 'truncated'],
    [body('', 'length'), 'truncated'],
    [body('   \n'), 'empty'],
    [body(null), 'empty'],
    [body('<think>only thoughts</think>'), 'empty'],
    [JSON.stringify({ choices: [] }), 'empty'],
    [JSON.stringify({ error: { message: 'late error' } }), 'error'],
    ['<html>', 'error'],
  ])('%s is %s', (data, kind) => {
    expect(failure(() => parseCompletion(data, 1)).kind).toBe(kind);
  });
});

describe('parseCompletion with tool calls', () => {
  const body = (message: Record<string, unknown>, finish = 'tool_calls'): string =>
    JSON.stringify({ choices: [{ message, finish_reason: finish }] });

  it('accepts a reply with tool_calls and no content', () => {
    const reply = parseCompletion(
      body({
        content: null,
        tool_calls: [{ id: 'c1', type: 'function', function: { name: 'find', arguments: '{"a":1}' } }],
      }),
      5,
    );
    expect(reply).toEqual({
      content: '',
      toolCalls: [{ id: 'c1', name: 'find', arguments: '{"a":1}' }],
      finishReason: 'tool_calls',
      latencyMs: 5,
    });
  });

  it('makes up missing ids and serialises object arguments', () => {
    const reply = parseCompletion(body({ tool_calls: [{ function: { name: 'find', arguments: { a: 1 } } }] }), 1);
    expect(reply.toolCalls).toEqual([{ id: 'call_0', name: 'find', arguments: '{"a":1}' }]);
  });

  it('an empty tool_calls list is a plain reply (and without text, empty)', () => {
    expect(() => parseCompletion(body({ content: '', tool_calls: [] }, 'stop'), 1)).toThrow(
      'LLM answered without text',
    );
  });
});
