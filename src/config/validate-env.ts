import { plainToInstance } from 'class-transformer';
import { getMetadataStorage, type ValidationError, validateSync } from 'class-validator';
import { EnvSchema } from './env.schema';
import { productionProblems, SECRET_MIN_LENGTH } from './production-env';

/** Thrown when the environment is invalid; `lines` holds one readable line per bad variable. */
export class ConfigError extends Error {
  constructor(readonly lines: string[]) {
    super(`invalid configuration:\n${lines.join('\n')}`);
    this.name = 'ConfigError';
  }
}

const reasonOf = (error: ValidationError): string => {
  const reasons = Object.values(error.constraints ?? {});
  // class-validator lists the failed constraints in reverse of their declaration: the last is the
  // first declared, the most basic one.
  return reasons[reasons.length - 1] ?? 'is invalid';
};

/** Every variable the schema knows, read from class-validator's metadata. */
export function envVariableNames(): string[] {
  const metas = getMetadataStorage().getTargetValidationMetadatas(EnvSchema, '', true, false);
  return [...new Set(metas.map((m) => m.propertyName))];
}

/**
 * Validates raw environment variables against EnvSchema and returns the typed result. Called by
 * main.ts (and the test app) before anything boots, never through ConfigModule (config.module.ts).
 */
export function validateEnv(raw: Record<string, unknown>): EnvSchema {
  const input: Record<string, unknown> = {};
  for (const key of envVariableNames()) {
    // An empty value means "not set": the schema's default applies.
    if (typeof raw[key] === 'string' && raw[key] !== '') input[key] = raw[key];
  }
  if (input.LLM_PROVIDER === undefined) input.LLM_PROVIDER = input.LLM_BASE_URL ? 'openai' : 'offline';

  const env = plainToInstance(EnvSchema, input, { exposeDefaultValues: true });
  // One line per variable: a value the schema refused is not refused again by a later rule.
  const problems = new Map(validateSync(env, { skipMissingProperties: false }).map((e) => [e.property, reasonOf(e)]));
  const add = (key: string, reason: string): void => {
    if (!problems.has(key)) problems.set(key, reason);
  };
  // Both servers listen: on one port the second would fail to start with EADDRINUSE.
  if (env.MANAGEMENT_PORT !== undefined && env.MANAGEMENT_PORT === env.PORT) {
    add('MANAGEMENT_PORT', 'must differ from PORT');
  }
  if (env.NODE_ENV === 'production') {
    for (const [key, reason] of productionProblems(env, raw)) add(key, reason);
    // Basic auth on /admin/queues has no lockout, and the dashboard retries dead letters: its
    // password must hold out against online guessing as the webhook secrets and API keys do.
    if (env.ADMIN_PASSWORD !== undefined && env.ADMIN_PASSWORD.length < SECRET_MIN_LENGTH) {
      add('ADMIN_PASSWORD', `must be at least ${SECRET_MIN_LENGTH} characters when NODE_ENV=production`);
    }
  }
  if (problems.size > 0) throw new ConfigError([...problems].map(([key, reason]) => `${key}: ${reason}`));
  // The sandbox takes unsigned webhooks, so by default only this machine reaches it.
  env.HOST ??= env.BSP_PROVIDER === 'sandbox' ? '127.0.0.1' : '0.0.0.0';
  return env;
}
