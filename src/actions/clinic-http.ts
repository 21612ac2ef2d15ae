import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { type Socket } from 'node:net';

/** An answer of a few KB is what a booking system sends; more is not for a WhatsApp assistant. */
export const MAX_CLINIC_RESPONSE_BYTES = 256 * 1024;

export interface ClinicHttpRequest {
  base: URL;
  method: string;
  /** Path and query, already encoded: sent as it is, never parsed or normalised again. */
  path: string;
  headers: Record<string, string>;
  body?: string;
  timeoutMs: number;
}

export type ClinicHttpOutcome =
  | { kind: 'response'; status: number; body: string }
  /**
   * No answer. `written`: the whole request reached a connected socket, so the clinic may have
   * acted on it; otherwise it certainly did not (refused, DNS, a timeout while connecting).
   */
  | { kind: 'failed'; written: boolean; timedOut: boolean; code?: string };

/**
 * One request to the clinic's API with node:http(s) rather than axios: only here do we learn when
 * the request finished writing, which decides whether a side-effecting call that got no answer may
 * have been done (never repeated then) or certainly was not. No keep-alive: a stale pooled socket
 * would turn a harmless retry into an unknown outcome. No redirects followed.
 */
export function clinicHttp(req: ClinicHttpRequest): Promise<ClinicHttpOutcome> {
  return new Promise((resolve) => {
    let connected = false;
    let finished = false;
    let written = false;
    let timedOut = false;
    let settled = false;
    const settle = (outcome: ClinicHttpOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const send = req.base.protocol === 'https:' ? httpsRequest : httpRequest;
    const headers: Record<string, string> = { ...req.headers };
    if (req.body !== undefined) headers['content-length'] = String(Buffer.byteLength(req.body));
    const outgoing = send({
      protocol: req.base.protocol,
      hostname: req.base.hostname.replace(/^\[|\]$/g, ''),
      port: req.base.port || undefined,
      method: req.method,
      path: req.path,
      headers,
      agent: false,
    });
    const timer = setTimeout(() => {
      timedOut = true;
      outgoing.destroy(new Error('timeout'));
    }, req.timeoutMs);
    outgoing.on('socket', (socket: Socket) => {
      const ready = (): void => {
        connected = true;
        written = finished;
      };
      if (!socket.connecting) ready();
      socket.once(req.base.protocol === 'https:' ? 'secureConnect' : 'connect', ready);
    });
    // 'finish' alone fires even before the socket connects: the bytes are only buffered then.
    outgoing.on('finish', () => {
      finished = true;
      written = connected;
    });
    outgoing.on('error', (err: NodeJS.ErrnoException) => {
      settle({ kind: 'failed', written, timedOut, code: timedOut ? 'ETIMEDOUT' : err.code });
    });
    outgoing.on('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_CLINIC_RESPONSE_BYTES) {
          res.destroy();
          settle({ kind: 'response', status: res.statusCode ?? 0, body: '' });
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () =>
        settle({ kind: 'response', status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
      // The clinic answered; a body cut short still carries the status.
      res.on('error', () => settle({ kind: 'response', status: res.statusCode ?? 0, body: '' }));
      res.on('aborted', () => settle({ kind: 'failed', written: true, timedOut, code: 'ECONNRESET' }));
    });
    outgoing.end(req.body);
  });
}
