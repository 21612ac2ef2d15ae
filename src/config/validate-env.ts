import { plainToInstance } from 'class-transformer';
import { getMetadataStorage, type ValidationError, validateSync } from 'class-validator';
import { EnvSchema } from './env.schema';

/** Thrown when the environment is invalid; `lines` holds one readable line per bad variable. */
export class ConfigError extends Error {
  constructor(readonly lines: string[]) {
    super(`invalid configuration:\n${lines.join('\n')}`);
    this.name = 'ConfigError';
  }
}

const describe = (error: ValidationError): string => {
  const reasons = Object.values(error.constraints ?? {});
  // class-validator reports every failed constraint; the first is the most basic one.
  return `${error.property}: ${reasons[reasons.length - 1] ?? 'is invalid'}`;
};

/** Every variable the schema knows, read from class-validator's metadata. */
export function envVariableNames(): string[] {
  const metas = getMetadataStorage().getTargetValidationMetadatas(EnvSchema, '', true, false);
  return [...new Set(metas.map((m) => m.propertyName))];
}

/**
 * Validates raw environment variables against EnvSchema and returns the typed result.
 * Used by ConfigModule.forRoot({ validate }) and by main.ts before anything boots.
 */
export function validateEnv(raw: Record<string, unknown>): EnvSchema {
  const input: Record<string, unknown> = {};
  for (const key of envVariableNames()) {
    // An empty value means "not set": the contract default applies.
    if (typeof raw[key] === 'string' && raw[key] !== '') input[key] = raw[key];
  }
  if (input.LLM_PROVIDER === undefined) input.LLM_PROVIDER = input.LLM_BASE_URL ? 'openai' : 'offline';

  const env = plainToInstance(EnvSchema, input, { exposeDefaultValues: true });
  const lines = validateSync(env, { skipMissingProperties: false }).map(describe);
  if (env.NODE_ENV === 'production') {
    for (const key of ['BSP_PROVIDER', 'LLM_PROVIDER'] as const) {
      if (!raw[key]) lines.push(`${key}: must be set explicitly when NODE_ENV=production`);
    }
  }
  if (lines.length > 0) throw new ConfigError(lines);
  return env;
}
