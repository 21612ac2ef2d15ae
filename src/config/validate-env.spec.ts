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

/** A complete production deployment (Meta, both roles): valid as it is. */
const PRODUCTION: Record<string, string | undefined> = {
  NODE_ENV: 'production',
  BSP_PROVIDER: 'meta',
  LLM_PROVIDER: 'openai',
  LLM_BASE_URL: 'https://vllm.internal/v1',
  WHATSAPP_PHONE_NUMBER_ID: '100000000000001',
  WHATSAPP_VERIFY_TOKEN: 'verify-token-0123',
  WHATSAPP_APP_SECRET: '0123456789abcdef0123456789abcdef',
  META_ACCESS_TOKEN: 'token',
  LOG_HASH_KEY: 'k'.repeat(32),
  MANAGEMENT_PORT: '9464',
};

function configError(raw: Record<string, string | undefined>): ConfigError {
  try {
    validateEnv(raw);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('validateEnv defaults', () => {
  // Every default the contract names (.env.example lists them), exactly as written there.
  const contract: Record<string, unknown> = {
    APP_ROLE: 'all',
    PORT: 3000,
    // "0.0.0.0 (127.0.0.1 with the sandbox BSP)", and the sandbox is the default BSP.
    HOST: '127.0.0.1',
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

describe('required variables by provider and role', () => {
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
    const { BSP_PROVIDER: _bsp, LLM_PROVIDER: _llm, ...implicit } = PRODUCTION;
    expect(badVariables(implicit).sort()).toEqual(['BSP_PROVIDER', 'LLM_PROVIDER']);
    expect(badVariables(PRODUCTION)).toEqual([]);
    // The LLM_BASE_URL-derived default is a default too: production must still say it.
    expect(badVariables({ ...PRODUCTION, LLM_PROVIDER: undefined })).toEqual(['LLM_PROVIDER']);
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
    expect(badVariables({ ...PRODUCTION, BSP_PROVIDER: '', LLM_PROVIDER: '' }).sort()).toEqual([
      'BSP_PROVIDER',
      'LLM_PROVIDER',
    ]);
  });
});

describe('HOST', () => {
  it('is 127.0.0.1 with the sandbox BSP, 0.0.0.0 with the others, unless set', () => {
    expect(validateEnv({}).HOST).toBe('127.0.0.1');
    expect(validateEnv({ BSP_PROVIDER: 'sandbox' }).HOST).toBe('127.0.0.1');
    const meta = { BSP_PROVIDER: 'meta', APP_ROLE: 'worker', META_ACCESS_TOKEN: 't', WHATSAPP_PHONE_NUMBER_ID: '1' };
    expect(validateEnv(meta).HOST).toBe('0.0.0.0');
    expect(validateEnv({ ...meta, HOST: '10.0.0.5' }).HOST).toBe('10.0.0.5');
    expect(validateEnv({ HOST: '0.0.0.0' }).HOST).toBe('0.0.0.0');
    expect(validateEnv({ HOST: '' }).HOST).toBe('127.0.0.1');
  });

  it.each(['0.0.0.0', '::', '::1', '192.168.1.20', 'localhost', 'tawasul-receiver.default.svc.cluster.local'])(
    'accepts %s',
    (host) => {
      expect(validateEnv({ HOST: host }).HOST).toBe(host);
    },
  );

  it.each(['300.1.1.1', '10.0.0', '[::1]', 'http://localhost', 'my host', '-leading.dash', 'a'.repeat(64)])(
    'refuses %s with a line naming HOST',
    (host) => {
      const err = configError({ HOST: host });
      expect(err.lines).toEqual([expect.stringMatching(/^HOST: must be an IP address .* or a host name$/)]);
    },
  );
});

describe('HTTP_REQUEST_TIMEOUT_MS', () => {
  it('defaults to 30 s and takes 1 s to 10 min', () => {
    expect(validateEnv({}).HTTP_REQUEST_TIMEOUT_MS).toBe(30000);
    expect(validateEnv({ HTTP_REQUEST_TIMEOUT_MS: '2000' }).HTTP_REQUEST_TIMEOUT_MS).toBe(2000);
    for (const bad of ['999', '600001', '1.5', 'soon']) {
      expect(badVariables({ HTTP_REQUEST_TIMEOUT_MS: bad })).toEqual(['HTTP_REQUEST_TIMEOUT_MS']);
    }
  });
});

describe('MANAGEMENT_PORT', () => {
  it('must differ from PORT (both servers could not listen)', () => {
    expect(configError({ PORT: '9464', MANAGEMENT_PORT: '9464' }).lines).toEqual([
      'MANAGEMENT_PORT: must differ from PORT',
    ]);
    expect(badVariables({ MANAGEMENT_PORT: '3000' })).toEqual(['MANAGEMENT_PORT']);
  });
});

describe('NODE_ENV=production', () => {
  /** The one line naming `name`, for a production environment with `change` applied. */
  const lineFor = (change: Record<string, string | undefined>, name: string): string => {
    const err = configError({ ...PRODUCTION, ...change });
    expect(err.lines.map((l) => l.split(':')[0])).toEqual([name]);
    return err.lines[0];
  };

  it('the production baseline used below is valid, for each role', () => {
    for (const role of ['receiver', 'worker', 'all'])
      expect(badVariables({ ...PRODUCTION, APP_ROLE: role })).toEqual([]);
  });

  describe('the sandbox BSP', () => {
    it('is refused, on one line naming BSP_PROVIDER', () => {
      expect(lineFor({ BSP_PROVIDER: 'sandbox' }, 'BSP_PROVIDER')).toMatch(
        /sandbox is refused when NODE_ENV=production/,
      );
    });

    it('left implicit is reported once: it must be set explicitly', () => {
      expect(lineFor({ BSP_PROVIDER: undefined }, 'BSP_PROVIDER')).toMatch(/must be set explicitly/);
    });

    it('is fine outside production', () => {
      expect(badVariables({ NODE_ENV: 'development', BSP_PROVIDER: 'sandbox' })).toEqual([]);
      expect(badVariables({ NODE_ENV: 'test', BSP_PROVIDER: 'sandbox' })).toEqual([]);
    });
  });

  describe('LOG_HASH_KEY', () => {
    it('is required', () => {
      expect(lineFor({ LOG_HASH_KEY: undefined }, 'LOG_HASH_KEY')).toMatch(/is required when NODE_ENV=production/);
      expect(lineFor({ LOG_HASH_KEY: '' }, 'LOG_HASH_KEY')).toMatch(/is required/);
    });

    it('needs at least 32 characters', () => {
      expect(lineFor({ LOG_HASH_KEY: 'k'.repeat(31) }, 'LOG_HASH_KEY')).toMatch(/at least 32 characters/);
      expect(badVariables({ ...PRODUCTION, LOG_HASH_KEY: 'k'.repeat(32) })).toEqual([]);
    });
  });

  describe('MANAGEMENT_PORT', () => {
    it('is required, so that /metrics is never served on the public port', () => {
      expect(lineFor({ MANAGEMENT_PORT: undefined }, 'MANAGEMENT_PORT')).toMatch(/required.*\/metrics/);
    });
  });

  describe('peer URLs', () => {
    const chatwoot = {
      CHATWOOT_WEBHOOK_TOKEN: 'chatwoot-token-0123',
      CHATWOOT_API_TOKEN: 'api',
      CHATWOOT_ACCOUNT_ID: '1',
      CHATWOOT_INBOX_ID: '2',
    };
    const plain: [string, Record<string, string>][] = [
      ['META_GRAPH_URL', { META_GRAPH_URL: 'http://graph.internal' }],
      ['D360_BASE_URL', { D360_BASE_URL: 'http://360dialog.internal' }],
      ['LLM_BASE_URL', { LLM_BASE_URL: 'http://vllm:8000/v1' }],
      ['CHATWOOT_BASE_URL', { CHATWOOT_BASE_URL: 'http://chatwoot:3000', ...chatwoot }],
    ];

    it.each(plain)('%s must be https', (name, change) => {
      expect(lineFor(change, name)).toMatch(/must be an https:\/\/ URL when NODE_ENV=production.*ALLOW_PLAIN_HTTP/);
    });

    it.each(plain)('%s may be http with ALLOW_PLAIN_HTTP=true', (_, change) => {
      expect(badVariables({ ...PRODUCTION, ...change, ALLOW_PLAIN_HTTP: 'true' })).toEqual([]);
    });

    it('https passes, and http is fine outside production', () => {
      expect(badVariables({ ...PRODUCTION, CHATWOOT_BASE_URL: 'https://chatwoot.example', ...chatwoot })).toEqual([]);
      expect(badVariables({ LLM_BASE_URL: 'http://vllm:8000/v1', META_GRAPH_URL: 'http://127.0.0.1:9' })).toEqual([]);
    });

    it('a URL the schema already refused is named once', () => {
      expect(lineFor({ META_GRAPH_URL: 'graph.facebook.com' }, 'META_GRAPH_URL')).toMatch(/must be an http\(s\) URL/);
    });

    it('ALLOW_PLAIN_HTTP is a boolean, false by default', () => {
      expect(validateEnv({}).ALLOW_PLAIN_HTTP).toBe(false);
      expect(badVariables({ ALLOW_PLAIN_HTTP: 'sometimes' })).toEqual(['ALLOW_PLAIN_HTTP']);
    });
  });

  describe('secrets need at least 16 characters', () => {
    it.each(['WHATSAPP_APP_SECRET', 'WHATSAPP_VERIFY_TOKEN', 'D360_WEBHOOK_SECRET', 'CHATWOOT_WEBHOOK_TOKEN'])(
      '%s',
      (name) => {
        expect(lineFor({ [name]: 'x'.repeat(15) }, name)).toMatch(/at least 16 characters when NODE_ENV=production/);
        expect(badVariables({ ...PRODUCTION, [name]: 'x'.repeat(16) })).toEqual([]);
      },
    );

    it('every API_KEYS entry, without saying which one is short', () => {
      const line = lineFor({ API_KEYS: `${'a'.repeat(16)},short-key,${'b'.repeat(20)}` }, 'API_KEYS');
      expect(line).toMatch(/every key must be at least 16 characters when NODE_ENV=production \(1 of 3 shorter\)/);
      expect(line).not.toContain('short-key');
      expect(badVariables({ ...PRODUCTION, API_KEYS: `${'a'.repeat(16)},${'b'.repeat(40)}` })).toEqual([]);
    });

    it('ADMIN_PASSWORD, on every role (they share one Secret), when set at all', () => {
      for (const role of ['receiver', 'worker', 'all']) {
        const line = lineFor({ APP_ROLE: role, ADMIN_PASSWORD: 'p'.repeat(15) }, 'ADMIN_PASSWORD');
        expect(line).toBe('ADMIN_PASSWORD: must be at least 16 characters when NODE_ENV=production');
        expect(badVariables({ ...PRODUCTION, APP_ROLE: role, ADMIN_PASSWORD: 'p'.repeat(16) })).toEqual([]);
      }
      // Unset or empty: no dashboard, so no password to guess.
      expect(badVariables({ ...PRODUCTION, ADMIN_PASSWORD: undefined })).toEqual([]);
      expect(badVariables({ ...PRODUCTION, ADMIN_PASSWORD: '' })).toEqual([]);
    });

    it('short secrets are fine outside production', () => {
      expect(
        badVariables({
          BSP_PROVIDER: 'meta',
          APP_ROLE: 'receiver',
          WHATSAPP_PHONE_NUMBER_ID: '1',
          WHATSAPP_APP_SECRET: 's',
          WHATSAPP_VERIFY_TOKEN: 'v',
          API_KEYS: 'k',
          ADMIN_PASSWORD: 'admin',
        }),
      ).toEqual([]);
    });
  });

  it('reports every broken rule at once, one line per variable, naming it', () => {
    const err = configError({
      ...PRODUCTION,
      BSP_PROVIDER: 'sandbox',
      LOG_HASH_KEY: 'short',
      MANAGEMENT_PORT: undefined,
      LLM_BASE_URL: 'http://vllm/v1',
      WHATSAPP_APP_SECRET: 'secret',
      API_KEYS: 'k1,k2',
      ADMIN_PASSWORD: 'admin',
    });
    const names = err.lines.map((l) => l.split(':')[0]);
    expect([...names].sort()).toEqual(
      [
        'ADMIN_PASSWORD',
        'API_KEYS',
        'BSP_PROVIDER',
        'LLM_BASE_URL',
        'LOG_HASH_KEY',
        'MANAGEMENT_PORT',
        'WHATSAPP_APP_SECRET',
      ].sort(),
    );
    for (const line of err.lines) expect(line).toMatch(/^[A-Z0-9_]+: [^\n]+$/);
  });
});
