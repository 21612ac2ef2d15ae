import { LlmError, type LlmReply, type LlmToolCall } from './llm.client';

/**
 * vLLM's 400 for an over-long prompt, across versions: "This model's maximum context length is
 * 16384 tokens…", "The decoder prompt (length 17020) is longer than the maximum model length of
 * 16384", and the wordings of other OpenAI-compatible servers.
 */
const CONTEXT_TOO_LONG =
  /context length|maximum context|context window|too many tokens|maximum model length|max_model_len|prompt is too long|reduce the length/i;

/** The error text of any of the shapes vLLM uses: nested `{error:{message}}`, flat `{message}`, `{error:"…"}`. */
export function errorText(data: unknown): string {
  let body: unknown = data;
  if (typeof data === 'string') {
    try {
      body = JSON.parse(data);
    } catch {
      return data;
    }
  }
  if (typeof body !== 'object' || body === null) return '';
  const { error, message, detail } = body as Record<string, unknown>;
  if (typeof error === 'string') return error;
  if (typeof error === 'object' && error !== null) {
    const nested = (error as Record<string, unknown>).message;
    if (typeof nested === 'string') return nested;
  }
  if (typeof message === 'string') return message;
  return typeof detail === 'string' ? detail : '';
}

/**
 * A non-2xx answer as an LlmError. The server's text is only matched, never copied into the
 * message: some validation errors echo the request, i.e. the patient's words.
 */
export function classifyHttpFailure(status: number, data: unknown, model: string): LlmError {
  const details = { status };
  if (status === 400 && CONTEXT_TOO_LONG.test(errorText(data))) {
    return new LlmError('context', "prompt exceeds the model's context (HTTP 400)", details);
  }
  if (status === 401) {
    return new LlmError('config', 'LLM rejected the credentials (HTTP 401): check LLM_API_KEY', details);
  }
  if (status === 404) {
    return new LlmError(
      'config',
      `LLM has no model "${model}" here (HTTP 404): check LLM_MODEL and LLM_BASE_URL`,
      details,
    );
  }
  if (status >= 400 && status < 500) return new LlmError('error', `LLM rejected the request (HTTP ${status})`, details);
  return new LlmError('error', `LLM failed (HTTP ${status})`, details);
}

/**
 * Removes a reasoning model's thinking when it arrives inside `content` rather than in
 * `reasoning_content`: a leading `<think>…</think>` block, or, when the chat template opened the
 * block in the prompt, everything up to a `</think>` without an opening tag. An unclosed
 * `<think>` means the model never got past thinking: nothing usable.
 */
export function stripThinking(content: string): string {
  const text = content.trimStart();
  if (text.startsWith('<think>')) {
    const end = text.indexOf('</think>');
    return end === -1 ? '' : text.slice(end + '</think>'.length);
  }
  const close = text.indexOf('</think>');
  if (close !== -1 && !text.slice(0, close).includes('<think>')) return text.slice(close + '</think>'.length);
  return text;
}

interface CompletionChoice {
  finish_reason?: unknown;
  message?: { content?: unknown; tool_calls?: unknown };
}

/**
 * The function calls of an answer; entries without a function name are dropped (nothing to run).
 * Missing ids are made up: the tool messages must name their call, and some servers omit them.
 */
export function parseToolCalls(raw: unknown): LlmToolCall[] {
  if (!Array.isArray(raw)) return [];
  const calls: LlmToolCall[] = [];
  for (const entry of raw as unknown[]) {
    const fn = (entry as { function?: { name?: unknown; arguments?: unknown } } | null)?.function;
    if (typeof fn?.name !== 'string' || fn.name === '') continue;
    const id = (entry as { id?: unknown }).id;
    const args = fn.arguments;
    calls.push({
      id: typeof id === 'string' && id !== '' ? id : `call_${calls.length}`,
      name: fn.name,
      // Some servers send the arguments as an object rather than its JSON text.
      arguments: typeof args === 'string' ? args : args === undefined ? '{}' : JSON.stringify(args),
    });
  }
  return calls;
}

/** A 2xx chat-completion body as a reply, or an LlmError (truncated, empty, error). */
export function parseCompletion(data: unknown, latencyMs: number): LlmReply {
  let body: unknown = data;
  if (typeof data === 'string') {
    try {
      body = JSON.parse(data);
    } catch {
      throw new LlmError('error', 'LLM answered with a body that is not JSON', { latencyMs });
    }
  }
  const choices = (body as { choices?: unknown } | null)?.choices;
  const choice = Array.isArray(choices) ? (choices[0] as CompletionChoice | undefined) : undefined;
  if (!choice) {
    if ((body as { error?: unknown } | null)?.error)
      throw new LlmError('error', 'LLM answered with an error object', { latencyMs });
    throw new LlmError('empty', 'LLM answered without choices', { latencyMs });
  }
  const finishReason = typeof choice.finish_reason === 'string' ? choice.finish_reason : 'stop';
  // A reply cut at max_tokens may end mid-sentence or mid-instruction: never send it.
  if (finishReason === 'length') throw new LlmError('truncated', 'LLM reply hit max_tokens', { latencyMs });
  const raw = typeof choice.message?.content === 'string' ? choice.message.content : '';
  const content = stripThinking(raw).trim();
  const toolCalls = parseToolCalls(choice.message?.tool_calls);
  if (toolCalls.length > 0) return { content, toolCalls, finishReason, latencyMs };
  if (content === '') throw new LlmError('empty', 'LLM answered without text', { latencyMs });
  return { content, finishReason, latencyMs };
}
