import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressInfo, type Socket } from 'node:net';

/**
 * What the fake does with one request to a messages endpoint (after authentication), taken from
 * a queue in arrival order; an empty queue means success. `delayMs` delays any answer (latency).
 * - graph-error: a Graph error body `{ error: { code, message, type, fbtrace_id } }`, HTTP 400 by default.
 * - status: a bare HTTP status with a non-Graph body (e.g. 429 from a gateway, 500 from a proxy).
 *   `delivered`: Meta accepted the message before the failure (a 5xx "with having sent"): it gets
 *   a wamid, recorded like a successful send, that the caller never sees.
 * - hang: read the whole request, never answer (the client times out: unknown outcome).
 * - destroy-after-body: read the whole request, then destroy the socket (unknown outcome).
 */
export type FakeGraphBehaviour =
  | { kind: 'ok'; delayMs?: number }
  | { kind: 'graph-error'; code: number; message?: string; httpStatus?: number; delayMs?: number }
  | { kind: 'status'; httpStatus: number; body?: string; delayMs?: number; delivered?: boolean }
  | { kind: 'hang' }
  | { kind: 'destroy-after-body'; delayMs?: number };

export interface RecordedRequest {
  seq: number;
  method: string;
  path: string;
  /** 'meta' for /{version}/{phoneNumberId}/messages, '360dialog' for /messages. */
  provider: 'meta' | '360dialog' | 'unknown';
  /** A text/template send, a mark-read (`status: 'read'`), or anything else. */
  type: 'send' | 'read' | 'other';
  headers: IncomingHttpHeaders;
  rawBody: Buffer;
  /** The parsed JSON body (undefined when it was not JSON). */
  body: any;
  /** The wamid of a send Meta accepted: answered when it succeeded, unseen by the caller when `delivered`. */
  wamid?: string;
  behaviour: FakeGraphBehaviour['kind'] | 'unauthorized' | 'not-found';
}

export interface FakeGraphOptions {
  accessToken?: string;
  d360ApiKey?: string;
}

const META_PATH = /^\/(v\d+\.\d+)\/(\d+)\/messages$/;

/**
 * A fake of the Cloud API send endpoint (Meta Graph and 360dialog): a real HTTP server on
 * 127.0.0.1 with a random port. Records every request in order and answers like Meta.
 */
