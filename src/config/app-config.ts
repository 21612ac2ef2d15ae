import { createHash } from 'node:crypto';
import { type AppRole } from '../app-role';
import { type EnvSchema } from './env.schema';

/**
 * The business number of the sandbox when WHATSAPP_PHONE_NUMBER_ID is not set: the id the README's
 * demo payloads carry, so /v1 finds the chats they started.
 */
export const SANDBOX_PHONE_NUMBER_ID = '100000000000001';

/** Bodies of routes other than POST /webhook stay small (SPEC §2, WEBHOOK_BODY_LIMIT). */
export const DEFAULT_BODY_LIMIT = 102400;

/**
 * Typed, validated configuration. Built once from the environment at start-up; nothing reads
 * process.env afterwards. `env` holds every SPEC §2 variable; the getters derive what several
 * modules need.
 */
export class AppConfig {
  constructor(readonly env: Readonly<EnvSchema>) {}

  get role(): AppRole {
    return this.env.APP_ROLE;
  }

  get isProduction(): boolean {
    return this.env.NODE_ENV === 'production';
  }

  /** The hash-tagged root of every Redis key, BullMQ's included: `{tawasul}`. */
  get redisKeyRoot(): string {
    return `{${this.env.REDIS_PREFIX}}`;
  }

  /** Chatwoot takes hand-overs (docs/handover.md); without it a hand-over is a timed pause. */
  get chatwootEnabled(): boolean {
    return this.env.CHATWOOT_BASE_URL !== undefined;
  }

  /**
   * The business number whose chats this deployment keeps: WHATSAPP_PHONE_NUMBER_ID, or, with the
   * sandbox BSP and no number configured, the sandbox's own.
   */
  get phoneNumberId(): string {
    return this.env.WHATSAPP_PHONE_NUMBER_ID ?? SANDBOX_PHONE_NUMBER_ID;
  }

  get clusterNodes(): { host: string; port: number }[] {
    if (!this.env.REDIS_CLUSTER_NODES) return [];
    return this.env.REDIS_CLUSTER_NODES.split(',').map((hp) => {
      const [host, port] = hp.split(':');
      return { host, port: Number(port) };
    });
  }

  /**
   * Key of the HMAC that stands in for phone numbers in logs. Derived from a webhook secret when
   * not given, so that it is stable across restarts but never a plain (reversible) hash.
   */
  get logHashKey(): string {
    if (this.env.LOG_HASH_KEY) return this.env.LOG_HASH_KEY;
    const seed = this.env.WHATSAPP_APP_SECRET ?? this.env.D360_WEBHOOK_SECRET ?? `tawasul-dev-${this.env.REDIS_PREFIX}`;
    return createHash('sha256').update(`log-hash:${seed}`).digest('hex');
  }
}
