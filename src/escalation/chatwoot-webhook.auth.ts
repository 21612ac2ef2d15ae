import { createHmac } from 'node:crypto';
import { type AppConfig } from '../config/app-config';
import { safeEqual } from '../security/safe-equal';

type Headers = Record<string, string | string[] | undefined>;
const header = (headers: Headers, name: string): string | undefined => {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
};
const SIGNATURE = /^sha256=([0-9a-fA-F]{64})$/;

/**
 * Who may POST /chatwoot/webhook: the shared `?token=` (every Chatwoot version), and with
 * CHATWOOT_WEBHOOK_SECRET the X-Chatwoot-Signature of signing versions (4.11.2+ for account
 * webhooks, 4.13+ for API inboxes): `sha256=` HMAC-SHA256 of `<X-Chatwoot-Timestamp>.<raw body>`.
 * The bare raw body is accepted as the signed string too: the exact format differs between
 * releases (docs/handover.md §2), and either way only the secret's holder can produce it.
 */
export class ChatwootWebhookAuth {
  constructor(private readonly config: AppConfig) {}

  tokenOk(token: unknown): boolean {
    const expected = this.config.env.CHATWOOT_WEBHOOK_TOKEN;
    return typeof token === 'string' && expected !== undefined && safeEqual(token, expected);
  }

  signatureOk(headers: Headers, raw: Buffer): boolean {
    const secret = this.config.env.CHATWOOT_WEBHOOK_SECRET;
    if (!secret) return true;
    const match = SIGNATURE.exec(header(headers, 'x-chatwoot-signature') ?? '');
    if (!match) return false;
    const given = Buffer.from(match[1], 'hex');
    const timestamp = header(headers, 'x-chatwoot-timestamp');
    const signed = (prefix: string): Buffer => createHmac('sha256', secret).update(prefix).update(raw).digest();
    const withTimestamp = timestamp !== undefined && safeEqual(given, signed(`${timestamp}.`));
    return safeEqual(given, signed('')) || withTimestamp;
  }
}
