import http from 'node:http';
import { type AddressInfo } from 'node:net';

/**
 * A pager or ticket system receiving ESCALATION_WEBHOOK_URL notices: a real HTTP server on
 * loopback that records every POST and answers the queued statuses (200 once the queue is empty).
 */
export class FakeEscalationHook {
  readonly received: { status: number; body: any }[] = [];
  private readonly statuses: number[] = [];

  private readonly server: http.Server;

  private constructor() {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const status = this.statuses.shift() ?? 200;
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          body = undefined;
        }
        this.received.push({ status, body });
        res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
      });
    });
  }

  static async start(): Promise<FakeEscalationHook> {
    const hook = new FakeEscalationHook();
    await new Promise<void>((resolve) => hook.server.listen(0, '127.0.0.1', resolve));
    return hook;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks/escalation`;
  }

  /** The next notices get these statuses, in order. */
  answer(...statuses: number[]): void {
    this.statuses.push(...statuses);
  }

  /** Notices that were accepted (2xx). */
  get accepted(): any[] {
    return this.received.filter((r) => r.status < 300).map((r) => r.body);
  }

  reset(): void {
    this.received.length = 0;
    this.statuses.length = 0;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
