import { createHash } from 'node:crypto';
import { type AppRole, servesHttpApi } from '../app-role';
import { type EnvSchema } from './env.schema';

/**
 * The business number of the sandbox when WHATSAPP_PHONE_NUMBER_ID is not set: the id the README's
 * demo payloads carry, so /v1 finds the chats they started.
 */
export const SANDBOX_PHONE_NUMBER_ID = '100000000000001';

/**
 * The catalog the sandbox's demo clinic API implements (docs/actions.md): the clinic example, so
 * the demo books through exactly the actions a real clinic would declare.
 */
export const DEMO_ACTIONS_FILE = 'config/examples/actions.clinic.json';

/** Bodies of routes other than POST /webhook stay small (POST /webhook has WEBHOOK_BODY_LIMIT). */
export const DEFAULT_BODY_LIMIT = 102400;

/**
 * Typed, validated configuration. Built once from the environment at start-up; nothing reads
 * process.env afterwards. `env` holds every variable; the getters derive what several
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

  /**
   * With the sandbox BSP and no clinic system of its own, a process that serves /sandbox plays the
   * clinic too: a small booking API under /sandbox/clinic, so the offline demo can book.
   */
  get demoClinic(): boolean {
    return this.env.BSP_PROVIDER === 'sandbox' && !this.env.CLINIC_API_BASE_URL && servesHttpApi(this.role);
  }

  /** CLINIC_API_BASE_URL, or the demo clinic's address on this process's own port. */
  get clinicApiBaseUrl(): string | undefined {
    if (this.env.CLINIC_API_BASE_URL || !this.demoClinic) return this.env.CLINIC_API_BASE_URL;
    const host = this.env.HOST;
    const loopback = !host || host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
    return `http://${loopback.includes(':') ? `[${loopback}]` : loopback}:${this.env.PORT}/sandbox/clinic`;
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
