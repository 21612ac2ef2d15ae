import { type EnvSchema } from './env.schema';

/** A keyed hash is only as good as its key: 32 characters leave no room for guessing. */
export const LOG_HASH_KEY_MIN_LENGTH = 32;
/** Webhook secrets, the verify token and API keys: long enough that they cannot be guessed online. */
export const SECRET_MIN_LENGTH = 16;

const PEER_URLS = [
  'META_GRAPH_URL',
  'D360_BASE_URL',
  'LLM_BASE_URL',
  'CHATWOOT_BASE_URL',
  'CLINIC_API_BASE_URL',
  'MCP_SERVER_URL',
] as const;
const SECRETS = [
  'WHATSAPP_APP_SECRET',
  'WHATSAPP_VERIFY_TOKEN',
  'D360_WEBHOOK_SECRET',
  'CHATWOOT_WEBHOOK_TOKEN',
] as const;
const IN_PRODUCTION = 'when NODE_ENV=production';

/**
 * What NODE_ENV=production demands beyond the schema, as variable → reason, at most one
 * reason per variable. `raw` tells an explicit value from a default.
 */
export function productionProblems(env: EnvSchema, raw: Record<string, unknown>): Map<string, string> {
  const problems = new Map<string, string>();
  const add = (key: string, reason: string): void => {
    if (!problems.has(key)) problems.set(key, reason);
  };

  for (const key of ['BSP_PROVIDER', 'LLM_PROVIDER'] as const) {
    if (!raw[key]) add(key, `must be set explicitly ${IN_PRODUCTION}`);
  }
  // The sandbox takes unsigned webhooks from anyone and sends nothing: never a real deployment.
  if (env.BSP_PROVIDER === 'sandbox') add('BSP_PROVIDER', `sandbox is refused ${IN_PRODUCTION} (meta or 360dialog)`);

  // A key derived from a webhook secret would change with it, and differ between roles.
  if (!env.LOG_HASH_KEY) {
    add('LOG_HASH_KEY', `is required ${IN_PRODUCTION} (at least ${LOG_HASH_KEY_MIN_LENGTH} random characters)`);
  } else if (env.LOG_HASH_KEY.length < LOG_HASH_KEY_MIN_LENGTH) {
    add('LOG_HASH_KEY', `must be at least ${LOG_HASH_KEY_MIN_LENGTH} characters ${IN_PRODUCTION}`);
  }

  // Metrics name routes, queues and error codes: they stay off the public port.
  if (env.MANAGEMENT_PORT === undefined) {
    add('MANAGEMENT_PORT', `is required ${IN_PRODUCTION}: /metrics is served there, never on the public PORT`);
  }

  if (!env.ALLOW_PLAIN_HTTP) {
    for (const key of PEER_URLS) {
      const url = env[key];
      if (url !== undefined && !/^https:\/\//i.test(url)) {
        add(key, `must be an https:// URL ${IN_PRODUCTION} (ALLOW_PLAIN_HTTP=true allows http on a private network)`);
      }
    }
  }

  for (const key of SECRETS) {
    const value = env[key];
    if (value !== undefined && value !== '' && value.length < SECRET_MIN_LENGTH) {
      add(key, `must be at least ${SECRET_MIN_LENGTH} characters ${IN_PRODUCTION}`);
    }
  }
  const keys = env.API_KEYS?.split(',') ?? [];
  const short = keys.filter((k) => k.length < SECRET_MIN_LENGTH).length;
  // Which key is short is not said: the line must not help anyone guess it.
  if (short > 0) {
    add(
      'API_KEYS',
      `every key must be at least ${SECRET_MIN_LENGTH} characters ${IN_PRODUCTION} (${short} of ${keys.length} shorter)`,
    );
  }
  return problems;
}
