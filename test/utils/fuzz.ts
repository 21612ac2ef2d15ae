import { rawRequest, type RawRequest, type RawResponse } from './raw-http';
import fc, { type Arbitrary, type Parameters as FcParameters } from 'fast-check';

/*
 * Building blocks for the HTTP fuzz tests: fast-check settings from the environment, a raw HTTP
 * client that sends whatever bytes and headers it is given, JSON arbitraries biased towards the
 * keys and shapes our parsers look at, a JSON mutator for real payloads, and the oracles the
 * properties check answers against.
 */

// ---------------------------------------------------------------------------------------------
// Settings

/**
 * fast-check parameters for one property: FUZZ_SEED (fast-check prints the seed and path of a
 * failure; FUZZ_SEED and FUZZ_PATH replay it), FUZZ_RUNS scaled by the property's cost.
 */
export function fuzzParams<T>(defaultRuns: number, scale = 1): FcParameters<T> {
  const runs = Number(process.env.FUZZ_RUNS) || defaultRuns;
  return {
    numRuns: Math.max(1, Math.round(runs * scale)),
    seed: runSeed(),
    ...(process.env.FUZZ_PATH && { path: process.env.FUZZ_PATH }),
    // Shrinking replays a failing input dozens of times against a live app: a bound keeps a real
    // failure from using up the whole test timeout before it is reported.
    interruptAfterTimeLimit: 40_000,
    markInterruptAsFailure: false,
  };
}

let seedOfThisRun: number | undefined;

/**
 * One seed for every property of a run: FUZZ_SEED, or a fresh one printed once. A check that runs
 * after the properties (nothing poisoned, no dead letter) cannot name the input that broke it, but
 * the run's seed replays every property of the file as it ran.
 */
function runSeed(): number {
  if (seedOfThisRun !== undefined) return seedOfThisRun;
  const given = process.env.FUZZ_SEED;
  seedOfThisRun = given !== undefined && given !== '' ? Number(given) : Math.floor(Math.random() * 2 ** 31);
  process.stdout.write(`fuzz seed ${seedOfThisRun} (replay: FUZZ_SEED=${seedOfThisRun})\n`);
  return seedOfThisRun;
}

/** `value` as fast-check prints it in a counterexample: a closure alone would hide what it captured. */
export function named<T extends object>(text: string, value: T): T {
  return Object.assign(value, { [fc.toStringMethod]: () => text });
}

/** encodeURIComponent for any string: a lone surrogate becomes U+FFFD instead of a URIError. */
export const encode = (s: string): string =>
  encodeURIComponent(s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd'));

// ---------------------------------------------------------------------------------------------
// Raw HTTP

/** Every request of the fuzz, over a fresh connection. */
export const send = (baseUrl: string, request: RawRequest): Promise<RawResponse> => rawRequest(baseUrl, request);

export type { RawRequest, RawResponse };

/** The body parsed as JSON, or undefined. */
export function jsonOf(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Oracles

export const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * True when a parsed JSON value carries a `__proto__` key, or a `constructor` key holding an object
 * with a `prototype` key, anywhere: the receivers refuse such bodies like invalid JSON.
 */
export function isPoisoned(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const node = stack.pop();
    if (typeof node !== 'object' || node === null) continue;
    if (Object.prototype.hasOwnProperty.call(node, '__proto__')) return true;
    const ctor = Object.prototype.hasOwnProperty.call(node, 'constructor')
      ? (node as Record<string, unknown>).constructor
      : undefined;
    if (typeof ctor === 'object' && ctor !== null && Object.prototype.hasOwnProperty.call(ctor, 'prototype')) {
      return true;
    }
    stack.push(...Object.values(node));
  }
  return false;
}

/** How a JSON receiver must answer a signed body of these bytes: 200 for a clean JSON object, else 400. */
export function expectedForJsonBody(raw: Buffer | string): 200 | 400 {
  let text = Buffer.isBuffer(raw) ? raw.toString('utf8') : raw;
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return 400;
  }
  return isPlainObject(parsed) && !isPoisoned(parsed) ? 200 : 400;
}

/** The receivers' error body (POST /webhook, POST /chatwoot/webhook): `{ error: string }`. */
export function isReceiverError(text: string): boolean {
  const body = jsonOf(text);
  return isPlainObject(body) && typeof body.error === 'string' && body.error.length > 0;
}

/** The documented /v1 error codes (docs/http-api.md). */
export const API_ERROR_CODES = new Set([
  'unauthorized',
  'invalid_body',
  'invalid_query',
  'invalid_path',
  'not_found',
  'method_not_allowed',
  'window_closed',
  'unsupported_media_type',
  'body_too_large',
  'unavailable',
]);

/** `{ error, message, fields? }` and nothing else the client could mistake for it; '' when it is. */
export function apiErrorShapeProblem(text: string): string {
  const body = jsonOf(text);
  if (!isPlainObject(body)) return `not a JSON object: ${text.slice(0, 200)}`;
  if (typeof body.error !== 'string' || !API_ERROR_CODES.has(body.error))
    return `error is not a documented code: ${text.slice(0, 300)}`;
  if (typeof body.message !== 'string') return `message is not a string: ${text.slice(0, 300)}`;
  const extra = Object.keys(body).filter((k) => !['error', 'message', 'fields', 'closedAt'].includes(k));
  if (extra.length > 0) return `unexpected keys ${extra.join(', ')}: ${text.slice(0, 300)}`;
  if (body.fields !== undefined) {
    const ok =
      Array.isArray(body.fields) &&
      body.fields.length > 0 &&
      body.fields.every((f) => isPlainObject(f) && typeof f.field === 'string' && typeof f.problem === 'string');
    if (!ok) return `fields is not a list of { field, problem }: ${text.slice(0, 300)}`;
  }
  return '';
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Keys our parsers read, and the ones a JSON parser must treat with suspicion. */
const INTERESTING_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'hasOwnProperty',
  'toString',
  'valueOf',
  'object',
  'entry',
  'changes',
  'field',
  'value',
  'metadata',
  'phone_number_id',
  'messages',
  'statuses',
  'contacts',
  'errors',
  'from',
  'from_user_id',
  'id',
  'type',
  'text',
  'body',
  'timestamp',
  'status',
  'recipient_id',
  'event',
  'message_type',
  'sender',
  'conversation',
  'to',
  'template',
  'idempotencyKey',
];

