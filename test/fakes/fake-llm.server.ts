import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { type AddressInfo, type Socket } from 'node:net';

/**
 * How the fake answers one chat-completion call. Shapes follow vLLM:
 * - ok: 200 with `reply(body)` (or `content`), finish_reason stop
 * - reasoning: like ok, plus `reasoning_content` / `reasoning` that must never reach a patient
 * - think: the reasoning inline, as a leading `<think>…</think>` block of `content`
 * - empty: 200 with whitespace-only content; truncated: 200 with finish_reason length
 * - error500, unavailable503: nested `{error:{…}}`; context400: nested, "maximum context length"
 * - badrequest400: nested, a 400 that is not about context (tool choice not enabled)
 * - unauthorized401: `{"error":"Unauthorized"}`; notfound404: the flat `{object:'error',…}` shape
 * - hang: never answers; stall: sends the 200 header and a few bytes, then nothing
 * - reset: destroys the connection after reading the request (socket hang up)
 * - notjson: 200 with an HTML body (a misconfigured proxy)
 */
export type FakeLlmMode =
  | 'ok'
  | 'reasoning'
  | 'think'
  | 'empty'
  | 'truncated'
  | 'error500'
  | 'unavailable503'
  | 'context400'
  | 'badrequest400'
  | 'unauthorized401'
  | 'notfound404'
  | 'hang'
  | 'stall'
  | 'reset'
  | 'notjson';

export interface FakeLlmBehaviour {
  mode?: FakeLlmMode;
  latencyMs?: number;
  /** Overrides the reply function's content for this call. */
  content?: string;
  /** Answers exactly this status and JSON body instead of a mode (other shapes, other codes). */
  raw?: { status: number; body: unknown };
  /** Mode ok: answers these function calls (finish_reason tool_calls), with `content` or none. */
  toolCalls?: { name: string; arguments: unknown; id?: string }[];
}

export interface ChatRequestBody {
  model: string;
  messages: { role: string; content: string }[];
  temperature?: number;
  max_tokens?: number;
  stream?: boolean;
  user?: string;
  [field: string]: unknown;
}

export interface RecordedLlmRequest {
  body: ChatRequestBody;
  headers: IncomingHttpHeaders;
  /** 1-based id of the TCP connection it came on. */
  connection: number;
  /** The connection had served a request before (keep-alive reuse). */
  reusedConnection: boolean;
  mode: FakeLlmMode;
}

export interface FakeLlmOptions {
  port?: number;
  /** Like `vllm serve --api-key`: other Bearer tokens get 401 `{"error":"Unauthorized"}`. */
  apiKey?: string;
  /** Like `--served-model-name`: another `model` gets the 404 of vLLM. */
  servedModel?: string;
  /** Idle keep-alive timeout of the server; uvicorn's is 5 s. */
  keepAliveTimeoutMs?: number;
}

export const REASONING_TEXT = 'SECRET-REASONING: the patient probably has';

const lastUserText = (body: ChatRequestBody): string =>
  [...body.messages].reverse().find((m) => m.role === 'user')?.content ?? '';

/**
 * A real HTTP server on 127.0.0.1 speaking vLLM's OpenAI-compatible chat-completions API,
 * programmable per test: a default mode and latency, a queue of per-call behaviours (taken
 * first), a reply function. It records every request and the largest number in flight at once,
 * and can be stopped (connection refused) and started again on the same port.
 */
export class FakeLlmServer {
  mode: FakeLlmMode = 'ok';
  latencyMs = 0;
  reply: (body: ChatRequestBody) => string = (body) => `Echo: ${lastUserText(body)}`;
  /** A behaviour chosen from the request itself, when the queue is empty (tool-calling scripts). */
  behaviourFor?: (body: ChatRequestBody) => FakeLlmBehaviour | undefined;
  readonly requests: RecordedLlmRequest[] = [];
  inFlight = 0;
  maxInFlight = 0;
  connectionsOpened = 0;
  connectionsClosed = 0;

