import { createHmac } from 'node:crypto';
import { TEST_APP_SECRET } from './test-env';

/** `sha256=<hex>` over the exact bytes, as Meta computes X-Hub-Signature-256. */
export function signBody(body: string | Buffer, secret = TEST_APP_SECRET): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}
