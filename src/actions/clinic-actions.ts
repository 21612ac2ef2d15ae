import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Injectable, type OnModuleInit } from '@nestjs/common';
import { type Logger } from 'pino';
import { AppConfig, DEMO_ACTIONS_FILE } from '../config/app-config';
import { EnvSchema } from '../config/env.schema';
import { type LlmTool, type LlmToolCall } from '../llm/llm.client';
import { LlmSetupError } from '../llm/llm-setup.error';
import { AppLogger } from '../logging/app-logger';
import { MetricsService } from '../metrics/metrics.service';
import { type ToolResult } from '../conversation/turn.types';
import { type ClinicAction, parseActions, toolsOf } from './action-catalog';
import { clinicHttp, type ClinicHttpOutcome } from './clinic-http';
import { McpTools } from './mcp-tools';
import {
  capped,
  invalid,
  MAX_RESULT_CHARS,
  timedOut,
  UNAVAILABLE_STATUSES,
  unavailable,
  unknownOutcome,
} from './tool-result';

export { MAX_RESULT_CHARS, UNKNOWN_OUTCOME_TEXT } from './tool-result';

/** Arguments longer than this are not a booking; they are refused before any parsing. */
const MAX_ARGUMENT_CHARS = 16_000;

/** Where one call runs: the turn it belongs to, for the Idempotency-Key. */
export interface ActionCallContext {
  turnId: string;
  round: number;
  index: number;
}

/**
 * The clinic's actions from both sources, under one set of rules: the declared actions
 * (ACTIONS_FILE), read and validated at start-up and run against CLINIC_API_BASE_URL, and the
 * tools of the MCP server at MCP_SERVER_URL (McpTools). Both are offered to the LLM as tools; every
 * call is validated against its schema here before anything is sent. The model chooses an action
 * and its arguments, never a URL: the target is the declared path with validated, URL-encoded values.
 * Arguments and results are patient data: they are returned to the caller, never logged.
 */
@Injectable()
export class ClinicActions implements OnModuleInit {
  private readonly actions = new Map<string, ClinicAction>();
  private readonly base?: URL;
  private readonly declaredTools: LlmTool[];
  private readonly logger: Logger;

  constructor(
    private readonly config: AppConfig,
    private readonly metrics: MetricsService,
    appLogger: AppLogger,
    private readonly mcp: McpTools,
  ) {
    this.logger = appLogger.child('actions');
    const actions = loadActions(config);
    for (const action of actions) this.actions.set(action.name, action);
    this.declaredTools = toolsOf(actions);
    if (actions.length > 0) {
      const base = config.clinicApiBaseUrl;
      if (!base) {
        throw new LlmSetupError(
          `CLINIC_API_BASE_URL: is required when ACTIONS_FILE (${config.env.ACTIONS_FILE}) declares actions`,
        );
      }
      this.base = new URL(base);
    }
  }

  /** The MCP server's tools are listed here (a name clash with a declared action refuses the start). */
  async onModuleInit(): Promise<void> {
    await this.mcp.start(new Set(this.actions.keys()));
  }

  /** Declared actions first, then the MCP server's tools once listed. */
  get tools(): LlmTool[] {
    const listed = this.mcp.tools;
    return listed.length > 0 ? [...this.declaredTools, ...listed] : this.declaredTools;
  }

  get enabled(): boolean {
    return this.actions.size > 0 || this.mcp.tools.length > 0;
  }

  /** Whether a call of this name changes something at the clinic (unknown names do not run at all). */
  sideEffects(name: string): boolean {
    return this.actions.get(name)?.sideEffects ?? this.mcp.tool(name)?.sideEffects ?? false;
  }

  /**
   * Runs one call: validated against its schema first (an invalid call gets an error result the
   * LLM can correct, and no request is made), then one HTTP request or one MCP `tools/call`.
   * Never throws.
   */
  async run(call: LlmToolCall, at: ActionCallContext): Promise<ToolResult> {
    const action = this.actions.get(call.name);
    const tool = action ? undefined : this.mcp.tool(call.name);
    const label = action?.name ?? tool?.name ?? 'unknown';
    if (!action && !tool) {
      // A stored call from a worker that had the MCP tools, here before their listing: call later.
      if (this.mcp.pending) return this.count(label, unavailable());
      const names = [...this.actions.keys(), ...this.mcp.names];
      return this.count(label, invalid(`there is no action "${call.name}"; use one of: ${names.join(', ')}`));
    }
    const args = parseArguments(call.arguments);
    if (typeof args === 'string') return this.count(label, invalid(args));
    const validate = action?.validate ?? tool!.validate;
    if (!validate(args)) {
      const errors = (validate.errors ?? [])
        .map((e) => `${e.instancePath || '(arguments)'} ${e.message ?? 'is invalid'}`)
        .join('; ');
      return this.count(label, invalid(`the arguments do not match the action's parameters: ${errors}`));
    }
    // The same key for every retry of this call, across workers: the clinic books it once.
    const key = `${at.turnId}.${at.round}.${at.index}`;
    let send: () => Promise<ToolResult>;
    if (action) {
      const target = targetOf(action, args, this.base!);
      if (typeof target === 'string') return this.count(label, invalid(target));
      send = () => this.overHttp(action, target, key);
    } else {
      send = () => this.mcp.call(tool!, args, tool!.sideEffects ? key : undefined);
    }
    const started = performance.now();
    const result = await send();
    const seconds = (performance.now() - started) / 1000;
    this.metrics.actionSeconds.observe({ action: label }, seconds);
    this.logger.info(
      {
        action: label,
        source: action ? 'http' : 'mcp',
        outcome: result.outcome,
        status: result.status,
        ms: Math.round(seconds * 1000),
      },
      'clinic action',
    );
    return this.count(label, result);
  }

