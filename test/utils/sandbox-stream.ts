import { randomBytes } from 'node:crypto';
import { wamidFrom } from '../../src/sandbox/sandbox-wamid';
import { envelope } from './meta-payloads';

export interface StreamEvent {
  event: string;
  data: any;
}

/**
 * A client of GET /sandbox/api/events, as the page's EventSource: collects the events it reads
 * (named, with JSON data) and lets a test wait for one.
 */
export class SandboxEventStream {
  readonly events: StreamEvent[] = [];
  /** The response ended (the server closed the stream). */
  ended = false;
  private readonly abort = new AbortController();
  private waiters: (() => void)[] = [];
  private done?: Promise<void>;

  /** The answer's status and content type. */
  status = 0;
  contentType: string | null = null;

  static async open(baseUrl: string, waId: string): Promise<SandboxEventStream> {
    const stream = new SandboxEventStream();
    const res = await fetch(`${baseUrl}/sandbox/api/events?waId=${encodeURIComponent(waId)}`, {
      signal: stream.abort.signal,
      headers: { accept: 'text/event-stream' },
    });
    stream.status = res.status;
    stream.contentType = res.headers.get('content-type');
    if (res.body) stream.done = stream.read(res.body);
    return stream;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    const reader = body.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          this.parse(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch {
      // aborted by close()
    } finally {
      this.ended = true;
      this.wake();
    }
  }

  private parse(block: string): void {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      if (line.startsWith('event: ')) event = line.slice('event: '.length);
      else if (line.startsWith('data: ')) data.push(line.slice('data: '.length));
    }
    if (data.length === 0) return;
    this.events.push({ event, data: JSON.parse(data.join('\n')) });
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Events named `event` so far. */
  named(event: string): any[] {
    return this.events.filter((e) => e.event === event).map((e) => e.data);
  }

  /** Resolves with the first event matching, waiting up to `timeoutMs`. */
  async waitFor(what: string, match: (e: StreamEvent) => boolean, timeoutMs = 15_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find(match);
      if (found) return found.data;
      if (this.ended) throw new Error(`stream ended before ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.events)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Resolves once the server has ended the stream, within `timeoutMs`. */
  async waitEnded(timeoutMs = 5_000): Promise<void> {
    await this.waitFor('the end of the stream', () => false, timeoutMs).catch((err: Error) => {
      if (!this.ended) throw err;
    });
  }

  async close(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}

/** A Meta-shaped inbound wamid from `waId` (the kind the page makes). */
export const pageWamid = (waId: string): string => wamidFrom(waId, randomBytes(10).toString('hex').toUpperCase());

/** A webhook carrying one message from `waId` as the page (and Meta) would post it. */
export function pageMessage(
  phoneNumberId: string,
  waId: string,
  message: Record<string, unknown>,
  options: { id?: string; timestamp?: number; name?: string } = {},
): { id: string; payload: Record<string, unknown> } {
  const id = options.id ?? pageWamid(waId);
  const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000));
  const payload = envelope(
    {
      contacts: [{ profile: { name: options.name ?? 'Sara' }, wa_id: waId }],
      messages: [{ from: waId, id, timestamp, ...message }],
    },
    phoneNumberId,
  );
  return { id, payload };
}

/** POST /webhook unsigned, as the page does against the sandbox. */
export async function postUnsigned(baseUrl: string, payload: unknown): Promise<number> {
  const res = await fetch(`${baseUrl}/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(payload),
  });
  await res.text();
  return res.status;
}