  private readonly queue: FakeLlmBehaviour[] = [];
  private readonly sockets = new Map<Socket, { id: number; served: number }>();
  private readonly server: Server;
  private port = 0;

  private constructor(private readonly options: FakeLlmOptions) {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = options.keepAliveTimeoutMs ?? 5000;
    this.server.on('connection', (socket: Socket) => {
      this.sockets.set(socket, { id: ++this.connectionsOpened, served: 0 });
      socket.on('close', () => {
        this.sockets.delete(socket);
        this.connectionsClosed++;
      });
    });
  }

  static async start(options: FakeLlmOptions = {}): Promise<FakeLlmServer> {
    const fake = new FakeLlmServer(options);
    await fake.listen(options.port ?? 0);
    return fake;
  }

  /** The LLM_BASE_URL to configure: `http://127.0.0.1:<port>/v1`. */
  get url(): string {
    return `http://127.0.0.1:${this.port}/v1`;
  }

  /** Behaviours for the next calls, in order; a bare mode is `{ mode }`. Then the defaults apply. */
  enqueue(...behaviours: (FakeLlmBehaviour | FakeLlmMode)[]): void {
    for (const b of behaviours) this.queue.push(typeof b === 'string' ? { mode: b } : b);
  }

  /** Back to a fresh state: mode ok, no latency, echo replies, nothing recorded or queued. */
  reset(): void {
    this.mode = 'ok';
    this.latencyMs = 0;
    this.reply = (body) => `Echo: ${lastUserText(body)}`;
    this.behaviourFor = undefined;
    this.requests.length = 0;
    this.queue.length = 0;
    this.maxInFlight = this.inFlight;
    this.connectionsOpened = 0;
    this.connectionsClosed = 0;
  }

