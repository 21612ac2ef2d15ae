export enum AppRole {
  Receiver = 'receiver',
  Worker = 'worker',
  All = 'all',
}

const ROLES: readonly string[] = Object.values(AppRole);

export function isAppRole(value: unknown): value is AppRole {
  return typeof value === 'string' && ROLES.includes(value);
}

/**
 * The role comes from `--role=<x>` (or `--role <x>`) when given, else APP_ROLE, else `all`.
 * Returns the raw string so that validation reports a bad value in the usual one-line form.
 */
export function readRoleFlag(env: NodeJS.ProcessEnv, argv: readonly string[]): string {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg.startsWith('--role=')) return arg.slice('--role='.length);
    // A bare `--role` is a mistake, not "use APP_ROLE": the empty value fails validation loudly.
    if (arg === '--role') return argv[i + 1] ?? '';
  }
  return env.APP_ROLE ?? AppRole.All;
}

export const servesHttpApi = (role: AppRole): boolean => role !== AppRole.Worker;
export const consumesJobs = (role: AppRole): boolean => role !== AppRole.Receiver;
