import { type IncomingHttpHeaders, request as httpRequest } from 'node:http';

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

export interface RawRequest {
  method?: string;
  path: string;
  /** Omitted when undefined; content-length is set from the body unless `chunked` or `withholdBody`. */
  headers?: Record<string, string | string[] | number | undefined>;
  body?: Buffer | string;
  /**
   * Sent in pieces with Transfer-Encoding: chunked. `paced` (512-byte pieces, each after the last
   * was written, stopping once the server answers) shows what the server does midway; `burst`
   * (64 KiB pieces handed to the socket at once) sends megabytes fast, and a server that refuses
   * early still gets its answer read before our writes fail.
   */
  chunked?: 'paced' | 'burst';
  /** Headers only (a declared content-length of 100,000 unless given): only an answer that needs no body arrives. */
  withholdBody?: boolean;
  timeoutMs?: number;
}

/**
 * One request over a fresh connection with node:http rather than fetch: any bytes as body, any
 * content type or none, a chunked body or one kept back. An answer that arrives before the whole
 * body was written (refused early, the connection closed) is still the answer.
 */
export function rawRequest(baseUrl: string, request: RawRequest): Promise<RawResponse> {
  const { hostname, port } = new URL(baseUrl);
  const method = request.method ?? 'POST';
  const timeoutMs = request.timeoutMs ?? 15_000;
  const body = request.body === undefined ? undefined : Buffer.from(request.body);
  const headers: Record<string, string | string[] | number> = {};
  for (const [name, value] of Object.entries(request.headers ?? {})) if (value !== undefined) headers[name] = value;
  if (request.chunked) headers['transfer-encoding'] = 'chunked';
  else if (request.withholdBody) headers['content-length'] ??= 100_000;
  else if (body) headers['content-length'] = body.length;
  return new Promise<RawResponse>((resolve, reject) => {
    let answered = false;
    const req = httpRequest({ hostname, port: Number(port), path: request.path, method, headers, agent: false });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms: ${method} ${request.path.slice(0, 200)}`));
    }, timeoutMs);
    req.on('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        req.destroy();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    // An early answer followed by a close makes the rest of our writes fail: the answer counts.
    req.on('error', (err) => {
      if (answered) return;
      clearTimeout(timer);
      reject(err);
    });
    if (request.withholdBody) {
      req.flushHeaders();
      return;
    }
    if (request.chunked === 'paced' && body) {
      void writePaced(req, body, () => answered);
      return;
    }
    if (request.chunked === 'burst' && body) {
      for (let at = 0; at < body.length; at += 65_536) req.write(body.subarray(at, at + 65_536));
      req.end();
      return;
    }
    req.end(body);
  });
}

async function writePaced(req: ReturnType<typeof httpRequest>, body: Buffer, stop: () => boolean): Promise<void> {
  for (let at = 0; at < body.length && !stop() && !req.destroyed; at += 512) {
    await new Promise<void>((resolve) => req.write(body.subarray(at, at + 512), () => resolve()));
  }
  if (!req.destroyed) req.end();
}
