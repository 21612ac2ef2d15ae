import { ConfigError, envVariableNames, validateEnv } from './validate-env';

/** The variables named in the error lines, in order (one line per bad variable). */
function badVariables(raw: Record<string, string | undefined>): string[] {
  try {
    validateEnv(raw);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.lines.map((line) => line.split(':')[0]);
  }
}

function configError(raw: Record<string, string | undefined>): ConfigError {
  try {
    validateEnv(raw);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('validateEnv defaults (SPEC §2 table)', () => {
  // Every default SPEC.md §2 lists, exactly as written there.
  const contract: Record<string, unknown> = {
    APP_ROLE: 'all',
    PORT: 3000,
    MANAGEMENT_PORT: undefined,
    NODE_ENV: 'development',
    REDIS_URL: 'redis://127.0.0.1:6379',
    REDIS_CLUSTER_NODES: undefined,
    REDIS_PREFIX: 'tawasul',
    BSP_PROVIDER: 'sandbox',
    META_GRAPH_URL: 'https://graph.facebook.com',
    META_API_VERSION: 'v23.0',
    D360_BASE_URL: 'https://waba-v2.360dialog.io',
    LLM_PROVIDER: 'offline',
    LLM_BASE_URL: undefined,
    LLM_MODEL: 'default',
    LLM_API_KEY: undefined,
    LLM_TIMEOUT_MS: 30000,
    LLM_MAX_CONCURRENCY: 32,
    LLM_MAX_ATTEMPTS: 5,
    LLM_BACKOFF_MS: 2000,
    LLM_HANDOFF_MARKER: '[HANDOFF]',
    SYSTEM_PROMPT_FILE: 'config/prompts/system.md',
    CLINIC_NAME: 'Demo Clinic',
    CLINIC_PHONE: undefined,
    MESSAGES_FILE: 'config/messages.json',
    DEDUP_TTL_SECONDS: 604800,
    CONVERSATION_TTL_SECONDS: 86400,
    HISTORY_MAX_MESSAGES: 30,
    TURN_DEBOUNCE_MS: 1000,
    WORKER_CONCURRENCY: 50,
    MARK_READ: true,
    INGEST_TIMEOUT_MS: 2000,
    WEBHOOK_BODY_LIMIT: 3145728,
    ESCALATION_KEYWORDS: undefined,
    ESCALATION_THRESHOLD: 3,
    ESCALATION_WEBHOOK_URL: undefined,
    HANDOFF_PAUSE_SECONDS: 1800,
    CHATWOOT_BASE_URL: undefined,
    CHATWOOT_WEBHOOK_SECRET: undefined,
    API_KEYS: undefined,
    PRICING_FILE: 'config/pricing.json',
    REENGAGEMENT_TEMPLATE: undefined,
    LOG_LEVEL: 'info',
    LOG_HASH_KEY: undefined,
    ADMIN_PASSWORD: undefined,
  };
  // Variables of the §2 table without a default (required by provider/role, or optional).
  const withoutDefault = [
    'WHATSAPP_VERIFY_TOKEN',
    'WHATSAPP_APP_SECRET',
    'WHATSAPP_PHONE_NUMBER_ID',
    'META_ACCESS_TOKEN',
    'D360_API_KEY',
    'D360_WEBHOOK_SECRET',
    'CHATWOOT_API_TOKEN',
    'CHATWOOT_ACCOUNT_ID',
    'CHATWOOT_INBOX_ID',
    'CHATWOOT_WEBHOOK_TOKEN',
  ];

  it('an empty environment is valid (the one-machine default) and yields the contract defaults', () => {
    const env = validateEnv({}) as unknown as Record<string, unknown>;
    for (const [key, value] of Object.entries(contract)) expect({ key, value: env[key] }).toEqual({ key, value });
    for (const key of withoutDefault) expect({ key, value: env[key] }).toEqual({ key, value: undefined });
  });

  it('knows every variable of the §2 table (an unknown one would be silently ignored)', () => {
    const known = new Set(envVariableNames());
    const missing = [...Object.keys(contract), ...withoutDefault].filter((k) => !known.has(k));
    expect(missing).toEqual([]);
  });

  it('turns numbers and booleans into typed values', () => {
    const env = validateEnv({ PORT: '8080', MARK_READ: 'false', ESCALATION_THRESHOLD: '2.5', MANAGEMENT_PORT: '9100' });
    expect(env.PORT).toBe(8080);
    expect(env.MANAGEMENT_PORT).toBe(9100);
    expect(env.MARK_READ).toBe(false);
    expect(env.ESCALATION_THRESHOLD).toBe(2.5);
  });
});

describe('required variables by provider and role (SPEC §2)', () => {
  const cases: { name: string; env: Record<string, string>; required: string[] }[] = [
    {
      name: 'meta receiver',
      env: { BSP_PROVIDER: 'meta', APP_ROLE: 'receiver' },
      required: ['WHATSAPP_VERIFY_TOKEN', 'WHATSAPP_APP_SECRET', 'WHATSAPP_PHONE_NUMBER_ID'],
    },
    {
      name: 'meta worker',
      env: { BSP_PROVIDER: 'meta', APP_ROLE: 'worker' },
      required: ['META_ACCESS_TOKEN', 'WHATSAPP_PHONE_NUMBER_ID'],
    },
    {
      name: 'meta all',
      env: { BSP_PROVIDER: 'meta', APP_ROLE: 'all' },
      required: ['WHATSAPP_VERIFY_TOKEN', 'WHATSAPP_APP_SECRET', 'WHATSAPP_PHONE_NUMBER_ID', 'META_ACCESS_TOKEN'],
    },
    {
      name: '360dialog receiver',
      env: { BSP_PROVIDER: '360dialog', APP_ROLE: 'receiver' },
      required: ['D360_WEBHOOK_SECRET', 'WHATSAPP_PHONE_NUMBER_ID'],
    },
    {
      name: '360dialog worker',
      env: { BSP_PROVIDER: '360dialog', APP_ROLE: 'worker' },
      required: ['D360_API_KEY', 'WHATSAPP_PHONE_NUMBER_ID'],
    },
    {
      name: '360dialog all',
      env: { BSP_PROVIDER: '360dialog', APP_ROLE: 'all' },
      required: ['D360_WEBHOOK_SECRET', 'D360_API_KEY', 'WHATSAPP_PHONE_NUMBER_ID'],
    },
    {
      name: 'chatwoot receiver',
      env: { CHATWOOT_BASE_URL: 'http://chatwoot:3000', APP_ROLE: 'receiver' },
      required: ['CHATWOOT_WEBHOOK_TOKEN'],
    },
    {
      name: 'chatwoot worker',
      env: { CHATWOOT_BASE_URL: 'http://chatwoot:3000', APP_ROLE: 'worker' },
      required: ['CHATWOOT_API_TOKEN', 'CHATWOOT_ACCOUNT_ID', 'CHATWOOT_INBOX_ID'],
    },
    {
      name: 'chatwoot all',
      env: { CHATWOOT_BASE_URL: 'http://chatwoot:3000', APP_ROLE: 'all' },
      required: ['CHATWOOT_WEBHOOK_TOKEN', 'CHATWOOT_API_TOKEN', 'CHATWOOT_ACCOUNT_ID', 'CHATWOOT_INBOX_ID'],
    },
    { name: 'openai worker', env: { LLM_PROVIDER: 'openai', APP_ROLE: 'worker' }, required: ['LLM_BASE_URL'] },
    { name: 'openai all', env: { LLM_PROVIDER: 'openai', APP_ROLE: 'all' }, required: ['LLM_BASE_URL'] },
    {
      name: 'openai receiver (never calls the LLM)',
      env: { LLM_PROVIDER: 'openai', APP_ROLE: 'receiver' },
      required: [],
    },
    ...['receiver', 'worker', 'all'].map((role) => ({
      name: `sandbox ${role}`,
      env: { BSP_PROVIDER: 'sandbox', APP_ROLE: role },
      required: [],
    })),
  ];

  it.each(cases)('$name needs exactly its variables', ({ env, required }) => {
    expect(badVariables(env).sort()).toEqual([...required].sort());
  });

  const values: Record<string, string> = {
    WHATSAPP_VERIFY_TOKEN: 'verify',
    WHATSAPP_APP_SECRET: 'secret',
    WHATSAPP_PHONE_NUMBER_ID: '100000000000001',
    META_ACCESS_TOKEN: 'token',
    D360_WEBHOOK_SECRET: 'relay-secret',
    D360_API_KEY: 'key',
    CHATWOOT_WEBHOOK_TOKEN: 'cw-token',
    CHATWOOT_API_TOKEN: 'cw-api',
    CHATWOOT_ACCOUNT_ID: '1',
    CHATWOOT_INBOX_ID: '2',
    LLM_BASE_URL: 'http://vllm:8000/v1',
  };
  it.each(cases)('$name starts once they are set', ({ env, required }) => {
    const given = Object.fromEntries(required.map((k) => [k, values[k]]));
    expect(badVariables({ ...env, ...given })).toEqual([]);
  });

  it('a worker does not need the receiver secrets, a receiver not the send token', () => {
    expect(
      badVariables({ BSP_PROVIDER: 'meta', APP_ROLE: 'worker', META_ACCESS_TOKEN: 't', WHATSAPP_PHONE_NUMBER_ID: '1' }),
    ).toEqual([]);
    expect(
      badVariables({
        BSP_PROVIDER: 'meta',
        APP_ROLE: 'receiver',
        WHATSAPP_VERIFY_TOKEN: 'v',
        WHATSAPP_APP_SECRET: 's',
        WHATSAPP_PHONE_NUMBER_ID: '1',
      }),
    ).toEqual([]);
  });
});

describe('LLM_PROVIDER default', () => {
  it('is openai when LLM_BASE_URL is set, else offline', () => {
    expect(validateEnv({ LLM_BASE_URL: 'http://vllm:8000/v1' }).LLM_PROVIDER).toBe('openai');
    expect(validateEnv({}).LLM_PROVIDER).toBe('offline');
    expect(validateEnv({ LLM_BASE_URL: '' }).LLM_PROVIDER).toBe('offline');
  });

  it('an explicit value wins', () => {
    expect(validateEnv({ LLM_PROVIDER: 'offline', LLM_BASE_URL: 'http://vllm:8000/v1' }).LLM_PROVIDER).toBe('offline');
  });
});

describe('invalid values', () => {
  it('produce one line each, naming the variable and what is expected', () => {
    const err = configError({
      PORT: 'abc',
      REDIS_URL: 'http://127.0.0.1:6379',
      REDIS_PREFIX: 'a:b',
      LOG_LEVEL: 'loud',
      MARK_READ: 'maybe',
      WORKER_CONCURRENCY: '0',
      LLM_PROVIDER: 'anthropic',
      DEDUP_TTL_SECONDS: '60',
    });
    const expected: Record<string, RegExp> = {
      PORT: /port number/,
      REDIS_URL: /redis:\/\/ or rediss:\/\//,
      REDIS_PREFIX: /letters, digits/,
      LOG_LEVEL: /one of/,
      MARK_READ: /true or false/,
      WORKER_CONCURRENCY: /between 1 and 1000/,
      LLM_PROVIDER: /openai or offline/,
      DEDUP_TTL_SECONDS: /≥ 7200/,
    };
    expect(err.lines.map((l) => l.split(':')[0]).sort()).toEqual(Object.keys(expected).sort());
    for (const line of err.lines) {
      const [name, ...rest] = line.split(': ');
      expect(rest.join(': ')).toMatch(expected[name]);
      expect(line).not.toMatch(/\n/);
    }
  });

  it.each([
    ['PORT', '0'],
    ['PORT', '65536'],
    ['PORT', '3000.5'],
    ['MANAGEMENT_PORT', 'x'],
    ['APP_ROLE', 'both'],
    ['BSP_PROVIDER', 'twilio'],
    ['REDIS_CLUSTER_NODES', 'host-without-port'],
    ['INGEST_TIMEOUT_MS', '10'],
    ['WEBHOOK_BODY_LIMIT', '-1'],
    ['CLINIC_PHONE', 'call us'],
    ['REENGAGEMENT_TEMPLATE', 'no-language'],
    ['META_GRAPH_URL', 'graph.facebook.com'],
  ])('%s=%s is reported on its own line', (name, value) => {
    const vars = badVariables({ [name]: value, WHATSAPP_PHONE_NUMBER_ID: '100000000000001' });
    expect(vars).toEqual([name]);
  });

  it('in production BSP_PROVIDER and LLM_PROVIDER must be explicit', () => {
    expect(badVariables({ NODE_ENV: 'production' }).sort()).toEqual(['BSP_PROVIDER', 'LLM_PROVIDER']);
    expect(badVariables({ NODE_ENV: 'production', BSP_PROVIDER: 'sandbox', LLM_PROVIDER: 'offline' })).toEqual([]);
    // The LLM_BASE_URL-derived default is a default too: production must still say it.
    expect(badVariables({ NODE_ENV: 'production', BSP_PROVIDER: 'sandbox', LLM_BASE_URL: 'http://vllm/v1' })).toEqual([
      'LLM_PROVIDER',
    ]);
  });
});

describe('empty strings count as unset', () => {
  it('take the default', () => {
    const env = validateEnv({ PORT: '', REDIS_PREFIX: '', MANAGEMENT_PORT: '', LOG_LEVEL: '', MARK_READ: '' });
    expect(env.PORT).toBe(3000);
    expect(env.REDIS_PREFIX).toBe('tawasul');
    expect(env.MANAGEMENT_PORT).toBeUndefined();
    expect(env.LOG_LEVEL).toBe('info');
    expect(env.MARK_READ).toBe(true);
  });

  it('do not satisfy a required variable', () => {
    expect(
      badVariables({
        BSP_PROVIDER: 'meta',
        APP_ROLE: 'receiver',
        WHATSAPP_VERIFY_TOKEN: '',
        WHATSAPP_APP_SECRET: '',
        WHATSAPP_PHONE_NUMBER_ID: '100000000000001',
      }).sort(),
    ).toEqual(['WHATSAPP_APP_SECRET', 'WHATSAPP_VERIFY_TOKEN']);
    expect(badVariables({ NODE_ENV: 'production', BSP_PROVIDER: '', LLM_PROVIDER: '' }).sort()).toEqual([
      'BSP_PROVIDER',
      'LLM_PROVIDER',
    ]);
  });
});
