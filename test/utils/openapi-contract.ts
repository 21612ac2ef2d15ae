import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';

/**
 * Checks requests against Chatwoot's own OpenAPI description (test/fixtures/peer-specs/chatwoot):
 * the path against its templates, path and query parameters, the auth header and the JSON body.
 * The fake Chatwoot accepts what Rails accepts (a number where a string is declared, say); this is
 * what keeps the adapter to the published contract.
 */

export interface ApiRequest {
  method: string;
  /** The request path, with or without its query string. */
  path: string;
  /** Query parameters, when kept apart from `path` (merged with any in `path`). */
  query?: Record<string, string | string[] | undefined>;
  /** The parsed JSON body; undefined when there was none. */
  body?: unknown;
  /** When given, the auth header and the body's content type are checked too. */
  headers?: Record<string, string | string[] | undefined>;
}

type Json = Record<string, any>;

interface Operation {
  method: string;
  template: string;
  regex: RegExp;
  /** Literal segments: `/contacts/search` wins over `/contacts/{id}`. */
  literals: number;
  pathParams: string[];
  parameters: Json[];
  requestBody?: Json;
  security: Json[];
}

interface Contract {
  doc: Json;
  operations: Operation[];
  ajv: Ajv;
  validators: Map<Operation, ValidateFunction>;
}

export const CHATWOOT_OPENAPI_FILE = join(__dirname, '..', 'fixtures', 'peer-specs', 'chatwoot', 'openapi.json');
const COMPONENTS_ID = 'chatwoot-components';
const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

let contract: Contract | undefined;

/** Loads the file once. Swagger-2 style `#/definitions/x` refs mean `#/components/schemas/x`. */
function load(): Contract {
  if (contract) return contract;
  const text = readFileSync(CHATWOOT_OPENAPI_FILE, 'utf8')
    .replaceAll('"#/definitions/', `"${COMPONENTS_ID}#/definitions/`)
    .replaceAll('"#/components/schemas/', `"${COMPONENTS_ID}#/definitions/`);
  const doc = JSON.parse(text) as Json;
  // OpenAPI 3.0 keywords (example, nullable, x-*) and formats such as `binary` are not JSON Schema's.
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  ajv.addSchema({ $id: COMPONENTS_ID, definitions: doc.components.schemas });
  contract = { doc, operations: operationsOf(doc), ajv, validators: new Map() };
  return contract;
}

function operationsOf(doc: Json): Operation[] {
  const operations: Operation[] = [];
  for (const [template, item] of Object.entries<Json>(doc.paths)) {
    const segments = template.split('/');
    const regex = new RegExp(
      `^${segments.map((s) => (/^\{.+\}$/.test(s) ? '([^/]+)' : s.replace(/[.*+?^$()|[\]\\]/g, '\\$&'))).join('/')}$`,
    );
    const pathParams = segments.filter((s) => /^\{.+\}$/.test(s)).map((s) => s.slice(1, -1));
    for (const method of METHODS.filter((m) => item[m])) {
      const op = item[method] as Json;
      operations.push({
        method,
        template,
        regex,
        literals: segments.filter((s) => s !== '' && !s.startsWith('{')).length,
        pathParams,
        parameters: [...(item.parameters ?? []), ...(op.parameters ?? [])].map((p: Json) => deref(doc, p)),
        requestBody: op.requestBody ? deref(doc, op.requestBody) : undefined,
        security: op.security ?? doc.security ?? [],
      });
    }
  }
  return operations;
}

/** Resolves a local `#/components/…` reference (parameters, request bodies). */
function deref(doc: Json, node: Json): Json {
  const ref = node.$ref as string | undefined;
  if (!ref?.startsWith('#/')) return node;
  return ref
    .slice(2)
    .split('/')
    .reduce<Json>((at, key) => at?.[key.replaceAll('~1', '/').replaceAll('~0', '~')], doc);
}

/** Problems with one request, as `METHOD path: problem` lines; an empty list means it conforms. */
export function validateAgainstChatwootApi(request: ApiRequest): string[] {
  const { operations } = load();
  const method = request.method.toLowerCase();
  const [pathname, search = ''] = request.path.split('?', 2);
  const label = `${request.method.toUpperCase()} ${pathname}`;
  const matches = operations.filter((op) => op.regex.test(pathname)).sort((a, b) => b.literals - a.literals);
  if (matches.length === 0) return [`${label}: no such path in Chatwoot's API`];
  const template = matches[0].template;
  const op = matches.find((o) => o.template === template && o.method === method);
  if (!op) {
    const allowed = matches.filter((o) => o.template === template).map((o) => o.method.toUpperCase());
    return [`${label}: ${template} has no ${method.toUpperCase()} (only ${allowed.join(', ')})`];
  }
  const problems = [
    ...checkPathParams(op, pathname),
    ...checkQuery(op, queryOf(search, request.query)),
    ...checkHeaders(op, request),
    ...checkBody(op, request.body),
  ];
  return problems.map((p) => `${label}: ${p}`);
}

