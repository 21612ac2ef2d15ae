import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * 'before': the k-th command is dropped, never reaches Redis. 'after': Redis executes it, but the
 * connection dies before its reply reaches the client — the "did it happen?" case.
 */
export type CutMode = 'before' | 'after';

export interface SeenCommand {
  /** 1-based, over all connections, since the proxy started. */
  seq: number;
  /** Proxy connection number (1-based, in accept order). */
  connection: number;
  /** The client's CLIENT SETNAME, when it sent one before this command. */
  connectionName?: string;
  /** Upper-cased command name, e.g. EVALSHA. */
  name: string;
  /** The arguments after the name, each cut to 80 characters, at most 6 of them. */
  args: string[];
}

export interface CutRecord {
  k: number;
  mode: CutMode;
  command: SeenCommand;
}

export interface RespProxy {
  port: number;
  /** Commands counted since the proxy started. */
  readonly seen: number;
  /** Client connections currently open through the proxy. */
  readonly connections: number;
  /** Every command counted, in order. */
  readonly commands: readonly SeenCommand[];
  /** Cuts performed, in order. */
  readonly cuts: readonly CutRecord[];
  /** Cut every connection at the k-th command counted from now (one shot). */
  arm(k: number, mode: CutMode): void;
  disarm(): void;
  readonly armed: boolean;
  close(): Promise<void>;
}

interface Parsed {
  args: Buffer[];
  /** Offset just past the command. */
  end: number;
}

/** Offset of the CRLF that ends the line starting at `from`, or -1 when not buffered yet. */
const lineEnd = (buf: Buffer, from: number): number => buf.indexOf('\r\n', from, 'latin1');

/**
 * One client->server command at `pos`: an array of bulk strings (what every client library
 * sends), or an inline command line. Undefined while the command is not complete.
 */
export function parseCommand(buf: Buffer, pos: number): Parsed | undefined {
  if (pos >= buf.length) return undefined;
  if (buf[pos] !== 0x2a /* '*' */) {
    const end = lineEnd(buf, pos);
    if (end < 0) return undefined;
    const words = buf.toString('latin1', pos, end).trim().split(/\s+/).filter(Boolean);
    return { args: words.map((w) => Buffer.from(w, 'latin1')), end: end + 2 };
  }
  const headerEnd = lineEnd(buf, pos);
  if (headerEnd < 0) return undefined;
  const count = Number(buf.toString('latin1', pos + 1, headerEnd));
  if (!Number.isInteger(count) || count < 0) throw new Error(`bad RESP array header at ${pos}`);
  const args: Buffer[] = [];
  let at = headerEnd + 2;
  for (let i = 0; i < count; i++) {
    if (at >= buf.length) return undefined;
    if (buf[at] !== 0x24 /* '$' */) throw new Error(`expected a bulk string at ${at}`);
    const lenEnd = lineEnd(buf, at);
    if (lenEnd < 0) return undefined;
    const len = Number(buf.toString('latin1', at + 1, lenEnd));
    if (!Number.isInteger(len) || len < 0) throw new Error(`bad bulk length at ${at}`);
    const start = lenEnd + 2;
    if (buf.length < start + len + 2) return undefined;
    args.push(buf.subarray(start, start + len));
    at = start + len + 2;
  }
  return { args, end: at };
}

interface Link {
  id: number;
  name?: string;
  client: Socket;
  upstream: Socket;
  /** Client bytes not yet forming a whole command. */
  pending: Buffer;
  /** Once cut, nothing more flows either way. */
  cut: boolean;
}

const describeArg = (arg: Buffer): string => {
  const text = arg.toString('utf8');
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
};

/**
 * A TCP proxy in front of Redis that understands the client->server half of RESP: it counts and
 * records commands, and can cut every connection at a chosen command, before or after Redis ran
 * it. It keeps accepting connections after a cut, so clients reconnect as they would after a
 * network failure.
 */
