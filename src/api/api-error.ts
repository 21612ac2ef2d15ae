import { HttpException } from '@nestjs/common';

/** One field that failed validation, named by its path in the body or query (`template.name`). */
export interface FieldProblem {
  field: string;
  problem: string;
}

/** Every /v1 error body has this one shape (docs/http-api.md). */
export interface ApiErrorBody {
  /** Stable, machine-readable: unauthorized, invalid_body, invalid_query, not_found, window_closed, … */
  error: string;
  message: string;
  fields?: FieldProblem[];
  [extra: string]: unknown;
}

export class ApiError extends HttpException {
  constructor(status: number, body: ApiErrorBody) {
    super(body, status);
  }

  static invalid(kind: 'invalid_body' | 'invalid_query' | 'invalid_path', fields: FieldProblem[]): ApiError {
    const message = fields.map((f) => `${f.field}: ${f.problem}`).join('; ');
    return new ApiError(400, { error: kind, message, fields });
  }
}
