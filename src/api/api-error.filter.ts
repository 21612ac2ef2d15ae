import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException } from '@nestjs/common';
import { type FastifyReply } from 'fastify';
import { type ApiErrorBody } from './api-error';

const CODES: Record<number, string> = {
  400: 'invalid_body',
  401: 'unauthorized',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'body_too_large',
  415: 'unsupported_media_type',
  503: 'unavailable',
};

/**
 * Gives every error of the /v1 controllers the one body shape `{ error, message, fields? }`:
 * ours (ApiError) as they are, Nest's and Fastify's (a body that is not JSON, too large) mapped,
 * anything unexpected a 500 that says nothing about internals.
 */
@Catch()
export class ApiErrorFilter implements ExceptionFilter {
  catch(exception: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    const { status, body } = toApiError(exception);
    void reply.status(status).header('content-type', 'application/json; charset=utf-8').send(body);
  }
}

export function toApiError(exception: unknown): { status: number; body: ApiErrorBody } {
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    const response = exception.getResponse();
    if (typeof response === 'object' && response !== null && 'error' in response && 'message' in response) {
      const body = response as ApiErrorBody;
      if (typeof body.message === 'string' && typeof body.error === 'string' && !('statusCode' in body)) {
        return { status, body };
      }
    }
    return { status, body: { error: CODES[status] ?? 'error', message: exception.message } };
  }
  const statusCode = (exception as { statusCode?: unknown })?.statusCode;
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    return {
      status: statusCode,
      body: { error: CODES[statusCode] ?? 'bad_request', message: (exception as Error).message },
    };
  }
  return { status: 500, body: { error: 'internal', message: 'internal error' } };
}
