import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { type FastifyRequest } from 'fastify';
import { AppConfig } from '../config/app-config';
import { safeEqualAny } from '../security/safe-equal';
import { ApiError } from './api-error';

/** `Authorization: Bearer <one of API_KEYS>`, every key compared in constant time. */
@Injectable()
export class ApiAuthGuard implements CanActivate {
  private readonly keys: string[];

  constructor(config: AppConfig) {
    this.keys = (config.env.API_KEYS ?? '').split(',').filter(Boolean);
  }

  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer ([^\s]+)$/i.exec(header.trim()) : null;
    if (match && safeEqualAny(match[1], this.keys)) return true;
    context
      .switchToHttp()
      .getResponse<{ header(name: string, value: string): void }>()
      .header('www-authenticate', 'Bearer');
    throw new ApiError(401, {
      error: 'unauthorized',
      message: match ? 'the API key is not valid' : 'send Authorization: Bearer <API key>',
    });
  }
}
