/** A function call the model asked for (OpenAI `tool_calls[i]`); `arguments` is its raw JSON text. */
export interface LlmToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** A function the model may call, in the OpenAI `tools` format; `parameters` is a JSON Schema. */
export interface LlmTool {
  type: 'function';
  function: { name: string; description: string; parameters: Record<string, unknown> };
}

/**
 * One chat message as the OpenAI chat-completions API takes it. An assistant message that called
 * tools carries `toolCalls` (its content may be empty), and each call's result follows it as a
 * `tool` message naming the call in `toolCallId`, in the order of the calls.
 */
export interface LlmMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
  toolCalls?: LlmToolCall[];
  toolCallId?: string;
}

export interface LlmRequest {
  /**
   * System prompt first, then history, then the current turn (see buildLlmRequest); after it, the
   * turn's tool rounds: each an assistant message with toolCalls and one tool message per call.
   */
  messages: LlmMessage[];
  /** Functions the model may call; absent or empty: none (the adapter then sends no `tools`). */
  tools?: LlmTool[];
  /** Passed to the server as `user` for its own accounting: a hashed chat id, never a phone number. */
  user?: string;
}

export interface LlmReply {
  /**
   * The answer text, trimmed, without any reasoning (`reasoning_content`, `<think>` blocks). Never
   * empty unless `toolCalls` is: a reply may be only calls.
   */
  content: string;
  /** The calls the model asked for, in order; absent when it answered in text. Never sent to a patient. */
  toolCalls?: LlmToolCall[];
  /** The server's finish_reason (`stop`, `tool_calls`, …); never `length`, which is an LlmError. */
  finishReason: string;
  latencyMs: number;
}

/** Exactly the label values of tawasul_llm_failures_total. */
export const LLM_FAILURE_KINDS = ['error', 'timeout', 'empty', 'truncated', 'context', 'config'] as const;
export type LlmFailureKind = (typeof LLM_FAILURE_KINDS)[number];

/**
 * A failed inference. `kind` tells the caller what to do:
 * - `error`, `timeout`, `empty`, `truncated`: transient or model-side; count an attempt, send the
 *   holding message once, retry with backoff.
 * - `context`: the prompt is too long; trim the history (halveHistory) and retry once.
 * - `config`: 401/404, a deployment mistake no retry fixes; raise the alert, do not count an attempt.
 * The message is short and safe to log: it never carries the patient's text or the server's body.
 */
export class LlmError extends Error {
  constructor(
    readonly kind: LlmFailureKind,
    message: string,
    readonly details: { status?: number; code?: string; latencyMs?: number } = {},
  ) {
    super(message);
    this.name = 'LlmError';
  }
}

/**
 * Port: one chat-completion inference. Bound by LlmModule from LLM_PROVIDER to OpenAiLlmClient
 * (any OpenAI-compatible server, vLLM first) or OfflineLlmClient (the built-in demo responder).
 *
 * Contract for every adapter:
 * - resolves with a non-empty, reasoning-free reply (or one with toolCalls), or rejects with LlmError
 *   (never another error);
 * - sends `tools` and the tool messages through when it can; an adapter without tool support
 *   ignores them and answers in text;
 * - finishes within LLM_TIMEOUT_MS (plus scheduling noise): a hung server ends as kind `timeout`;
 * - does not retry on its own (except one transparent retry of a stale keep-alive socket): backoff,
 *   holding messages and attempt counting belong to the caller;
 * - does not limit concurrency: the caller holds an LlmConcurrencyLimiter slot around the call;
 * - records tawasul_llm_seconds and tawasul_llm_failures_total.
 */
export abstract class LlmClient {
  abstract complete(request: LlmRequest): Promise<LlmReply>;
}
