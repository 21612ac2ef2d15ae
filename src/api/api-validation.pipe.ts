import {
  type ArgumentMetadata,
  createParamDecorator,
  type ExecutionContext,
  Injectable,
  type PipeTransform,
} from '@nestjs/common';
import { type FastifyRequest } from 'fastify';
import { plainToInstance } from 'class-transformer';
import { validateSync, type ValidationError } from 'class-validator';
import { exceedsNesting, MAX_NESTING } from '../webhook/webhook-payload';
import { ApiError, type FieldProblem } from './api-error';

/**
 * Validates /v1 bodies and queries against their DTO class: a 400 naming every bad field (nested
 * ones as `template.name`), unknown fields refused, never a 5xx for a body of the wrong shape.
 */
@Injectable()
export class ApiValidationPipe implements PipeTransform {
  transform(value: unknown, metadata: ArgumentMetadata): unknown {
    const dto = metadata.metatype;
    if (!dto || dto === Object || dto === String || dto === Number || metadata.type === 'custom') return value;
    const kind = metadata.type === 'query' ? 'invalid_query' : 'invalid_body';
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw ApiError.invalid(kind, [{ field: '(body)', problem: 'must be a JSON object' }]);
    }
    // class-transformer and class-validator recurse as deep as the value nests: past the stack, a 500.
    if (exceedsNesting(value)) {
      throw ApiError.invalid(kind, [{ field: '(body)', problem: `must not nest deeper than ${MAX_NESTING} levels` }]);
    }
    const hidden = constructorKeys(value);
    if (hidden.length > 0) throw ApiError.invalid(kind, hidden);
    const instance = plainToInstance(dto, value) as object;
    const errors = validateSync(instance, { whitelist: true, forbidNonWhitelisted: true });
    if (errors.length > 0) throw ApiError.invalid(kind, flatten(errors));
    return instance;
  }
}

/**
 * The body of a route that takes none (resume, erase): none at all or `{}`. A field is refused as
 * an unknown field of the other routes is, so a client that believes it passes an option learns
 * that it does not.
 */
export const NoBody = createParamDecorator((_data: unknown, context: ExecutionContext): undefined => {
  const body = context.switchToHttp().getRequest<FastifyRequest>().body;
  if (body === undefined) return undefined;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw ApiError.invalid('invalid_body', [{ field: '(body)', problem: 'must be empty or {}' }]);
  }
  const fields = Object.keys(body);
  if (fields.length > 0) {
    throw ApiError.invalid(
      'invalid_body',
      fields.map((field) => ({ field, problem: 'is not a known field' })),
    );
  }
  return undefined;
});

/**
 * Every `constructor` key, by path. class-transformer takes a nested object's `constructor` for its
 * class and calls it (a TypeError: a 500), and whitelisting never sees it (every instance has one);
 * no DTO has such a field, so it is refused like any unknown one.
 */
function constructorKeys(value: object): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const stack: [unknown, string][] = [[value, '']];
  while (stack.length > 0) {
    const [node, path] = stack.pop()!;
    if (typeof node !== 'object' || node === null) continue;
    for (const [key, child] of Object.entries(node)) {
      const field = path ? `${path}.${key}` : key;
      if (key === 'constructor') problems.push({ field, problem: 'is not a known field' });
      stack.push([child, field]);
    }
  }
  return problems;
}

function flatten(errors: ValidationError[], parent = ''): FieldProblem[] {
  const problems: FieldProblem[] = [];
  for (const error of errors) {
    const field = parent ? `${parent}.${error.property}` : error.property;
    for (const [rule, message] of Object.entries(error.constraints ?? {})) {
      problems.push({ field, problem: rule === 'whitelistValidation' ? 'is not a known field' : message });
    }
    if (error.children?.length) problems.push(...flatten(error.children, field));
  }
  return problems;
}