  /** Stops listening and cuts every connection (hung calls included): clients get ECONNREFUSED. */
  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets.keys()) socket.destroy();
    await closed;
  }

  /** Listens again on the same port, e.g. after stop() (a restarted vLLM). */
  async restart(): Promise<void> {
    await this.listen(this.port);
  }

  async close(): Promise<void> {
    if (this.server.listening) await this.stop();
  }

  async waitForRequests(count: number, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.requests.length < count) {
      if (Date.now() > deadline) throw new Error(`fake LLM got ${this.requests.length} of ${count} requests`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  private async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req);
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/health') return void res.writeHead(200).end();
    if (req.method !== 'POST' || path !== '/v1/chat/completions') return json(res, 404, { detail: 'Not Found' });
    if (this.options.apiKey && req.headers.authorization !== `Bearer ${this.options.apiKey}`) {
      return json(res, 401, { error: 'Unauthorized' });
    }
    let body: ChatRequestBody;
    try {
      body = JSON.parse(raw) as ChatRequestBody;
    } catch {
      return json(res, 400, { error: { message: 'invalid JSON', type: 'BadRequestError', param: null, code: 400 } });
    }
    const socket = this.sockets.get(req.socket);
    const behaviour = this.queue.shift() ?? this.behaviourFor?.(body) ?? {};
    const mode = behaviour.mode ?? this.mode;
    this.requests.push({
      body,
      headers: req.headers,
      connection: socket?.id ?? 0,
      reusedConnection: (socket?.served ?? 0) > 0,
      mode,
    });
    if (socket) socket.served++;

    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    let finished = false;
    // vLLM aborts a request whose client went away, so a disconnect ends it here too.
    res.once('close', () => {
      if (!finished) this.inFlight--;
      finished = true;
    });

    await waitOrClose(res, behaviour.latencyMs ?? this.latencyMs);
    if (res.destroyed) return;
    if (this.options.servedModel && body.model !== this.options.servedModel) return notFound(res, body.model);
    if (behaviour.raw) return json(res, behaviour.raw.status, behaviour.raw.body);
    this.answer(mode, body, behaviour, req, res);
  }

  private answer(
    mode: FakeLlmMode,
    body: ChatRequestBody,
    behaviour: FakeLlmBehaviour,
    req: IncomingMessage,
    res: ServerResponse,
  ): void {
    const content = (): string => behaviour.content ?? this.reply(body);
    switch (mode) {
      case 'ok':
        if (behaviour.toolCalls) {
          const toolCalls = behaviour.toolCalls.map((call, i) => ({
            id: call.id ?? `chatcmpl-tool-${Math.random().toString(16).slice(2, 10)}${i}`,
            type: 'function',
            function: {
              name: call.name,
              arguments: typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments),
            },
          }));
          return json(
            res,
            200,
            completion(body, { content: behaviour.content ?? null, tool_calls: toolCalls }, 'tool_calls'),
          );
        }
        return json(res, 200, completion(body, { content: content() }, 'stop'));
      case 'reasoning':
        return json(
          res,
          200,
          completion(
            body,
            { content: content(), reasoning_content: REASONING_TEXT, reasoning: REASONING_TEXT },
            'stop',
          ),
        );
      case 'think':
        return json(
          res,
          200,
          completion(body, { content: `<think>\n${REASONING_TEXT}\n</think>\n\n${content()}` }, 'stop'),
        );
      case 'empty':
        return json(res, 200, completion(body, { content: behaviour.content ?? '  \n ' }, 'stop'));
      case 'truncated':
        return json(
          res,
          200,
          completion(body, { content: 'Thank you for your message. Our clinic is open from' }, 'length'),
        );
      case 'error500':
        return json(res, 500, vllmError('EngineCore encountered an issue.', 'InternalServerError', 500));
      case 'unavailable503':
        return json(res, 503, vllmError('The engine is not ready.', 'ServiceUnavailableError', 503));
      case 'context400':
        return json(
          res,
          400,
          vllmError(
            "This model's maximum context length is 16384 tokens. However, you requested 17020 tokens (16508 in the messages, 512 in the completion). Please reduce the length of the messages or completion.",
            'BadRequestError',
            400,
          ),
        );
      case 'badrequest400':
        return json(
          res,
          400,
          vllmError(
            `"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set; got ${lastUserText(body)}`,
            'BadRequestError',
            400,
          ),
        );
      case 'unauthorized401':
        return json(res, 401, { error: 'Unauthorized' });
      case 'notfound404':
        return notFound(res, body.model);
      case 'hang':
        return;
      case 'stall':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"id":"chatcmpl-stall","choices":[');
        return;
      case 'reset':
        req.socket.destroy();
        return;
      case 'notjson':
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>502 Bad Gateway</body></html>');
        return;
    }
  }
}

function completion(body: ChatRequestBody, message: Record<string, unknown>, finishReason: string): unknown {
  return {
    id: `chatcmpl-${Math.random().toString(16).slice(2)}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: body.model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', tool_calls: [], reasoning_content: null, ...message },
        logprobs: null,
        finish_reason: finishReason,
        stop_reason: null,
      },
    ],
    usage: { prompt_tokens: 96, completion_tokens: 18, total_tokens: 114, prompt_tokens_details: null },
    prompt_logprobs: null,
  };
}

function vllmError(message: string, type: string, code: number): unknown {
  return { error: { message, type, param: null, code } };
}

function notFound(res: ServerResponse, model: string): void {
  json(res, 404, {
    object: 'error',
    message: `The model \`${model}\` does not exist.`,
    type: 'NotFoundError',
    param: null,
    code: 404,
  });
}

function json(res: ServerResponse, status: number, payload: unknown): void {
  const text = JSON.stringify(payload);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function waitOrClose(res: ServerResponse, ms: number): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    res.once('close', done);
    function done(): void {
      clearTimeout(timer);
      res.off('close', done);
      resolve();
    }
  });
}
