import {
  type OpenAPIObject,
  type OperationObject,
  type ParameterObject,
  type ReferenceObject,
  type RequestBodyObject,
  type ResponseObject,
  type SchemaObject,
} from '@nestjs/swagger';

/**
 * Renders the app's OpenAPI document as the /v1 reference of docs/http-api.md, so the page says
 * what the decorators in src/api/ say. test/e2e/deploy-and-docs.e2e-spec.ts compares the page with
 * it (and rewrites the section with UPDATE_DOCS=1).
 */

export const GENERATED_BEGIN = '<!-- generated from /v1/openapi.json: begin -->';
export const GENERATED_END = '<!-- generated from /v1/openapi.json: end -->';

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;
const PARAMETER_PLACES = ['path', 'query', 'header'];

type Schema = SchemaObject | ReferenceObject;

interface Row {
  name: string;
  type: string;
  required: boolean;
  description: string;
}

/** The Markdown of every operation: paths in order, then GET, POST, PUT, PATCH, DELETE. */
export function openApiMarkdown(doc: OpenAPIObject): string {
  const errorShape = commonErrorShape(doc);
  const blocks: string[] = [];
  if (errorShape) blocks.push(`Errors answer \`${errorShape}\` unless a response below shows another body.`);
  for (const path of Object.keys(doc.paths).sort()) {
    for (const method of METHODS) {
      const operation = doc.paths[path][method];
      if (operation) blocks.push(operationMarkdown(doc, method, path, operation, errorShape));
    }
  }
  return blocks.join('\n\n');
}

/** What lies between the markers, without the line breaks that frame it; undefined without markers. */
export function generatedSection(markdown: string): string | undefined {
  const begin = markdown.indexOf(GENERATED_BEGIN);
  const end = markdown.indexOf(GENERATED_END);
  if (begin < 0 || end < begin) return undefined;
  return markdown
    .slice(begin + GENERATED_BEGIN.length, end)
    .replace(/^\n/, '')
    .replace(/\n$/, '');
}

/** The page with `section` between the markers. */
export function withGeneratedSection(markdown: string, section: string): string {
  const begin = markdown.indexOf(GENERATED_BEGIN);
  const end = markdown.indexOf(GENERATED_END);
  if (begin < 0 || end < begin) throw new Error(`the page lacks the markers ${GENERATED_BEGIN} … ${GENERATED_END}`);
  return `${markdown.slice(0, begin + GENERATED_BEGIN.length)}\n${section}\n${markdown.slice(end)}`;
}

function operationMarkdown(
  doc: OpenAPIObject,
  method: string,
  path: string,
  operation: OperationObject,
  errorShape: string | undefined,
): string {
  const parts = [`### \`${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}\``];
  if (operation.summary) parts.push(`**${sentence(operation.summary)}**`);
  if (operation.description) parts.push(oneLine(operation.description));

  const parameters = (operation.parameters ?? [])
    .map((p) => resolve<ParameterObject>(doc, p))
    .filter((p) => PARAMETER_PLACES.includes(p.in))
    .sort((a, b) => PARAMETER_PLACES.indexOf(a.in) - PARAMETER_PLACES.indexOf(b.in));
  if (parameters.length > 0) {
    parts.push(
      table(
        ['parameter', 'in', 'type', 'required', 'description'],
        parameters.map((p) => [
          code(p.in === 'path' ? `:${p.name}` : p.name),
          p.in,
          p.schema ? typeOf(doc, p.schema) : '',
          yesNo(Boolean(p.required)),
          described(p.description, p.example ?? (p.schema && resolve<SchemaObject>(doc, p.schema).example)),
        ]),
      ),
    );
  }

  if (operation.requestBody) {
    const body = resolve<RequestBodyObject>(doc, operation.requestBody);
    for (const [mediaType, content] of Object.entries(body.content)) {
      parts.push(`Body, \`${mediaType}\`${body.required ? '' : ' (optional)'}:`);
      if (content.schema) parts.push(fieldTable(doc, content.schema, true));
    }
  }

  const responses = responsesOf(doc, operation);
  parts.push(
    table(
      ['status', 'answer', 'body'],
      responses.map(([status, response]) => {
        const shape = jsonSchemaOf(response) && shapeOf(doc, jsonSchemaOf(response)!);
        const isError = Number(status) >= 400;
        return [
          status,
          oneLine(response.description ?? ''),
          shape && !(isError && shape === errorShape) ? code(shape) : '',
        ];
      }),
    ),
  );
  for (const [status, response] of responses) {
    const schema = jsonSchemaOf(response);
    if (Number(status) < 400 && schema && rowsOf(doc, schema).length > 0) {
      parts.push(`The ${status} body:`, fieldTable(doc, schema, false));
    }
  }
  return parts.join('\n\n');
}

/** By status code, in order. */
function responsesOf(doc: OpenAPIObject, operation: OperationObject): [string, ResponseObject][] {
  return Object.entries(operation.responses)
    .filter((entry): entry is [string, ResponseObject | ReferenceObject] => entry[1] !== undefined)
    .map(([status, response]): [string, ResponseObject] => [status, resolve<ResponseObject>(doc, response)])
    .sort(([a], [b]) => a.localeCompare(b));
}

function jsonSchemaOf(response: ResponseObject): Schema | undefined {
  const json = Object.entries(response.content ?? {}).find(([type]) => /^application\/([\w.+-]+\+)?json/.test(type));
  return json?.[1].schema;
}

