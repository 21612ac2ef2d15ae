import { AsyncLocalStorage } from 'node:async_hooks';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { type FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { MAX_CLINIC_RESPONSE_BYTES } from './clinic-http';

/** What became of one MCP request, as the fetch that carried it saw it. */
export interface McpRequestProbe {
  /**
   * The whole request reached a connected socket: the server may have acted on it. False when it
   * certainly did not (refused, DNS, a timeout while connecting).
   */
  written: boolean;
}

const probes = new AsyncLocalStorage<McpRequestProbe>();

/**
 * Runs `send` (one SDK request) so that the fetch it makes records whether its request was
 * written. The SDK hands its transport no per-request context, but it calls fetch inside the call
 * of `send`, so the async context carries the probe there.
 */
export function probed<T>(probe: McpRequestProbe, send: () => Promise<T>): Promise<T> {
  return probes.run(probe, send);
}

/**
 * The fetch the MCP transport uses: node:http(s) rather than the global fetch, for the same reasons
 * as clinicHttp. Only here do we learn when a request finished writing, which tells a booking that
 * may have been done (never repeated) from one that certainly was not; and without keep-alive no
 * stale pooled socket turns a harmless retry into an unknown outcome. Redirects are returned as
 * they are (the SDK decides), and a POST's answer is cut past MAX_CLINIC_RESPONSE_BYTES: the
 * long-lived GET stream of server notifications is not.
 */
export const mcpFetch: FetchLike = (url, init = {}) =>
  new Promise<Response>((resolve, reject) => {
    const target = new URL(url);
    const probe = probes.getStore();
    const method = (init.method ?? 'GET').toUpperCase();
    if (init.body !== undefined && init.body !== null && typeof init.body !== 'string') {
      return reject(new TypeError('mcpFetch sends text bodies only'));
    }
    const body = init.body ?? undefined;
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((value, key) => (headers[key] = value));
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const outgoing = send(target, { method, headers, agent: false, signal: init.signal ?? undefined });
    let connected = false;
    let finished = false;
    const mark = (): void => {
      if (probe && connected && finished) probe.written = true;
    };
    outgoing.on('socket', (socket: Socket) => {
      const ready = (): void => {
        connected = true;
        mark();
      };
      if (!socket.connecting) ready();
      else socket.once(target.protocol === 'https:' ? 'secureConnect' : 'connect', ready);
    });
    // 'finish' alone fires even before the socket connects: the bytes are only buffered then.
    outgoing.on('finish', () => {
      finished = true;
      mark();
    });
    // Shaped like the global fetch's failure, which the SDK and its callers expect.
    outgoing.on('error', (err) => reject(new TypeError('fetch failed', { cause: err })));
    outgoing.on('response', (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      const responseHeaders = new Headers();
      for (let i = 0; i + 1 < res.rawHeaders.length; i += 2)
        responseHeaders.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
      if (method === 'POST') {
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_CLINIC_RESPONSE_BYTES) res.destroy(new Error('the MCP server answered too much'));
        });
      }
      const empty = method === 'HEAD' || status === 204 || status === 205 || status === 304;
      if (empty) res.resume();
      try {
        // Node's web stream and the global one are the same class under two type declarations.
        const stream = empty ? null : (Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>);
        resolve(
          new Response(stream, {
            status,
            statusText: res.statusMessage,
            headers: responseHeaders,
          }),
        );
      } catch (err) {
        // A status fetch cannot represent (below 200 or above 599).
        res.destroy();
        reject(new TypeError('fetch failed', { cause: err }));
      }
    });
    outgoing.end(body);
  });
