import { Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  type CallToolResult,
  CallToolResultSchema,
  type ContentBlock,
  ErrorCode,
  McpError,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import Ajv, { type ValidateFunction } from 'ajv';
import Ajv2020 from 'ajv/dist/2020';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { type ToolResult } from '../conversation/turn.types';
import { type LlmTool } from '../llm/llm.client';
import { LlmSetupError } from '../llm/llm-setup.error';
import { AppLogger } from '../logging/app-logger';
import { ACTION_NAME, SCHEMA_OPTIONS, withFormats } from './action-catalog';
import { mcpFetch, probed, type McpRequestProbe } from './mcp-http';
import { capped, timedOut, UNAVAILABLE_STATUSES, unavailable, unknownOutcome } from './tool-result';

/**
 * Where a side-effecting call carries its idempotency key. MCP has no header per call; `_meta` is
 * the request's own extension point, and a reverse-DNS prefix keeps the name ours. The value is
 * `<turn id>.<round>.<call index>`, exactly the HTTP path's Idempotency-Key.
 */
export const IDEMPOTENCY_META_KEY = 'io.tawasul/idempotency-key';

/** A tool list longer than this many pages is a server looping on its cursor. */
const MAX_LIST_PAGES = 20;
/** Listing again after a failed start-up listing: from this delay, doubling, up to the cap. */
const RELIST_FIRST_MS = 1000;
const RELIST_MAX_MS = 60_000;
/** Ending the session at shutdown is a courtesy to the server: never worth more than this. */
const TERMINATE_WAIT_MS = 1000;
/** Past a call's own limit, for its rejection to settle before its client is closed. */
const RETIRE_MARGIN_MS = 1000;

/** One tool of the MCP server, offered to the LLM, with its argument schema compiled once. */
export interface McpTool {
  name: string;
  description: string;
  parameters: Record<string, unknown>;
  /** Sent with the idempotency key, never repeated when unsure: see sideEffectsOf. */
  sideEffects: boolean;
  validate: ValidateFunction;
}

export interface McpCatalog {
  tools: McpTool[];
  /** Tools not offered, each with the reason (for a warn log). */
  skipped: { name: string; reason: string }[];
  /** Tools named like a declared action. */
  clashes: string[];
}

/**
 * MCP annotations are hints whose defaults assume the worst (readOnlyHint false, destructiveHint
 * true): a tool that says nothing may change the clinic's records. Only a tool that declares
 * itself read-only is called without a key and may be asked again when unsure.
 */
export function sideEffectsOf(tool: Pick<Tool, 'annotations'>): boolean {
  return tool.annotations?.readOnlyHint !== true;
}

/**
 * The listed tools as the catalog offered to the LLM, under the rules of declared actions: a
 * function name the LLM accepts, a description, an object schema that compiles strictly. A tool
 * that breaks one is skipped (never offered: a tool the process cannot validate is not called).
 * Schemas are compiled in the dialect they name: draft-07 (what the SDK's own servers emit) or,
 * as MCP specifies for a schema naming none, 2020-12.
 */
export function catalogOf(listed: readonly Tool[], declared: ReadonlySet<string>): McpCatalog {
  const draft07 = withFormats(new Ajv(SCHEMA_OPTIONS));
  const draft2020 = withFormats(new Ajv2020(SCHEMA_OPTIONS));
  const catalog: McpCatalog = { tools: [], skipped: [], clashes: [] };
  const seen = new Set<string>();
  for (const tool of listed) {
    const skip = (reason: string): void => void catalog.skipped.push({ name: tool.name, reason });
    if (!ACTION_NAME.test(tool.name)) {
      skip('name: an LLM function name is 1-64 letters, digits, _ or -');
      continue;
    }
    if (seen.has(tool.name)) {
      skip('name: listed twice');
      continue;
    }
    seen.add(tool.name);
    if (declared.has(tool.name)) {
      catalog.clashes.push(tool.name);
      continue;
    }
    const description = (tool.description ?? tool.title ?? tool.annotations?.title ?? '').trim();
    if (description === '') {
      skip('description: missing or empty');
      continue;
    }
    if (tool.execution?.taskSupport === 'required') {
      skip('execution: runs as a task only, which tawasul does not call');
      continue;
    }
    const schema = tool.inputSchema as Record<string, unknown>;
    if (schema?.type !== 'object') {
      skip('inputSchema: a JSON Schema with "type": "object"');
      continue;
    }
    const dialect = typeof schema.$schema === 'string' ? schema.$schema : '';
    let validate: ValidateFunction;
    try {
      validate = (/json-schema\.org\/draft-07\/schema/.test(dialect) ? draft07 : draft2020).compile(schema);
    } catch (err) {
      skip(`inputSchema: ${(err as Error).message.split('\n')[0]}`);
      continue;
    }
    catalog.tools.push({
      name: tool.name,
      description,
      parameters: schema,
      sideEffects: sideEffectsOf(tool),
      validate,
    });
  }
  return catalog;
}

/** A tool's answer as the LLM reads it: the shapes of the HTTP path, without an HTTP status. */
export function resultOfCall(result: CallToolResult): ToolResult {
  const value = valueOf(result);
  // isError: the tool ran and failed in a way the model can explain (no such booking, slot taken).
  if (result.isError === true) return { outcome: 'error', content: capped({ ok: false, error: value }) };
  return { outcome: 'ok', content: capped({ ok: true, result: value }) };
}

function valueOf(result: CallToolResult): unknown {
  if (result.structuredContent !== undefined) return result.structuredContent;
  const parts = (result.content ?? []).map(partOf);
  return parts.length === 1 ? parts[0] : parts;
}

function partOf(block: ContentBlock): unknown {
  if (block.type === 'text') return parseText(block.text);
  if (block.type === 'resource' && 'text' in block.resource) return parseText(block.resource.text);
  // Images, audio and links are nothing a WhatsApp text assistant can read: named, not inlined.
  const mimeType = 'mimeType' in block && typeof block.mimeType === 'string' ? ` ${block.mimeType}` : '';
  return `[${block.type}${mimeType}]`;
}

function parseText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * A call that got no usable answer, with the HTTP path's rules: a side-effecting call written to
 * the server is `unknown` (never repeated: the chat is handed over), whatever came next; a call
 * that never reached it is `unavailable` (the turn takes the holding path and calls again).
 */
export function failureOf(err: unknown, written: boolean, sideEffects: boolean): ToolResult {
  if (err instanceof StreamableHTTPError) {
    // The server's HTTP layer refused the request before any tool ran.
    const status = err.code;
    if (status === undefined || status === 404 || UNAVAILABLE_STATUSES.has(status)) return unavailable(status);
    return {
      outcome: 'error',
      status,
      content: JSON.stringify({ ok: false, status, error: "the clinic's system refused the request" }),
    };
  }
  const code = err instanceof McpError ? err.code : undefined;
  const timeout = code === Number(ErrorCode.RequestTimeout);
  const closed = code === Number(ErrorCode.ConnectionClosed);
  if (err instanceof McpError && !timeout && !closed) {
    // A JSON-RPC error from the server: it answered (an unknown tool, arguments it refused).
    return { outcome: 'error', content: capped({ ok: false, error: err.message }) };
  }
  if (sideEffects && written) return unknownOutcome();
  if (timeout) return timedOut();
  // An answer that is not a tool result at all: the server answered, uselessly.
  if (written && (err as Error | undefined)?.name === 'ZodError') {
    return { outcome: 'error', content: JSON.stringify({ ok: false, error: "the clinic's system answered wrongly" }) };
  }
  return unavailable();
}

/** The server forgot our session (it restarted): it refused the request unread. */
function sessionLost(err: unknown, client: Client): boolean {
  const transport = client.transport as StreamableHTTPClientTransport | undefined;
  return err instanceof StreamableHTTPError && err.code === 404 && transport?.sessionId !== undefined;
}

/**
 * The tools of the MCP server at MCP_SERVER_URL (Streamable HTTP), a second source of clinic
 * actions beside ACTIONS_FILE, under the same rules: schemas compiled once, arguments validated
 * before any call (ClinicActions does that for both sources), the idempotency key on
 * side-effecting calls (in `_meta`), unknown outcomes never repeated.
 *
 * Listed at start-up; a server down then does not stop the process: the listing is retried in the
 * background and its tools are offered once listed. A `tools/list_changed` notification lists
 * them again. Arguments and results are patient data: returned to the caller, never logged.
 */
@Injectable()
export class McpTools implements OnApplicationShutdown {
  private readonly url?: URL;
  private readonly logger: Logger;
  private catalog = new Map<string, McpTool>();
  private offered: LlmTool[] = [];
  private declared: ReadonlySet<string> = new Set();
  private listed = false;
  /** The connected client whose listing is the catalog. */
  private client?: Client;
  /** A connection being opened: one at a time, shared by whoever needs it. */
  private connecting?: Promise<Client>;
  private opening?: Client;
  /** Clients replaced while calls may still be in flight on them, each closed once those are over. */
  private readonly retired = new Map<Client, NodeJS.Timeout>();
  private relistTimer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly config: AppConfig,
    appLogger: AppLogger,
  ) {
    this.logger = appLogger.child('mcp');
    if (config.env.MCP_SERVER_URL) this.url = new URL(config.env.MCP_SERVER_URL);
  }

  /** Its tools are awaited: the server is configured and has not been listed yet. */
  get pending(): boolean {
    return this.url !== undefined && !this.listed;
  }

  /** The tools as the LLM sees them: none until listed. */
  get tools(): LlmTool[] {
    return this.offered;
  }

  get names(): string[] {
    return [...this.catalog.keys()];
  }

  tool(name: string): McpTool | undefined {
    return this.catalog.get(name);
  }

  /**
   * Connects and lists the tools, once, at start-up. A name that is also a declared action refuses
   * the start (one line, like every configuration error): prefixing would rename tools the clinic's
   * prompt names, and which of the two the clinic meant cannot be guessed. A server that cannot be
   * reached is no reason to refuse: listed in the background instead.
   */
  async start(declared: ReadonlySet<string>): Promise<void> {
    if (!this.url) return;
    this.declared = declared;
    try {
      await this.connect(true);
    } catch (err) {
      if (err instanceof LlmSetupError) throw err;
      this.logger.warn(
        { server: this.where, err, retryMs: RELIST_FIRST_MS },
        'MCP server not reachable at start-up: its tools are offered once listed',
      );
      this.scheduleRelist(0);
    }
  }

  /**
   * One `tools/call`, arguments already validated. Never throws. With `idempotencyKey` (the tool
   * has side effects) the key goes in the request's `_meta`, the same for every retry of the call.
   */
  async call(tool: McpTool, args: Record<string, unknown>, idempotencyKey?: string): Promise<ToolResult> {
    for (let attempt = 0; ; attempt++) {
      let client: Client;
      try {
        client = this.client ?? (await this.connect());
      } catch {
        return unavailable();
      }
      const probe: McpRequestProbe = { written: false };
      try {
        const result = await probed(probe, () =>
          // Not client.callTool: it throws a result away whose structured content breaks the
          // tool's output schema, after the server acted, turning a done booking into an error
          // the LLM might retry under a new key. The model reads what the tool answered.
          client.request(
            {
              method: 'tools/call',
              params: {
                name: tool.name,
                arguments: args,
                ...(idempotencyKey !== undefined && { _meta: { [IDEMPOTENCY_META_KEY]: idempotencyKey } }),
              },
            },
            CallToolResultSchema,
            { timeout: this.config.env.MCP_TIMEOUT_MS },
          ),
        );
        return resultOfCall(result);
      } catch (err) {
        // Refused unread, so sending it once more in a new session cannot do it twice.
        if (attempt === 0 && sessionLost(err, client)) {
          this.forget(client);
          continue;
        }
        return failureOf(err, probe.written, tool.sideEffects);
      }
    }
  }

  /** After the job loop has drained (TurnProcessor closes it before shutdown): no call is in flight. */
  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    clearTimeout(this.relistTimer);
    const opening = this.opening;
    const client = this.client;
    this.client = undefined;
    const retired = [...this.retired.entries()].map(([old, timer]) => {
      clearTimeout(timer);
      return close(old, false);
    });
    this.retired.clear();
    await Promise.all([opening && close(opening, false), client && close(client, true), ...retired]);
  }

  /** The server's address for logs: never credentials or a query, which may hold a token. */
  private get where(): string {
    return this.url ? `${this.url.origin}${this.url.pathname}` : '';
  }

  private connect(atStartUp = false): Promise<Client> {
    this.connecting ??= this.open(atStartUp).finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async open(atStartUp: boolean): Promise<Client> {
    if (this.closed || !this.url) throw new Error('shutting down');
    const client: Client = new Client(
      { name: 'tawasul', version: '1' },
      {
        listChanged: {
          tools: { autoRefresh: false, debounceMs: 300, onChanged: () => void this.relist(client) },
        },
      },
    );
    // Transport errors also reach the caller of the request they broke; these are for debugging.
    client.onerror = (err) => this.logger.debug({ err }, 'MCP transport error');
    const token = this.config.env.MCP_SERVER_TOKEN;
    const transport = new StreamableHTTPClientTransport(this.url, {
      fetch: mcpFetch,
      ...(token && { requestInit: { headers: { authorization: `Bearer ${token}` } } }),
    });
    this.opening = client;
    try {
      await client.connect(transport, { timeout: this.config.env.MCP_TIMEOUT_MS });
      this.install(await this.list(client), atStartUp);
      if (this.closed) throw new Error('shutting down');
    } catch (err) {
      await close(client, true);
      throw err;
    } finally {
      this.opening = undefined;
    }
    const previous = this.client;
    this.client = client;
    if (previous) this.retire(previous);
    return client;
  }

  private async list(client: Client): Promise<Tool[]> {
    if (!client.getServerCapabilities()?.tools) return [];
    const tools: Tool[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const result = await client.listTools(cursor ? { cursor } : undefined, {
        timeout: this.config.env.MCP_TIMEOUT_MS,
      });
      tools.push(...result.tools);
      cursor = result.nextCursor;
      if (!cursor) break;
    }
    return tools;
  }

  /** The listing as the catalog: at start-up a clash refuses the start; later it is skipped. */
  private install(listed: Tool[], atStartUp: boolean): void {
    const { tools, skipped, clashes } = catalogOf(listed, this.declared);
    if (clashes.length > 0 && atStartUp) {
      throw new LlmSetupError(
        `MCP_SERVER_URL: ${clashes.map((c) => `"${c}"`).join(', ')} ${clashes.length > 1 ? 'are' : 'is'} both an MCP tool and an action declared in ACTIONS_FILE (${this.config.env.ACTIONS_FILE}); rename one of them`,
      );
    }
    for (const { name, reason } of skipped) this.logger.warn({ tool: name, reason }, 'MCP tool not offered');
    if (clashes.length > 0) {
      this.logger.error(
        { tools: clashes },
        'MCP tools not offered: an action declared in ACTIONS_FILE has the same name; rename one of them',
      );
    }
    this.catalog = new Map(tools.map((t) => [t.name, t]));
    this.offered = tools.map((t) => ({
      type: 'function',
      function: { name: t.name, description: t.description, parameters: t.parameters },
    }));
    this.listed = true;
    this.logger.info(
      { server: this.where, tools: tools.map((t) => t.name), skipped: skipped.length },
      'MCP tools listed',
    );
  }

  private scheduleRelist(attempt: number): void {
    if (this.closed) return;
    const delay = Math.min(RELIST_FIRST_MS * 2 ** attempt, RELIST_MAX_MS);
    this.relistTimer = setTimeout(() => {
      this.relistTimer = undefined;
      if (this.client) return;
      this.connect().catch((err: Error) => {
        if (this.closed) return;
        this.logger.warn({ server: this.where, err, retryMs: delay * 2 }, 'MCP server still not listed');
        this.scheduleRelist(attempt + 1);
      });
    }, delay);
    // The process's servers keep it alive; a retry alone must not.
    this.relistTimer.unref();
  }

  private async relist(client: Client): Promise<void> {
    if (client !== this.client || this.closed) return;
    try {
      this.install(await this.list(client), false);
    } catch (err) {
      this.logger.warn({ err }, 'MCP tools could not be listed again: the previous list stays');
    }
  }

  /** Drops a client whose session the server no longer knows; the next call opens another. */
  private forget(client: Client): void {
    if (this.client === client) this.client = undefined;
    this.retire(client);
  }

  /**
   * Closes a replaced client once every call that may still be in flight on it is over: closing
   * at once would fail those calls with "connection closed", an unknown outcome for a booking
   * the server is about to refuse (or answer) on its own.
   */
  private retire(client: Client): void {
    if (this.retired.has(client)) return;
    const timer = setTimeout(() => {
      this.retired.delete(client);
      void close(client, false);
    }, this.config.env.MCP_TIMEOUT_MS + RETIRE_MARGIN_MS);
    timer.unref();
    this.retired.set(client, timer);
  }
}

/**
 * Closes a client; with `terminate`, first ends its session on the server (Streamable HTTP's
 * DELETE), bounded, since a stateful server otherwise keeps it until it expires. Closing aborts
 * the transport's requests and its notification stream: no socket or timer is left behind.
 */
async function close(client: Client, terminate: boolean): Promise<void> {
  const transport = client.transport as StreamableHTTPClientTransport | undefined;
  if (terminate && transport?.sessionId !== undefined) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      transport.terminateSession().catch(() => undefined),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, TERMINATE_WAIT_MS))),
    ]);
    clearTimeout(timer);
  }
  await client.close().catch(() => undefined);
}