export async function startRespProxy(upstream: { host: string; port: number }): Promise<RespProxy> {
  const links = new Set<Link>();
  const commands: SeenCommand[] = [];
  const cuts: CutRecord[] = [];
  let nextId = 1;
  let arming: { k: number; mode: CutMode; counted: number } | undefined;

  const destroy = (link: Link): void => {
    link.cut = true;
    link.client.destroy();
    link.upstream.destroy();
    links.delete(link);
  };

  const cutAll = (trigger: Link, forward: Buffer, mode: CutMode): void => {
    for (const link of [...links]) if (link !== trigger) destroy(link);
    trigger.cut = true;
    links.delete(trigger);
    // end() flushes what is forwarded (the commands before the k-th, and in 'after' mode the k-th
    // itself) before the FIN: Redis runs them, their replies are thrown away.
    trigger.upstream.end(forward);
    const finish = (): void => {
      trigger.client.destroy();
      trigger.upstream.destroy();
    };
    setTimeout(finish, 1000).unref();
    if (mode === 'before') {
      trigger.client.destroy();
      return;
    }
    // 'after': the client learns of the cut only when Redis closes its side, which it does after
    // running everything it read before our FIN: the k-th command has run by then.
    trigger.upstream.once('close', finish);
  };

  const onClientData = (link: Link, chunk: Buffer): void => {
    if (link.cut) return;
    const buf = link.pending.length > 0 ? Buffer.concat([link.pending, chunk]) : chunk;
    let pos = 0;
    for (;;) {
      let parsed: Parsed | undefined;
      try {
        parsed = parseCommand(buf, pos);
      } catch {
        destroy(link);
        return;
      }
      if (!parsed) break;
      const [nameArg, ...rest] = parsed.args;
      const name = nameArg ? nameArg.toString('latin1').toUpperCase() : '';
      if (name === 'CLIENT' && rest[0]?.toString('latin1').toUpperCase() === 'SETNAME' && rest[1]) {
        link.name = rest[1].toString('utf8');
      }
      const command: SeenCommand = {
        seq: commands.length + 1,
        connection: link.id,
        connectionName: link.name,
        name,
        args: rest.slice(0, 6).map(describeArg),
      };
      commands.push(command);
      if (arming) {
        arming.counted++;
        if (arming.counted === arming.k) {
          const { k, mode } = arming;
          arming = undefined;
          cuts.push({ k, mode, command });
          cutAll(link, buf.subarray(0, mode === 'after' ? parsed.end : pos), mode);
          return;
        }
      }
      pos = parsed.end;
    }
    if (pos > 0) link.upstream.write(buf.subarray(0, pos));
    link.pending = Buffer.from(buf.subarray(pos));
  };

  const server: Server = createServer((client) => {
    const link: Link = {
      id: nextId++,
      client,
      upstream: createConnection({ host: upstream.host, port: upstream.port }),
      pending: Buffer.alloc(0),
      cut: false,
    };
    links.add(link);
    client.setNoDelay(true);
    link.upstream.setNoDelay(true);
    client.on('data', (chunk: Buffer) => onClientData(link, chunk));
    link.upstream.on('data', (chunk: Buffer) => {
      if (!link.cut) client.write(chunk);
    });
    // A failure on either side ends the pair, as a broken network path would.
    for (const socket of [client, link.upstream]) {
      socket.on('error', () => undefined);
      socket.on('close', () => {
        if (!link.cut) destroy(link);
      });
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  return {
    port,
    get seen() {
      return commands.length;
    },
    get connections() {
      return links.size;
    },
    commands,
    cuts,
    get armed() {
      return arming !== undefined;
    },
    arm(k, mode) {
      if (!Number.isInteger(k) || k < 1) throw new Error(`k must be a positive integer, got ${k}`);
      arming = { k, mode, counted: 0 };
    },
    disarm() {
      arming = undefined;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const link of [...links]) destroy(link);
        server.close(() => resolve());
      }),
  };
}
