import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { catalogOf, failureOf, resultOfCall, sideEffectsOf } from './mcp-tools';
import { MAX_RESULT_CHARS, UNKNOWN_OUTCOME_TEXT } from './tool-result';

const tool = (name: string, extra: Partial<Tool> = {}): Tool => ({
  name,
  description: `${name}, for tests.`,
  inputSchema: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
  ...extra,
});

describe('catalogOf', () => {
  it('offers valid tools with their schema compiled, and skips, with a reason, what it cannot validate', () => {
    const { tools, skipped, clashes } = catalogOf(
      [
        tool('find'),
        tool('find'),
        tool('bad.name'),
        tool('typo', { inputSchema: { type: 'object', properties: { a: { type: 'strin' } } } }),
        tool('unknown_keyword', {
          inputSchema: { type: 'object', properties: { a: { type: 'string', minLenght: 1 } } },
        }),
        tool('silent', { description: ' ' }),
        tool('task_only', { execution: { taskSupport: 'required' } }),
        tool('book'),
      ],
      new Set(['book']),
    );
    expect(tools.map((t) => t.name)).toEqual(['find']);
    expect(tools[0].validate({ id: 'x' })).toBe(true);
    expect(tools[0].validate({ id: 1 })).toBe(false);
    expect(skipped.map((s) => s.name)).toEqual(['find', 'bad.name', 'typo', 'unknown_keyword', 'silent', 'task_only']);
    expect(skipped[0].reason).toBe('name: listed twice');
    expect(skipped[2].reason).toMatch(/^inputSchema: schema is invalid/);
    expect(skipped[3].reason).toMatch(/^inputSchema: strict mode: unknown keyword: "minLenght"/);
    expect(clashes).toEqual(['book']);
  });

  it('compiles a schema in the dialect it names: draft-07 as the SDK emits, else 2020-12', () => {
    const tuple = {
      type: 'object',
      properties: { pair: { type: 'array', prefixItems: [{ type: 'string' }], items: false, minItems: 1 } },
    };
    const { tools, skipped } = catalogOf(
      [
        tool('draft07', {
          inputSchema: { $schema: 'http://json-schema.org/draft-07/schema#', ...tool('x').inputSchema },
        }),
        tool('draft2020', {
          inputSchema: { $schema: 'https://json-schema.org/draft/2020-12/schema', ...tuple } as Tool['inputSchema'],
        }),
        tool('unnamed_dialect', { inputSchema: tuple as Tool['inputSchema'] }),
        tool('draft04', { inputSchema: { $schema: 'http://json-schema.org/draft-04/schema#', type: 'object' } }),
      ],
      new Set(),
    );
    expect(tools.map((t) => t.name)).toEqual(['draft07', 'draft2020', 'unnamed_dialect']);
    expect(tools[1].validate({ pair: [1] })).toBe(false);
    expect(skipped.map((s) => s.name)).toEqual(['draft04']);
  });

  it('takes the title when there is no description', () => {
    const { tools } = catalogOf([tool('titled', { description: undefined, title: 'Finds things' })], new Set());
    expect(tools[0].description).toBe('Finds things');
  });
});

describe('sideEffectsOf', () => {
  it('is false only for a tool that declares itself read-only (MCP assumes the worst)', () => {
    expect(sideEffectsOf({ annotations: { readOnlyHint: true } })).toBe(false);
    expect(sideEffectsOf({})).toBe(true);
    expect(sideEffectsOf({ annotations: { readOnlyHint: false } })).toBe(true);
    expect(sideEffectsOf({ annotations: { destructiveHint: false, idempotentHint: true } })).toBe(true);
  });
});

describe('resultOfCall', () => {
  it('gives the LLM the structured content, else the text parsed as JSON when it is', () => {
    const structured = resultOfCall({ content: [{ type: 'text', text: 'ignored' }], structuredContent: { a: 1 } });
    expect(structured).toEqual({ outcome: 'ok', content: '{"ok":true,"result":{"a":1}}' });
    expect(resultOfCall({ content: [{ type: 'text', text: '{"b":2}' }] }).content).toBe('{"ok":true,"result":{"b":2}}');
    expect(resultOfCall({ content: [{ type: 'text', text: 'Booked.' }] }).content).toBe(
      '{"ok":true,"result":"Booked."}',
    );
    const mixed = resultOfCall({
      content: [
        { type: 'text', text: 'a' },
        { type: 'image', data: 'AAAA', mimeType: 'image/png' },
      ],
    });
    expect(mixed.content).toBe('{"ok":true,"result":["a","[image image/png]"]}');
  });

  it('isError: an error result the LLM can explain', () => {
    expect(resultOfCall({ content: [{ type: 'text', text: '{"error":"slot taken"}' }], isError: true })).toEqual({
      outcome: 'error',
      content: '{"ok":false,"error":{"error":"slot taken"}}',
    });
  });

  it('cuts a long answer, and says so', () => {
    const { content } = resultOfCall({ content: [{ type: 'text', text: 'x'.repeat(MAX_RESULT_CHARS * 2) }] });
    expect(content.length).toBeLessThan(MAX_RESULT_CHARS + 100);
    expect(JSON.parse(content)).toMatchObject({ ok: true, truncated: expect.any(String) });
  });
});

describe('failureOf', () => {
  const timeout = new McpError(ErrorCode.RequestTimeout, 'Request timed out');
  const refused = new TypeError('fetch failed', {
    cause: Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }),
  });
  const outcome = (err: unknown, written: boolean, sideEffects: boolean): string =>
    failureOf(err, written, sideEffects).outcome;

  it('a side-effecting call written to the server and not answered is unknown: never repeated', () => {
    expect(failureOf(timeout, true, true)).toEqual({
      outcome: 'unknown',
      content: JSON.stringify({ ok: false, outcome: UNKNOWN_OUTCOME_TEXT }),
    });
    expect(outcome(new McpError(ErrorCode.ConnectionClosed, 'closed'), true, true)).toBe('unknown');
    expect(outcome(new Error('SSE stream disconnected'), true, true)).toBe('unknown');
  });

  it('like the HTTP path otherwise: timeout, or unavailable when the server was never reached', () => {
    expect(outcome(timeout, true, false)).toBe('timeout');
    expect(outcome(timeout, false, true)).toBe('timeout');
    expect(outcome(refused, false, true)).toBe('unavailable');
    expect(outcome(refused, false, false)).toBe('unavailable');
  });

  it('an answer of the server is an error the LLM reads; its HTTP layer saying it is down is unavailable', () => {
    const rpc = failureOf(new McpError(ErrorCode.InvalidParams, 'no such tool'), true, true);
    expect(rpc).toEqual({ outcome: 'error', content: expect.stringContaining('no such tool') });
    expect(failureOf(new StreamableHTTPError(503, 'down'), true, true)).toMatchObject({
      outcome: 'unavailable',
      status: 503,
    });
    expect(failureOf(new StreamableHTTPError(401, 'no'), true, true)).toMatchObject({ outcome: 'error', status: 401 });
    const notAResult = Object.assign(new Error('bad shape'), { name: 'ZodError' });
    expect(outcome(notAResult, true, false)).toBe('error');
    expect(outcome(notAResult, true, true)).toBe('unknown');
  });
});
