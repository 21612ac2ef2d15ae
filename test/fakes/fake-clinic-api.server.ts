import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { type AddressInfo, type Socket } from 'node:net';

export interface RecordedClinicRequest {
  method: string;
  /** The request target exactly as it arrived (path and query, still encoded). */
  url: string;
  headers: IncomingHttpHeaders;
  body: unknown;
}

export interface FakeSlot {
  id: string;
  date: string;
  time: string;
  free: boolean;
}

export interface FakeBooking {
  id: string;
  slotId: string;
  patientName: string;
  status: 'booked' | 'cancelled';
}

/**
 * A clinic's booking system on 127.0.0.1, under `/api`: free slots, bookings (an Idempotency-Key
 * replays the first answer instead of booking again), a patient's appointments. It records every
 * request as it arrived and can hang after reading a request (the call was written, no answer
 * comes) or answer 503 (the system is down).
 *
 *   GET    /api/slots?date=YYYY-MM-DD          → { slots: [{ id, date, time }] } (free ones)
 *   POST   /api/bookings { slotId, patientName } → 201 booking | 409 slot taken
 *   PUT    /api/bookings/:id { slotId }        → booking moved | 404 | 409
 *   DELETE /api/bookings/:id                   → booking cancelled | 404
 *   GET    /api/bookings/:id                   → booking | 404
 *   GET    /api/appointments?patientName=…     → { appointments: [booking…] }
 */
export class FakeClinicApi {
  readonly requests: RecordedClinicRequest[] = [];
  slots: FakeSlot[] = [];
  readonly bookings: FakeBooking[] = [];
  /** Requests still to hang (read fully, never answered), matched by `METHOD /path` prefix. */
  private hangs: { match: string; times: number }[] = [];
  /** Answer 503 to everything while true. */
  down = false;
  /** How long every answer takes, as a real clinic system's would (benchmarks). */
  latencyMs = 0;
  private readonly replays = new Map<string, { status: number; body: unknown }>();
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;
  private port = 0;

  private constructor() {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    this.reset();
  }

  static async start(): Promise<FakeClinicApi> {
    const fake = new FakeClinicApi();
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    fake.port = (fake.server.address() as AddressInfo).port;
    return fake;
  }

  /** CLINIC_API_BASE_URL. */
  get url(): string {
    return `http://127.0.0.1:${this.port}/api`;
  }

  reset(): void {
    this.requests.length = 0;
    this.bookings.length = 0;
    this.replays.clear();
    this.hangs = [];
    this.down = false;
    this.latencyMs = 0;
    this.slots = [
      { id: 'slot-0900', date: '2030-01-06', time: '09:00', free: true },
      { id: 'slot-1030', date: '2030-01-06', time: '10:30', free: true },
      { id: 'slot-1400', date: '2030-01-07', time: '14:00', free: true },
    ];
  }

  /** The next `times` requests starting with `match` (`POST /api/bookings`) are read, never answered. */
  hang(match: string, times = 1): void {
    this.hangs.push({ match, times });
  }

  /** Requests whose `METHOD url` starts with `prefix`. */
  requestsTo(prefix: string): RecordedClinicRequest[] {
    return this.requests.filter((r) => `${r.method} ${r.url}`.startsWith(prefix));
  }

  /** How many requests carried each Idempotency-Key. */
  idempotencyKeys(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const r of this.requests) {
      const key = r.headers['idempotency-key'];
      if (typeof key === 'string') counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return counts;
  }

  async waitForRequests(prefix: string, count: number, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.requestsTo(prefix).length < count) {
      if (Date.now() > deadline)
        throw new Error(`fake clinic got ${this.requestsTo(prefix).length} of ${count} ${prefix}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await new Promise<string>((resolve) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    let body: unknown = raw;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      // recorded as text
    }
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    this.requests.push({ method, url, headers: req.headers, body });
    const hang = this.hangs.find((h) => h.times > 0 && `${method} ${url}`.startsWith(h.match));
    if (hang) {
      hang.times--;
      return;
    }
    if (this.latencyMs > 0) await new Promise((r) => setTimeout(r, this.latencyMs));
    if (this.down) return send(res, 503, { error: 'maintenance' });
    const key = req.headers['idempotency-key'];
    if (typeof key === 'string' && this.replays.has(key)) {
      const replay = this.replays.get(key)!;
      return send(res, replay.status, replay.body);
    }
    const answer = this.route(method, url, body as Record<string, unknown> | undefined);
    if (typeof key === 'string' && answer.status < 500) this.replays.set(key, answer);
    send(res, answer.status, answer.body);
  }

  private route(method: string, url: string, body: Record<string, unknown> = {}): { status: number; body: unknown } {
    const parsed = new URL(url, 'http://clinic');
    const path = parsed.pathname;
    if (method === 'GET' && path === '/api/slots') {
      const date = parsed.searchParams.get('date');
      const slots = this.slots.filter((s) => s.free && (!date || s.date === date));
      return { status: 200, body: { slots: slots.map(({ id, date: d, time }) => ({ id, date: d, time })) } };
    }
    if (method === 'GET' && path === '/api/appointments') {
      const name = parsed.searchParams.get('patientName');
      return { status: 200, body: { appointments: this.bookings.filter((b) => b.patientName === name) } };
    }
    if (method === 'POST' && path === '/api/bookings') {
      const slot = this.slots.find((s) => s.id === body.slotId);
      if (!slot) return { status: 404, body: { error: 'no such slot' } };
      if (!slot.free) return { status: 409, body: { error: 'slot already taken' } };
      slot.free = false;
      const booking: FakeBooking = {
        id: `bk-${this.bookings.length + 1}`,
        slotId: slot.id,
        patientName: String(body.patientName),
        status: 'booked',
      };
      this.bookings.push(booking);
      return { status: 201, body: { booking, slot } };
    }
    const match = /^\/api\/bookings\/([^/]+)$/.exec(url.split('?')[0]);
    const booking = match ? this.bookings.find((b) => b.id === decodeURIComponent(match[1])) : undefined;
    if (match && !booking) return { status: 404, body: { error: 'no such booking' } };
    if (booking && method === 'GET') return { status: 200, body: { booking } };
    if (booking && method === 'DELETE') {
      booking.status = 'cancelled';
      const slot = this.slots.find((s) => s.id === booking.slotId);
      if (slot) slot.free = true;
      return { status: 200, body: { booking } };
    }
    if (booking && method === 'PUT') {
      const slot = this.slots.find((s) => s.id === body.slotId);
      if (!slot?.free) return { status: 409, body: { error: 'slot not free' } };
      const old = this.slots.find((s) => s.id === booking.slotId);
      if (old) old.free = true;
      slot.free = false;
      booking.slotId = slot.id;
      return { status: 200, body: { booking } };
    }
    return { status: 404, body: { error: 'not found' } };
  }
}

function send(res: ServerResponse, status: number, payload: unknown): void {
  const text = JSON.stringify(payload);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}