export class FakeGraphServer {
  readonly requests: RecordedRequest[] = [];
  /**
   * A behaviour chosen from the request itself when the queue is empty (a throttled period, a
   * flaky recipient); undefined means success.
   */
  behaviourFor?: (request: RecordedRequest) => FakeGraphBehaviour | undefined;
  private readonly queue: FakeGraphBehaviour[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly events = new EventEmitter();
  private readonly server: http.Server;
  private seq = 0;
  private listeningPort = 0;

  private constructor(private readonly options: Required<FakeGraphOptions>) {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  static async start(options: FakeGraphOptions = {}): Promise<FakeGraphServer> {
    const fake = new FakeGraphServer({
      accessToken: options.accessToken ?? 'test-meta-token',
      d360ApiKey: options.d360ApiKey ?? 'test-d360-key',
    });
    await fake.listen(0);
    return fake;
  }

  get port(): number {
    return this.listeningPort;
  }

  /** Base URL, for META_GRAPH_URL and D360_BASE_URL. */
  get url(): string {
    return `http://127.0.0.1:${this.listeningPort}`;
  }

  /** Queues behaviours for the next requests, in order. */
  enqueue(...behaviours: FakeGraphBehaviour[]): void {
    this.queue.push(...behaviours);
  }

  /** Text and template sends only (not mark-reads), in arrival order. */
  sends(): RecordedRequest[] {
    return this.requests.filter((r) => r.type === 'send');
  }

  markReads(): RecordedRequest[] {
    return this.requests.filter((r) => r.type === 'read');
  }

  /** Resolves once at least `n` sends were received (answered or not); rejects after `timeoutMs`. */
  async waitForSends(n: number, timeoutMs = 5000): Promise<RecordedRequest[]> {
    if (this.sends().length >= n) return this.sends();
    return new Promise((resolve, reject) => {
      const onRequest = (): void => {
        if (this.sends().length < n) return;
        clearTimeout(timer);
        this.events.off('request', onRequest);
        resolve(this.sends());
      };
      const timer = setTimeout(() => {
        this.events.off('request', onRequest);
        reject(new Error(`fake graph: ${this.sends().length} sends after ${timeoutMs} ms, expected ${n}`));
      }, timeoutMs);
      this.events.on('request', onRequest);
    });
  }

  /** Calls `listener` for every request as it arrives (benchmarks time sends with it). */
  onRequest(listener: (request: RecordedRequest) => void): void {
    this.events.on('request', () => listener(this.requests[this.requests.length - 1]));
  }

  /** Forgets recorded requests, queued behaviours and behaviourFor. */
  reset(): void {
    this.requests.length = 0;
    this.queue.length = 0;
    this.behaviourFor = undefined;
  }

  /**
   * Stops listening and drops every open connection (keep-alive ones included): new connections
   * are refused until `startListening()` reopens the same port.
   */
  async stopListening(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  async startListening(): Promise<void> {
    await this.listen(this.listeningPort);
  }

  async close(): Promise<void> {
    if (!this.server.listening) {
      for (const socket of this.sockets) socket.destroy();
      return;
    }
    await this.stopListening();
  }

  private listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        this.listeningPort = (this.server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawBody = await readBody(req);
    const path = (req.url ?? '/').split('?')[0];
    const provider = META_PATH.test(path) ? 'meta' : path === '/messages' ? '360dialog' : 'unknown';
    const body = parseJson(rawBody);
    const record: RecordedRequest = {
      seq: ++this.seq,
      method: req.method ?? 'GET',
      path,
      provider,
      type: req.method === 'POST' && provider !== 'unknown' ? requestType(body) : 'other',
      headers: req.headers,
      rawBody,
      body,
      behaviour: 'ok',
    };
    this.requests.push(record);

    if (req.method !== 'POST' || provider === 'unknown') {
      record.behaviour = 'not-found';
      this.events.emit('request');
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('Not Found');
      return;
    }
    if (!this.authorized(provider, req.headers)) {
      record.behaviour = 'unauthorized';
      this.events.emit('request');
      return json(res, 401, graphError(190, 'Error validating access token: Session has expired'));
    }
    const behaviour = this.queue.shift() ?? this.behaviourFor?.(record) ?? { kind: 'ok' };
    record.behaviour = behaviour.kind;
    const delivered = behaviour.kind === 'ok' || (behaviour.kind === 'status' && behaviour.delivered === true);
    if (delivered && record.type === 'send') {
      record.wamid = `wamid.FAKE_${record.seq}_${randomBytes(6).toString('hex')}`;
    }
    this.events.emit('request');
    await this.respond(behaviour, record, req, res);
  }

  private async respond(
    behaviour: FakeGraphBehaviour,
    record: RecordedRequest,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    if (behaviour.kind === 'hang') return;
    if (behaviour.delayMs) await new Promise((r) => setTimeout(r, behaviour.delayMs));
    switch (behaviour.kind) {
      case 'destroy-after-body':
        req.socket.destroy();
        return;
      case 'graph-error':
        return json(res, behaviour.httpStatus ?? 400, graphError(behaviour.code, behaviour.message ?? 'Fake error'));
      case 'status':
        res.writeHead(behaviour.httpStatus, { 'content-type': 'text/plain' });
        res.end(behaviour.body ?? http.STATUS_CODES[behaviour.httpStatus] ?? 'error');
        return;
      case 'ok':
        if (record.type !== 'send') return json(res, 200, { success: true });
        return json(res, 200, {
          messaging_product: 'whatsapp',
          contacts: [{ input: recipientOf(record.body), wa_id: recipientOf(record.body) }],
          messages: [{ id: record.wamid }],
        });
    }
  }

  private authorized(provider: 'meta' | '360dialog', headers: IncomingHttpHeaders): boolean {
    if (provider === 'meta') return headers.authorization === `Bearer ${this.options.accessToken}`;
    return headers['d360-api-key'] === this.options.d360ApiKey;
  }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', () => resolve(Buffer.concat(chunks)));
  });
}

function parseJson(raw: Buffer): any {
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    return undefined;
  }
}

function requestType(body: any): RecordedRequest['type'] {
  if (body?.status === 'read') return 'read';
  if (body?.type === 'text' || body?.type === 'template') return 'send';
  return 'other';
}

function recipientOf(body: any): string {
  return String(body?.to ?? body?.recipient ?? '');
}

function graphError(code: number, message: string): Record<string, unknown> {
  return {
    error: {
      message: `(#${code}) ${message}`,
      type: 'OAuthException',
      code,
      fbtrace_id: `AFakeTrace${randomBytes(6).toString('hex')}`,
    },
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
