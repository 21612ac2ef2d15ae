import { createHmac } from 'node:crypto';
import { type AppConfig } from '../config/app-config';
import { safeEqual } from '../security/safe-equal';

type Headers = Record<string, string | string[] | undefined>;

const META_SIGNATURE = /^sha256=[0-9a-fA-F]{64}$/;

const header = (headers: Headers, name: string): string | undefined => {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
};

/**
 * Who may POST /webhook, by BSP_PROVIDER. The header part is checked before the body is read;
 * Meta's HMAC needs the body and is checked afterwards, over the raw bytes.
 */
export class WebhookAuth {
  constructor(private readonly config: AppConfig) {}

  /** Before the body: is the credential header present, well formed and (360dialog) right? */
  headerOk(headers: Headers): boolean {
    const { BSP_PROVIDER, D360_WEBHOOK_SECRET } = this.config.env;
    switch (BSP_PROVIDER) {
      case 'meta':
        return META_SIGNATURE.test(header(headers, 'x-hub-signature-256') ?? '');
      case '360dialog':
        return safeEqual(header(headers, 'x-webhook-secret'), D360_WEBHOOK_SECRET ?? '');
      case 'sandbox':
        return true;
    }
  }

  /**
   * After the body: Meta signs its escaped-unicode serialisation, so the HMAC runs over the exact
   * bytes received; parsing and re-serialising would break every Arabic name.
   */
  bodyOk(headers: Headers, raw: Buffer): boolean {
    if (this.config.env.BSP_PROVIDER !== 'meta') return true;
    const signature = header(headers, 'x-hub-signature-256');
    if (!signature || !META_SIGNATURE.test(signature)) return false;
    const expected = createHmac('sha256', this.config.env.WHATSAPP_APP_SECRET ?? '')
      .update(raw)
      .digest();
    return safeEqual(Buffer.from(signature.slice('sha256='.length), 'hex'), expected);
  }

  /** GET /webhook handshake: Meta's dashboard proves it knows the verify token. */
  verifyTokenOk(token: unknown): boolean {
    const expected = this.config.env.WHATSAPP_VERIFY_TOKEN;
    return typeof token === 'string' && expected !== undefined && safeEqual(token, expected);
  }
}