/** Request fields with whether each is required; response fields with whether each is always there. */
function fieldTable(doc: OpenAPIObject, schema: Schema, request: boolean): string {
  return table(
    ['field', 'type', request ? 'required' : 'always', 'description'],
    rowsOf(doc, schema).map((r) => [code(r.name), r.type, yesNo(r.required), r.description]),
  );
}

/**
 * One row per field, nested ones by their path (`template.buttons[].index`, `estimated.<key>.usd`);
 * `required` is relative to the enclosing object, as the validation is.
 */
function rowsOf(doc: OpenAPIObject, schema: Schema, prefix = ''): Row[] {
  const object = resolve<SchemaObject>(doc, schema);
  const rows: Row[] = [];
  for (const [name, property] of Object.entries(object.properties ?? {})) {
    const resolved = resolve<SchemaObject>(doc, property);
    const path = `${prefix}${name}`;
    rows.push({
      name: path,
      type: typeOf(doc, property),
      required: (object.required ?? []).includes(name),
      description: described(resolved.description, resolved.example),
    });
    rows.push(...nestedRows(doc, resolved, path));
  }
  return rows;
}

function nestedRows(doc: OpenAPIObject, schema: SchemaObject, path: string): Row[] {
  if (schema.properties) return rowsOf(doc, schema, `${path}.`);
  if (schema.type === 'array' && schema.items) {
    const items = resolve<SchemaObject>(doc, schema.items);
    return items.properties ? rowsOf(doc, items, `${path}[].`) : [];
  }
  if (typeof schema.additionalProperties === 'object') {
    const values = resolve<SchemaObject>(doc, schema.additionalProperties);
    return values.properties ? rowsOf(doc, values, `${path}.<key>.`) : [];
  }
  return [];
}

function typeOf(doc: OpenAPIObject, schema: Schema): string {
  const s = resolve<SchemaObject>(doc, schema);
  let type: string;
  if (s.enum) type = s.enum.map((v) => code(String(v))).join(' | ');
  else if (s.type === 'array' && s.items) type = `${typeOf(doc, s.items)}[]`;
  else type = s.type ?? 'object';
  if (s.minimum !== undefined || s.maximum !== undefined) type += ` ${s.minimum ?? ''}–${s.maximum ?? ''}`;
  return s.nullable ? `${type} | null` : type;
}

/** A body at a glance: `{ waId, window: { open, closesAt }, history: [ { role, text, at } ] }`. */
function shapeOf(doc: OpenAPIObject, schema: Schema): string | undefined {
  const s = resolve<SchemaObject>(doc, schema);
  if (s.type === 'array' && s.items) {
    const items = shapeOf(doc, s.items);
    return items ? `[ ${items} ]` : undefined;
  }
  if (s.properties) {
    const fields = Object.entries(s.properties).map(([name, property]) => {
      const label = (s.required ?? []).includes(name) ? name : `${name}?`;
      const inner = shapeOf(doc, property);
      return inner ? `${label}: ${inner}` : label;
    });
    return `{ ${fields.join(', ')} }`;
  }
  if (typeof s.additionalProperties === 'object') {
    const values = shapeOf(doc, s.additionalProperties);
    return `{ <key>: ${values ?? 'value'} }`;
  }
  return undefined;
}

/** The body most error responses share, said once above the operations rather than in every row. */
function commonErrorShape(doc: OpenAPIObject): string | undefined {
  const counts = new Map<string, number>();
  for (const item of Object.values(doc.paths)) {
    for (const method of METHODS) {
      for (const [status, response] of item[method] ? responsesOf(doc, item[method]) : []) {
        const schema = Number(status) >= 400 ? jsonSchemaOf(response) : undefined;
        const shape = schema && shapeOf(doc, schema);
        if (shape) counts.set(shape, (counts.get(shape) ?? 0) + 1);
      }
    }
  }
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0];
}

/**
 * Follows a local `#/components/...` reference, and a lone `allOf` (how a described reference is
 * written), keeping the outer description.
 */
function resolve<T extends object>(doc: OpenAPIObject, node: T | ReferenceObject): T {
  if ('$ref' in node) {
    const target = node.$ref
      .replace(/^#\//, '')
      .split('/')
      .reduce<any>((at, key) => at?.[key], doc) as T | undefined;
    if (!target) throw new Error(`the OpenAPI document has no ${node.$ref}`);
    return resolve(doc, target);
  }
  const schema = node as SchemaObject;
  if (schema.allOf?.length === 1 && !schema.properties) {
    const { allOf, ...outer } = schema;
    return { ...resolve<SchemaObject>(doc, allOf[0]), ...outer } as T;
  }
  return node;
}

function described(description: string | undefined, example: unknown): string {
  const text = oneLine(description ?? '');
  if (example === undefined) return text;
  const shown = code(typeof example === 'string' ? example : JSON.stringify(example));
  return text ? `${text}; e.g. ${shown}` : `e.g. ${shown}`;
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

const code = (text: string): string => `\`${text}\``;
const yesNo = (flag: boolean): string => (flag ? 'yes' : 'no');
const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, ' ').trim();
const sentence = (text: string): string => {
  const line = oneLine(text);
  return /[.!?]$/.test(line) ? line : `${line}.`;
};
