import { createHmac } from 'node:crypto';

/**
 * Stands in for phone numbers and chat ids in logs: a keyed HMAC, because a plain hash of a
 * phone number is reversible by enumerating the number space (UAE PDPL).
 */
export class LogHasher {
  constructor(private readonly key: string) {}

  hash(value: string): string {
    return createHmac('sha256', this.key).update(value).digest('hex').slice(0, 16);
  }
}