  /** A stored result used again by a retried turn: counted, not called. */
  reused(name: string): void {
    const known = this.actions.has(name) || this.mcp.tool(name) !== undefined;
    this.metrics.actions.inc({ action: known ? name : 'unknown', outcome: 'reused' });
  }

  private async overHttp(
    action: ClinicAction,
    target: { path: string; body?: string },
    key: string,
  ): Promise<ToolResult> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (target.body !== undefined) headers['content-type'] = 'application/json';
    if (this.config.env.CLINIC_API_TOKEN) headers.authorization = `Bearer ${this.config.env.CLINIC_API_TOKEN}`;
    if (action.sideEffects) headers['idempotency-key'] = key;
    const outcome = await clinicHttp({
      base: this.base!,
      method: action.method,
      path: target.path,
      headers,
      body: target.body,
      timeoutMs: action.timeoutMs,
    });
    return resultOf(action, outcome);
  }

  private count(action: string, result: ToolResult): ToolResult {
    this.metrics.actions.inc({ action, outcome: result.outcome });
    return result;
  }
}

/**
 * ACTIONS_FILE read once; the default file may be absent (no actions, or the demo clinic's catalog
 * in the sandbox), a file named explicitly not.
 */
function loadActions(config: AppConfig, file = config.env.ACTIONS_FILE): ClinicAction[] {
  const path = resolve(file);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && file === new EnvSchema().ACTIONS_FILE) {
      return config.demoClinic ? loadActions(config, DEMO_ACTIONS_FILE) : [];
    }
    throw new LlmSetupError(`ACTIONS_FILE: cannot read ${file} (${path}): ${code ?? (err as Error).message}`);
  }
  const { actions, problems } = parseActions(json);
  if (problems.length > 0) throw new LlmSetupError(problems.map((p) => `ACTIONS_FILE: ${file}: ${p}`).join('\n'));
  return actions;
}

function parseArguments(raw: string): Record<string, unknown> | string {
  if (raw.length > MAX_ARGUMENT_CHARS) return 'the arguments are too long';
  let args: unknown;
  try {
    args = JSON.parse(raw.trim() === '' ? '{}' : raw);
  } catch {
    return 'the arguments are not valid JSON';
  }
  if (typeof args !== 'object' || args === null || Array.isArray(args)) return 'the arguments must be a JSON object';
  return args as Record<string, unknown>;
}

/**
 * The request target from the declared path and validated arguments: placeholders take
 * encodeURIComponent values (`/`, `?`, `#` cannot leave their segment), and a value that is a dot
 * segment (`.`, `..`, which URL resolution would climb) or empty is refused. Path parameters are
 * not repeated in the query or body.
 */
export function targetOf(
  action: ClinicAction,
  args: Record<string, unknown>,
  base: URL,
): { path: string; body?: string } | string {
  let path = action.path;
  for (const param of action.pathParams) {
    const value = String(args[param]);
    if (value === '' || value === '.' || value === '..') return `"${param}" is not a valid value`;
    path = path.split(`{${param}}`).join(encodeURIComponent(value));
  }
  const rest = Object.fromEntries(Object.entries(args).filter(([k]) => !action.pathParams.includes(k)));
  const prefix = base.pathname.replace(/\/+$/, '');
  const full = `${prefix}${path}`;
  if (action.method === 'GET' || action.method === 'DELETE') {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(rest)) {
      for (const v of Array.isArray(value) ? value : [value]) {
        if (v === undefined || v === null) continue;
        query.append(key, typeof v === 'object' ? JSON.stringify(v) : String(v));
      }
    }
    const qs = query.toString();
    return { path: qs ? `${full}?${qs}` : full };
  }
  return { path: full, body: JSON.stringify(rest) };
}

function resultOf(action: ClinicAction, outcome: ClinicHttpOutcome): ToolResult {
  if (outcome.kind === 'failed') {
    if (action.sideEffects && outcome.written) return unknownOutcome();
    return outcome.timedOut ? timedOut() : unavailable();
  }
  const { status } = outcome;
  const body = parseBody(outcome.body);
  if (status >= 200 && status < 300) {
    return { outcome: 'ok', status, content: capped({ ok: true, status, result: body }) };
  }
  if (UNAVAILABLE_STATUSES.has(status)) return unavailable(status);
  return { outcome: 'error', status, content: capped({ ok: false, status, error: body }) };
}

function parseBody(text: string): unknown {
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return text.slice(0, MAX_RESULT_CHARS);
  }
}
