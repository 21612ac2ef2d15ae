import { format } from 'node:util';
import { type LoggerService } from '@nestjs/common';
import pino, { type Logger } from 'pino';

/**
 * The process-wide structured logger (pino, one JSON event per line). Message text and phone
 * numbers never go into info-level events: chats appear as `chat` (a keyed hash, see LogHasher).
 */
export class AppLogger {
  readonly pino: Logger;

  constructor(level: string) {
    this.pino = pino({
      level,
      base: { app: 'tawasul' },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: { err: errorFields },
    });
  }

  child(component: string): Logger {
    return this.pino.child({ component });
  }
}

/**
 * `err` in a log event: the type, message, code and stack, and nothing else. An error object can
 * carry what it failed on (an HTTP client's error holds the request and its body: patient text),
 * which pino's own serializer would print.
 */
export function errorFields(value: unknown): unknown {
  if (!(value instanceof Error)) return value;
  const code = (value as NodeJS.ErrnoException).code;
  return { type: value.name, message: value.message, ...(code !== undefined && { code }), stack: value.stack };
}

/** Routes Nest's own logging (bootstrap, module errors) into pino. */
export class NestPinoLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  log(message: unknown, context?: string): void {
    this.logger.debug({ context }, String(message));
  }
  error(message: unknown, trace?: string, context?: string): void {
    this.logger.error({ context, trace }, String(message));
  }
  warn(message: unknown, context?: string): void {
    this.logger.warn({ context }, String(message));
  }
  debug(message: unknown, context?: string): void {
    this.logger.debug({ context }, String(message));
  }
  verbose(message: unknown, context?: string): void {
    this.logger.trace({ context }, String(message));
  }
}

/**
 * Points console.* at pino, so that libraries that print (BullMQ warns about the eviction policy
 * and falls back to console.error for errors nobody listens to) still write one JSON line each.
 */
export function routeConsoleToLog(logger: Logger): void {
  const to =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (...args: unknown[]): void =>
      logger[level](format(...args));
  console.log = to('info');
  console.info = to('info');
  console.debug = to('debug');
  console.trace = to('debug');
  console.warn = to('warn');
  console.error = to('error');
}
