import { type ArgumentMetadata, Injectable, type PipeTransform } from '@nestjs/common';
import { plainToInstance } from 'class-transformer';
import { validateSync, type ValidationError } from 'class-validator';
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
    const instance = plainToInstance(dto, value) as object;
    const errors = validateSync(instance, { whitelist: true, forbidNonWhitelisted: true });
    if (errors.length > 0) throw ApiError.invalid(kind, flatten(errors));
    return instance;
  }
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
