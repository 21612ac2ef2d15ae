import { createHmac } from 'node:crypto';
import { AppConfig } from '../config/app-config';
import { validateEnv } from '../config/validate-env';
import { WebhookAuth } from './webhook-auth';

const SECRET = 'test_app_secret';
const VERIFY = 'test-verify-token';
const D360 = 'test-shared-secret';

const authFor = (env: Record<string, string>): WebhookAuth =>
  new WebhookAuth(
    new AppConfig(validateEnv({ APP_ROLE: 'receiver', WHATSAPP_PHONE_NUMBER_ID: '100000000000001', ...env })),
  );

const meta = authFor({ BSP_PROVIDER: 'meta', WHATSAPP_APP_SECRET: SECRET, WHATSAPP_VERIFY_TOKEN: VERIFY });
const dialog = authFor({ BSP_PROVIDER: '360dialog', D360_WEBHOOK_SECRET: D360 });
const sandbox = authFor({ BSP_PROVIDER: 'sandbox' });

const sign = (raw: string | Buffer, key = SECRET): string =>
  `sha256=${createHmac('sha256', key).update(raw).digest('hex')}`;

const BODY = Buffer.from('{"object":"whatsapp_business_account","entry":[]}');
const GOOD = sign(BODY);

describe('WebhookAuth', () => {
  describe('meta', () => {
    it('takes a well-formed X-Hub-Signature-256 before the body, and the right one after it', () => {
      expect(GOOD).toBe('sha256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756');
      expect(meta.headerOk({ 'x-hub-signature-256': GOOD })).toBe(true);
      expect(meta.bodyOk({ 'x-hub-signature-256': GOOD }, BODY)).toBe(true);
    });

    it.each<[string, string | string[] | undefined]>([
      ['missing', undefined],
      ['empty', ''],
      ['without the sha256= prefix', GOOD.slice('sha256='.length)],
      ['with another prefix', `sha1=${GOOD.slice('sha256='.length)}`],
      ['with a short digest', GOOD.slice(0, -2)],
      ['with a long digest', `${GOOD}ab`],
      ['with non-hex characters', `sha256=${'g'.repeat(64)}`],
      ['with trailing whitespace', `${GOOD} `],
      ['sent twice (an array)', [GOOD, GOOD]],
    ])('refuses a header %s before the body, and after it without throwing', (_, value) => {
      const headers = { 'x-hub-signature-256': value };
      expect(meta.headerOk(headers)).toBe(false);
      expect(() => meta.bodyOk(headers, BODY)).not.toThrow();
      expect(meta.bodyOk(headers, BODY)).toBe(false);
    });

    it('refuses a well-formed signature over other bytes or with another key', () => {
      expect(meta.bodyOk({ 'x-hub-signature-256': sign('{}') }, BODY)).toBe(false);
      expect(meta.bodyOk({ 'x-hub-signature-256': sign(BODY, 'another_secret') }, BODY)).toBe(false);
      expect(meta.bodyOk({ 'x-hub-signature-256': GOOD }, Buffer.concat([BODY, Buffer.from('\n')]))).toBe(false);
    });

    it('verifies the raw bytes: the escaped-unicode body passes, its re-serialisation does not', () => {
      const escaped = Buffer.from('{"name":"\\u0645\\u062d\\u0645\\u062f"}');
      const reserialised = Buffer.from(JSON.stringify(JSON.parse(escaped.toString('utf8'))), 'utf8');
      expect(reserialised.equals(escaped)).toBe(false);
      const headers = { 'x-hub-signature-256': sign(escaped) };
      expect(meta.bodyOk(headers, escaped)).toBe(true);
      expect(meta.bodyOk(headers, reserialised)).toBe(false);
    });

    it('does not let the 360dialog header stand in for the signature', () => {
      expect(meta.headerOk({ 'x-webhook-secret': D360 })).toBe(false);
    });
  });

  describe('360dialog', () => {
    it('takes the right X-Webhook-Secret and needs no body check', () => {
      expect(dialog.headerOk({ 'x-webhook-secret': D360 })).toBe(true);
      expect(dialog.bodyOk({ 'x-webhook-secret': D360 }, BODY)).toBe(true);
    });

    it.each<[string, string | string[] | undefined]>([
      ['missing', undefined],
      ['empty', ''],
      ['wrong, same length', D360.replace(/.$/, 'X')],
      ['shorter (a length mismatch)', D360.slice(0, -1)],
      ['longer (a length mismatch)', `${D360}x`],
      ['sent twice (an array)', [D360, D360]],
    ])('refuses a secret %s, without throwing', (_, value) => {
      expect(() => dialog.headerOk({ 'x-webhook-secret': value })).not.toThrow();
      expect(dialog.headerOk({ 'x-webhook-secret': value })).toBe(false);
    });

    it('does not take a Meta signature instead of the secret', () => {
      expect(dialog.headerOk({ 'x-hub-signature-256': GOOD })).toBe(false);
    });
  });

  describe('sandbox', () => {
    it('needs no credentials', () => {
      expect(sandbox.headerOk({})).toBe(true);
      expect(sandbox.bodyOk({}, BODY)).toBe(true);
    });
  });

  describe('verify token (GET /webhook)', () => {
    it('takes the configured token', () => {
      expect(meta.verifyTokenOk(VERIFY)).toBe(true);
    });

    it.each<[string, unknown]>([
      ['a wrong token of the same length', VERIFY.replace(/.$/, 'X')],
      ['a shorter token', VERIFY.slice(0, -1)],
      ['an empty token', ''],
      ['no token', undefined],
      ['a repeated parameter (array)', [VERIFY, VERIFY]],
      ['a number', 42],
    ])('refuses %s without throwing', (_, token) => {
      expect(() => meta.verifyTokenOk(token)).not.toThrow();
      expect(meta.verifyTokenOk(token)).toBe(false);
    });

    it('refuses every token when none is configured', () => {
      expect(dialog.verifyTokenOk('')).toBe(false);
      expect(dialog.verifyTokenOk(undefined)).toBe(false);
      expect(dialog.verifyTokenOk(VERIFY)).toBe(false);
    });
  });
});