export const jsonKey: Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 8 }) },
  { weight: 2, arbitrary: fc.constantFrom(...INTERESTING_KEYS) },
);

/** Strings that trip parsers: lone surrogates, NUL, RTL marks, digits that look like ids, huge numbers. */
export const nastyString: Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    '\ud800',
    '\udfff',
    '\u202e\u0645\u0631\u062d\u0628\u0627',
    '\ufeff',
    'NaN',
    'Infinity',
    '-1',
    '1e400',
    '99999999999999999999',
    '0x1F',
    'wamid.a:b',
    '../../etc/passwd',
    '%00',
    '{{1}}',
    '<script>',
  ),
  fc.stringMatching(/^\d{1,25}$/),
);

/**
 * Any JSON value, a few levels deep, with keys biased towards the ones our parsers read and
 * strings towards the ones that trip them (fc.letrec: objects, arrays and scalars in any nesting).
 */
export const anyJson: Arbitrary<Json> = fc.letrec<{ value: Json }>((tie) => ({
  value: fc.oneof(
    { maxDepth: 4, depthIdentifier: 'json' },
    fc.constant(null),
    fc.boolean(),
    fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true })),
    nastyString,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(jsonKey, tie('value'), { maxKeys: 4 }),
  ),
})).value;

/** The value as it is, or once in `weight + 1` cases any other JSON value (a wrong type). */
export function orAnything<T extends Json>(real: Arbitrary<T>, weight = 2): Arbitrary<Json> {
  return fc.oneof({ weight, arbitrary: real }, { weight: 1, arbitrary: anyJson });
}

/**
 * `inner` wrapped in `depth` arrays or single-key objects, built iteratively: far deeper than the
 * call stack allows JSON.stringify to go.
 */
export function nestedText(inner: string, wrappers: readonly ('[' | '{')[]): string {
  const open = wrappers.map((w) => (w === '[' ? '[' : '{"k":')).join('');
  const close = [...wrappers]
    .reverse()
    .map((w) => (w === '[' ? ']' : '}'))
    .join('');
  return `${open}${inner}${close}`;
}

/** Depths around the receivers' MAX_NESTING (64) and far beyond it. */
export const nestingDepth: Arbitrary<number> = fc.oneof(
  fc.integer({ min: 0, max: 10 }),
  fc.integer({ min: 58, max: 70 }),
  fc.integer({ min: 71, max: 20_000 }),
);

// ---------------------------------------------------------------------------------------------
// Mutating real payloads

export type MutationOp = 'drop' | 'replace' | 'swap' | 'stringify' | 'wrap' | 'empty';
export interface Mutation {
  /** Which node (modulo the number of nodes, in document order). */
  at: number;
  op: MutationOp;
  value: Json;
}

export const mutation: Arbitrary<Mutation> = fc.record({
  at: fc.nat(),
  op: fc.constantFrom<MutationOp>('drop', 'replace', 'swap', 'stringify', 'wrap', 'empty'),
  value: anyJson,
});

type Path = (string | number)[];

/** Every node below the root, in document order, as its path. */
function pathsOf(root: Json): Path[] {
  const out: Path[] = [];
  const walk = (node: Json, path: Path): void => {
    if (Array.isArray(node)) node.forEach((child, i) => (out.push([...path, i]), walk(child, [...path, i])));
    else if (node !== null && typeof node === 'object') {
      for (const [key, child] of Object.entries(node)) {
        out.push([...path, key]);
        walk(child, [...path, key]);
      }
    }
  };
  walk(root, []);
  return out;
}

/** The same value as another JSON type: what a peer that mistyped a field would send. */
function swapType(v: Json): Json {
  if (v === null) return {};
  if (Array.isArray(v)) return Object.fromEntries(v.map((x, i) => [String(i), x]));
  if (typeof v === 'string') return Number(v) || v.length;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return v ? 'true' : 0;
  return Object.values(v);
}

/** A copy of `root` with the mutations applied in order (each picks its node among the current ones). */
export function mutate(root: Json, mutations: readonly Mutation[]): Json {
  const copy = structuredClone(root);
  for (const m of mutations) {
    const paths = pathsOf(copy);
    if (paths.length === 0) return copy;
    const path = paths[m.at % paths.length];
    const parent = path.slice(0, -1).reduce<any>((node, key) => node[key], copy);
    const key = path[path.length - 1];
    const current = parent[key] as Json;
    switch (m.op) {
      case 'drop':
        if (Array.isArray(parent)) parent.splice(key as number, 1);
        else delete parent[key];
        break;
      case 'replace':
        parent[key] = m.value;
        break;
      case 'swap':
        parent[key] = swapType(current);
        break;
      case 'stringify':
        parent[key] = JSON.stringify(current);
        break;
      case 'wrap':
        parent[key] = [current];
        break;
      case 'empty':
        parent[key] = Array.isArray(current) ? [] : typeof current === 'string' ? '' : {};
        break;
    }
  }
  return copy;
}
