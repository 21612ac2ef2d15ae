import Ajv, { type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { type LlmTool } from '../llm/llm.client';

export const ACTION_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
export type ActionMethod = (typeof ACTION_METHODS)[number];

/** Longest a clinic may let one call take; a patient is waiting on WhatsApp meanwhile. */
export const MAX_ACTION_TIMEOUT_MS = 60_000;
export const DEFAULT_ACTION_TIMEOUT_MS = 10_000;

/** One entry of ACTIONS_FILE, validated, with its argument schema compiled once. */
export interface ClinicAction {
  name: string;
  /** What the LLM reads to decide when to call it. */
  description: string;
  /** JSON Schema of the arguments object. */
  parameters: Record<string, unknown>;
  method: ActionMethod;
  /** Appended to CLINIC_API_BASE_URL; `{param}` placeholders take URL-encoded argument values. */
  path: string;
  /** Books, cancels, changes something: sent with an Idempotency-Key, never repeated when unsure. */
  sideEffects: boolean;
  timeoutMs: number;
  /** The placeholders of `path`, in order. */
  pathParams: string[];
  validate: ValidateFunction;
}

// OpenAI's rule for function names; also keeps names safe as metric labels.
export const ACTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const PLACEHOLDER = /\{([^{}]*)\}/g;
// A path is fixed text plus placeholders: no query, fragment, scheme or dot segment of its own.
const PATH = /^\/[A-Za-z0-9\-._~/{}]*$/;
const FIELDS = ['name', 'description', 'parameters', 'method', 'path', 'sideEffects', 'timeoutMs'];

/**
 * How every argument schema is compiled, whichever source declares it. strict: a schema keyword
 * misspelt would otherwise validate nothing, silently.
 */
export const SCHEMA_OPTIONS = { allErrors: true, strict: true } as const;

/**
 * With the standard `format`s (date, date-time, email, uuid…): strict mode refuses a schema that
 * uses one it does not know, and generated schemas (an MCP server's, often) use them.
 */
export function withFormats<T extends Ajv>(ajv: T): T {
  addFormats(ajv);
  return ajv;
}

/**
 * Validates the parsed ACTIONS_FILE (`{ "actions": [ … ] }`) and compiles each schema once.
 * Every problem is one line naming the entry (`actions[2] "book": …`), so a clinic fixes them all
 * in one go; any problem means no catalog.
 */
export function parseActions(json: unknown): { actions: ClinicAction[]; problems: string[] } {
  const problems: string[] = [];
  const list = (json as { actions?: unknown } | null)?.actions;
  if (typeof json !== 'object' || json === null || Array.isArray(json) || !Array.isArray(list)) {
    return { actions: [], problems: ['must be a JSON object { "actions": [ … ] }'] };
  }
  const ajv = withFormats(new Ajv(SCHEMA_OPTIONS));
  const actions: ClinicAction[] = [];
  const seen = new Set<string>();
  list.forEach((raw: unknown, i) => {
    const entry = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    const where = `actions[${i}]${typeof entry.name === 'string' ? ` "${entry.name}"` : ''}`;
    const fail = (reason: string): void => void problems.push(`${where}: ${reason}`);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail('must be an object');
    const extra = Object.keys(entry).filter((k) => !k.startsWith('_') && !FIELDS.includes(k));
    if (extra.length > 0) return fail(`unknown field "${extra[0]}"; known: ${FIELDS.join(', ')}`);
    const { name, description, parameters, method, path, sideEffects, timeoutMs } = entry;
    if (typeof name !== 'string' || !ACTION_NAME.test(name)) return fail('name: 1-64 letters, digits, _ or -');
    if (seen.has(name)) return fail('name: declared twice');
    seen.add(name);
    if (typeof description !== 'string' || description.trim() === '') return fail('description: missing or empty');
    if (typeof method !== 'string' || !(ACTION_METHODS as readonly string[]).includes(method.toUpperCase())) {
      return fail(`method: one of ${ACTION_METHODS.join(', ')}`);
    }
    if (typeof path !== 'string' || !PATH.test(path) || /(^|\/)\.{1,2}(\/|$)/.test(path)) {
      return fail('path: must start with / and hold only path characters and {param} placeholders');
    }
    if (typeof sideEffects !== 'boolean') return fail('sideEffects: must be true or false');
    if (timeoutMs !== undefined && (!Number.isInteger(timeoutMs) || (timeoutMs as number) < 100)) {
      return fail('timeoutMs: a whole number of milliseconds ≥ 100');
    }
    if ((timeoutMs as number) > MAX_ACTION_TIMEOUT_MS) return fail(`timeoutMs: at most ${MAX_ACTION_TIMEOUT_MS}`);
    const schema = parameters as Record<string, unknown> | undefined;
    if (typeof schema !== 'object' || schema === null || Array.isArray(schema) || schema.type !== 'object') {
      return fail('parameters: a JSON Schema with "type": "object"');
    }
    let validate: ValidateFunction;
    try {
      validate = ajv.compile(schema);
    } catch (err) {
      return fail(`parameters: ${(err as Error).message.split('\n')[0]}`);
    }
    const pathParams = [...path.matchAll(PLACEHOLDER)].map((m) => m[1]);
    const properties = (schema.properties ?? {}) as Record<string, { type?: unknown }>;
    const required = Array.isArray(schema.required) ? (schema.required as unknown[]) : [];
    for (const param of pathParams) {
      // A path segment must always be there, and be a scalar: a missing or object value would
      // point the request at another resource.
      const type = properties[param]?.type;
      if (!required.includes(param) || !['string', 'integer', 'number'].includes(type as string)) {
        return fail(`path: {${param}} must be a required string, integer or number parameter`);
      }
    }
    actions.push({
      name,
      description: description.trim(),
      parameters: schema,
      method: method.toUpperCase() as ActionMethod,
      path,
      sideEffects,
      timeoutMs: (timeoutMs as number | undefined) ?? DEFAULT_ACTION_TIMEOUT_MS,
      pathParams,
      validate,
    });
  });
  return { actions: problems.length > 0 ? [] : actions, problems };
}

/** The catalog as the LLM sees it. */
export function toolsOf(actions: readonly ClinicAction[]): LlmTool[] {
  return actions.map((a) => ({
    type: 'function',
    function: { name: a.name, description: a.description, parameters: a.parameters },
  }));
}
