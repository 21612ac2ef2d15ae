import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { type AddressInfo, type Socket } from 'node:net';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { type CallToolResult, CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { IDEMPOTENCY_META_KEY } from '../../src/actions/mcp-tools';
import { BOOK_APPOINTMENT, FIND_FREE_SLOTS } from '../utils/clinic-tools';

export interface RecordedMcpCall {
  name: string;
  arguments: Record<string, unknown>;
  /** The request's `_meta`, as it arrived. */
  meta?: Record<string, unknown>;
  idempotencyKey?: string;
}

interface Slot {
  id: string;
  date: string;
  time: string;
  free: boolean;
}

/**
 * The tools it lists: the clinic's booking tools (test/utils/clinic-tools.ts, as the HTTP actions
 * declare them too) and two a client must not offer (a schema that does not compile, a name no LLM
 * accepts). Raw JSON Schemas on purpose: the SDK's McpServer takes zod schemas only, and these must
 * be exact — a draft-07 schema as the SDK's servers emit, one naming no dialect (2020-12 for MCP).
 */
export const FAKE_MCP_TOOLS = [
  {
    name: FIND_FREE_SLOTS.name,
    description: FIND_FREE_SLOTS.description,
    inputSchema: { $schema: 'http://json-schema.org/draft-07/schema#', ...FIND_FREE_SLOTS.parameters },
    annotations: { readOnlyHint: true },
  },
  {
    // No annotations: MCP's defaults say it may change things.
    name: BOOK_APPOINTMENT.name,
    description: BOOK_APPOINTMENT.description,
    inputSchema: BOOK_APPOINTMENT.parameters,
  },
  {
    name: 'broken_schema',
    description: 'A tool whose schema misspells a type.',
    inputSchema: { type: 'object', properties: { a: { type: 'strin' } } },
    annotations: { readOnlyHint: true },
  },
  {
    name: 'clinic.staff',
    description: 'A dotted name: valid in MCP, not as an LLM function name.',
    inputSchema: { type: 'object' },
    annotations: { readOnlyHint: true },
  },
];

/**
 * A clinic's MCP server on 127.0.0.1 (`/mcp`), built with the SDK's server side: a Server per
 * session on a StreamableHTTPServerTransport (stateful, with session ids), on node:http. The same
 * booking system as FakeClinicApi, as tools: free slots and bookings. A call with a known
 * idempotency key (`_meta`) answers like the first and books nothing. It records every call and
 * can hang a tool's next calls (read, never answered).
 */
export class FakeMcpServer {
  readonly calls: RecordedMcpCall[] = [];
  /** tools/list requests answered. */
  listings = 0;
  slots: Slot[] = [];
  readonly bookings: { id: string; slotId: string; patientName: string }[] = [];
  private hangs: { name: string; times: number }[] = [];
  private readonly replays = new Map<string, CallToolResult>();
  private readonly sessions = new Map<string, StreamableHTTPServerTransport>();
  private readonly sockets = new Set<Socket>();
  private readonly http: HttpServer;
  private port = 0;

  private constructor() {
    this.http = createServer((req, res) => void this.handle(req, res));
    this.http.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    this.reset();
  }

  static async start(port = 0): Promise<FakeMcpServer> {
    const fake = new FakeMcpServer();
    await new Promise<void>((resolve) => fake.http.listen(port, '127.0.0.1', resolve));
    fake.port = (fake.http.address() as AddressInfo).port;
    return fake;
  }

  /** MCP_SERVER_URL. */
  get url(): string {
    return `http://127.0.0.1:${this.port}/mcp`;
  }

  reset(): void {
    this.calls.length = 0;
    this.bookings.length = 0;
    this.replays.clear();
    this.hangs = [];
    this.slots = [
      { id: 'slot-0900', date: '2030-01-06', time: '09:00', free: true },
      { id: 'slot-1030', date: '2030-01-06', time: '10:30', free: true },
    ];
  }

  /** The next `times` calls of `name` are read and never answered. */
  hang(name: string, times = 1): void {
    this.hangs.push({ name, times });
  }

  callsTo(name: string): RecordedMcpCall[] {
    return this.calls.filter((c) => c.name === name);
  }

  /** How many calls carried each idempotency key. */
  idempotencyKeys(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const { idempotencyKey: key } of this.calls) if (key) counts.set(key, (counts.get(key) ?? 0) + 1);
    return counts;
  }

  async close(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((t) => t.close().catch(() => undefined)));
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (new URL(req.url ?? '/', 'http://mcp').pathname !== '/mcp') {
      res.writeHead(404).end();
      return;
    }
    const sessionId = req.headers['mcp-session-id'];
    if (typeof sessionId === 'string') {
      const known = this.sessions.get(sessionId);
      if (!known) {
        // As the transport specifies for a session the server no longer knows.
        res
          .writeHead(404, { 'content-type': 'application/json' })
          .end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null }));
        return;
      }
      await known.handleRequest(req, res);
      return;
    }
    // No session yet: only an initialize request opens one (the transport refuses anything else).
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => void this.sessions.set(id, transport),
    });
    transport.onclose = () => {
      if (transport.sessionId) this.sessions.delete(transport.sessionId);
    };
    await this.newServer().connect(transport);
    await transport.handleRequest(req, res);
  }

  private newServer(): Server {
    const server = new Server({ name: 'fake-clinic-mcp', version: '1.0.0' }, { capabilities: { tools: {} } });
    server.setRequestHandler(ListToolsRequestSchema, () => {
      this.listings++;
      return { tools: FAKE_MCP_TOOLS };
    });
    server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
      const { name, _meta: meta } = request.params;
      const args = request.params.arguments ?? {};
      const key = meta?.[IDEMPOTENCY_META_KEY];
      this.calls.push({
        name,
        arguments: args,
        meta,
        idempotencyKey: typeof key === 'string' ? key : undefined,
      });
      const hang = this.hangs.find((h) => h.times > 0 && h.name === name);
      if (hang) {
        hang.times--;
        // Until the client gives up (notifications/cancelled) or the server closes.
        await new Promise((resolve) => extra.signal.addEventListener('abort', resolve, { once: true }));
        return text({ hung: true }, true);
      }
      if (typeof key === 'string' && this.replays.has(key)) return this.replays.get(key)!;
      const result = this.tool(name, args);
      if (typeof key === 'string') this.replays.set(key, result);
      return result;
    });
    return server;
  }

  private tool(name: string, args: Record<string, unknown>): CallToolResult {
    if (name === 'find_free_slots') {
      const slots = this.slots.filter((s) => s.free && s.date === args.date);
      const value = { slots: slots.map(({ id, date, time }) => ({ id, date, time })) };
      return { ...text(value), structuredContent: value };
    }
    if (name === 'book_appointment') {
      const slot = this.slots.find((s) => s.id === args.slotId);
      if (!slot) return text({ error: 'no such slot' }, true);
      if (!slot.free) return text({ error: 'slot already taken' }, true);
      slot.free = false;
      const booking = { id: `bk-${this.bookings.length + 1}`, slotId: slot.id, patientName: String(args.patientName) };
      this.bookings.push(booking);
      return text({ booking, slot: { id: slot.id, date: slot.date, time: slot.time } });
    }
    return text({ error: `no tool ${name}` }, true);
  }
}

function text(value: unknown, isError = false): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(value) }], ...(isError && { isError }) };
}
