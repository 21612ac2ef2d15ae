import { randomBytes } from 'node:crypto';

export const TEST_APP_SECRET = 'test_app_secret';
export const TEST_VERIFY_TOKEN = 'test-verify-token';
export const TEST_PHONE_NUMBER_ID = '100000000000001';
export const TEST_D360_SECRET = 'test-shared-secret';

/** A REDIS_PREFIX of its own for every app a test starts: tests never touch each other's keys. */
export function uniquePrefix(): string {
  return `t${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** A complete raw environment for one test app (Meta provider, quiet logs), plus overrides. */
export function testEnv(overrides: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    APP_ROLE: 'all',
    NODE_ENV: 'test',
    PORT: '3000',
    REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
    REDIS_PREFIX: uniquePrefix(),
    BSP_PROVIDER: 'meta',
    WHATSAPP_VERIFY_TOKEN: TEST_VERIFY_TOKEN,
    WHATSAPP_APP_SECRET: TEST_APP_SECRET,
    WHATSAPP_PHONE_NUMBER_ID: TEST_PHONE_NUMBER_ID,
    META_ACCESS_TOKEN: 'test-meta-token',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    SHUTDOWN_DRAIN_MS: '0',
    ...overrides,
  };
}
