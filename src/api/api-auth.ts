import { safeEqualAny } from '../security/safe-equal';
import { type ApiErrorBody } from './api-error';

/** API_KEYS as the list of keys /v1 accepts (the variable is validated: comma-separated, no spaces). */
export function apiKeys(raw: string | undefined): string[] {
  return (raw ?? '').split(',').filter(Boolean);
}

/**
 * `Authorization: Bearer <one of keys>`, every key compared in constant time: undefined when the
 * header holds a key, else the 401 body (docs/http-api.md).
 */
export function apiKeyRefusal(authorization: unknown, keys: readonly string[]): ApiErrorBody | undefined {
  const match = typeof authorization === 'string' ? /^Bearer ([^\s]+)$/i.exec(authorization.trim()) : null;
  if (match && safeEqualAny(match[1], keys)) return undefined;
  return {
    error: 'unauthorized',
    message: match ? 'the API key is not valid' : 'send Authorization: Bearer <API key>',
  };
}