function checkPathParams(op: Operation, pathname: string): string[] {
  const values = op.regex.exec(pathname)!.slice(1);
  return op.pathParams.flatMap((name, i) => {
    const schema = op.parameters.find((p) => p.in === 'path' && p.name === name)?.schema ?? {};
    return checkScalar(`path parameter ${name}`, decodeURIComponent(values[i]), schema);
  });
}

function queryOf(search: string, extra: ApiRequest['query'] = {}): [string, string][] {
  const pairs = [...new URLSearchParams(search).entries()];
  for (const [key, value] of Object.entries(extra)) {
    for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) pairs.push([key, v]);
  }
  return pairs;
}

function checkQuery(op: Operation, pairs: [string, string][]): string[] {
  const declared = op.parameters.filter((p) => p.in === 'query');
  const problems = pairs.flatMap(([key, value]) => {
    const param = declared.find((p) => p.name === key);
    if (!param) return [`query parameter ${key} is not declared (declared: ${names(declared)})`];
    return checkScalar(`query parameter ${key}`, value, param.schema ?? {});
  });
  for (const param of declared.filter((p) => p.required)) {
    if (!pairs.some(([key]) => key === param.name)) problems.push(`query parameter ${param.name} is required`);
  }
  return problems;
}

function names(params: Json[]): string {
  return params.length > 0 ? params.map((p) => p.name).join(', ') : 'none';
}

/** Path and query values arrive as text: integers and numbers must be digits. */
function checkScalar(what: string, value: string, schema: Json): string[] {
  if ((schema.type === 'integer' || schema.type === 'number') && !/^\d+$/.test(value)) {
    return [`${what} must be ${schema.type === 'integer' ? 'an integer' : 'a number'} (digits), got "${value}"`];
  }
  if (Array.isArray(schema.enum) && !schema.enum.map(String).includes(value)) {
    return [`${what} must be one of ${schema.enum.join(', ')}, got "${value}"`];
  }
  return [];
}

/** The apiKey schemes all use the `api_access_token` header; a JSON body must say it is JSON. */
function checkHeaders(op: Operation, request: ApiRequest): string[] {
  const headers = request.headers;
  if (!headers) return [];
  const problems: string[] = [];
  const schemes = load().doc.components.securitySchemes as Json;
  const needed = new Set(op.security.flatMap((s) => Object.keys(s)).map((name) => schemes[name]?.name as string));
  for (const header of needed) {
    if (header && !headers[header.toLowerCase()]) problems.push(`header ${header} is missing`);
  }
  const type = String(headers['content-type'] ?? '');
  if (request.body !== undefined && !/^application\/json\b/i.test(type)) {
    problems.push(`content-type must be application/json, got "${type}"`);
  }
  return problems;
}

function checkBody(op: Operation, body: unknown): string[] {
  if (!op.requestBody) return body === undefined ? [] : ['the operation takes no body'];
  if (body === undefined) return op.requestBody.required ? ['body is required'] : [];
  const validate = validatorOf(op);
  if (!validate) return [];
  if (validate(body)) return [];
  return (validate.errors ?? []).map(describeError);
}

function validatorOf(op: Operation): ValidateFunction | undefined {
  const { ajv, validators } = load();
  if (validators.has(op)) return validators.get(op);
  const content = (op.requestBody?.content ?? {}) as Json;
  const mediaType = Object.keys(content).find((type) => /^application\/json\b/i.test(type));
  if (!mediaType || !content[mediaType].schema) return undefined;
  const validate = ajv.compile(content[mediaType].schema as Json);
  validators.set(op, validate);
  return validate;
}

function describeError(error: ErrorObject): string {
  const where = `body${error.instancePath}`;
  if (error.keyword === 'enum') {
    const allowed = (error.params as { allowedValues: unknown[] }).allowedValues.join(', ');
    return `${where} must be one of ${allowed}`;
  }
  return `${where} ${error.message ?? 'is invalid'}`;
}

/** jest helper: every request conforms. An empty list fails: a contract check of nothing proves nothing. */
export function expectConformsToChatwootApi(requests: readonly (ApiRequest & { seq?: number })[]): void {
  if (requests.length === 0) throw new Error('expectConformsToChatwootApi: no requests to check');
  const problems = requests.flatMap((r, i) => validateAgainstChatwootApi(r).map((p) => `#${r.seq ?? i + 1} ${p}`));
  expect(problems).toEqual([]);
}
