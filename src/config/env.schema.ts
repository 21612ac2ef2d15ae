import 'reflect-metadata';
import { isIP } from 'node:net';
import { Transform, Type } from 'class-transformer';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsOptional,
  IsString,
  Matches,
  Max,
  Min,
  ValidateBy,
  ValidateIf,
} from 'class-validator';
import { AppRole } from '../app-role';

export const BSP_PROVIDERS = ['meta', '360dialog', 'sandbox'] as const;
export type BspProvider = (typeof BSP_PROVIDERS)[number];
export const LLM_PROVIDERS = ['openai', 'offline'] as const;
export type LlmProvider = (typeof LLM_PROVIDERS)[number];
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

const receives = (e: EnvSchema): boolean => e.APP_ROLE !== AppRole.Worker;
const works = (e: EnvSchema): boolean => e.APP_ROLE !== AppRole.Receiver;
const emptyToUndefined = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string' && value.trim() === '' ? undefined : value;
const toBool = ({ value }: { value: unknown }): unknown => {
  if (typeof value !== 'string') return value;
  const v = value.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  return value;
};

/** RFC 1123 host names; all-numeric names are left to isIP, so that 300.1.1.1 is refused. */
const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IsHost = (): PropertyDecorator =>
  ValidateBy({
    name: 'isHost',
    validator: {
      validate: (v: unknown) => typeof v === 'string' && (isIP(v) !== 0 || (HOSTNAME.test(v) && !/^[\d.]+$/.test(v))),
      defaultMessage: () => 'must be an IP address (0.0.0.0, ::, 127.0.0.1…) or a host name',
    },
  });

/**
 * Every variable (the README's Configuration, .env.example), with its default. Values arrive as
 * strings from the environment; class-transformer turns them into numbers and booleans before validation.
 * Provider- and role-specific requirements use @ValidateIf (the README's table of required variables).
 */
export class EnvSchema {
  @IsIn(Object.values(AppRole), { message: 'must be one of receiver, worker, all' })
  APP_ROLE: AppRole = AppRole.All;

  @Type(() => Number)
  @IsInt({ message: 'must be a port number (1-65535)' })
  @Min(1, { message: 'must be a port number (1-65535)' })
  @Max(65535, { message: 'must be a port number (1-65535)' })
  PORT = 3000;

  /**
   * The address the HTTP server binds. No schema default: validateEnv picks 127.0.0.1 for the
   * sandbox BSP (its POST /webhook takes anything unsigned) and 0.0.0.0 otherwise.
   */
  @Transform(emptyToUndefined)
  @IsOptional()
  @IsHost()
  HOST?: string;

  @Transform(emptyToUndefined)
  @IsOptional()
  @Type(() => Number)
  @IsInt({ message: 'must be a port number (1-65535)' })
  @Min(1, { message: 'must be a port number (1-65535)' })
  @Max(65535, { message: 'must be a port number (1-65535)' })
  MANAGEMENT_PORT?: number;

  @IsString()
  NODE_ENV = 'development';

  @Matches(/^rediss?:\/\/\S*$/, { message: 'must be a redis:// or rediss:// URL' })
  REDIS_URL = 'redis://127.0.0.1:6379';

  @Transform(emptyToUndefined)
  @IsOptional()
  @Matches(/^[^\s:,]+:\d{1,5}(,[^\s:,]+:\d{1,5})*$/, { message: 'must be host:port,host:port…' })
  REDIS_CLUSTER_NODES?: string;

  @Matches(/^[A-Za-z0-9_.-]{1,64}$/, { message: 'must be 1-64 letters, digits, _ . or - (no colon, no braces)' })
  REDIS_PREFIX = 'tawasul';

  @ValidateIf((e: EnvSchema) => receives(e) && e.BSP_PROVIDER === 'meta')
  @IsNotEmpty({ message: 'is required with BSP_PROVIDER=meta for the receiver (the verify token set in Meta)' })
  WHATSAPP_VERIFY_TOKEN?: string;

  @ValidateIf((e: EnvSchema) => receives(e) && e.BSP_PROVIDER === 'meta')
  @IsNotEmpty({ message: 'is required with BSP_PROVIDER=meta for the receiver (the Meta app secret)' })
  WHATSAPP_APP_SECRET?: string;

  @ValidateIf((e: EnvSchema) => e.BSP_PROVIDER === 'meta' || e.BSP_PROVIDER === '360dialog')
  @IsNotEmpty({ message: 'is required with BSP_PROVIDER=meta or 360dialog (the business phone_number_id)' })
  @Matches(/^\d+$/, { message: 'must be the numeric phone_number_id' })
  WHATSAPP_PHONE_NUMBER_ID?: string;

  @IsIn(BSP_PROVIDERS, { message: 'must be one of meta, 360dialog, sandbox' })
  BSP_PROVIDER: BspProvider = 'sandbox';

  @ValidateIf((e: EnvSchema) => works(e) && e.BSP_PROVIDER === 'meta')
  @IsNotEmpty({ message: 'is required with BSP_PROVIDER=meta for the worker (system-user token)' })
  META_ACCESS_TOKEN?: string;

  @Matches(/^https?:\/\/\S+$/, { message: 'must be an http(s) URL' })
  META_GRAPH_URL = 'https://graph.facebook.com';

  @Matches(/^v\d+\.\d+$/, { message: 'must look like v23.0' })
  META_API_VERSION = 'v23.0';

  @ValidateIf((e: EnvSchema) => works(e) && e.BSP_PROVIDER === '360dialog')
  @IsNotEmpty({ message: 'is required with BSP_PROVIDER=360dialog for the worker (channel API key)' })
  D360_API_KEY?: string;

  @Matches(/^https?:\/\/\S+$/, { message: 'must be an http(s) URL' })
  D360_BASE_URL = 'https://waba-v2.360dialog.io';

  @ValidateIf((e: EnvSchema) => receives(e) && e.BSP_PROVIDER === '360dialog')
  @IsNotEmpty({ message: 'is required with BSP_PROVIDER=360dialog for the receiver (X-Webhook-Secret)' })
  D360_WEBHOOK_SECRET?: string;

  @IsIn(LLM_PROVIDERS, { message: 'must be openai or offline' })
  LLM_PROVIDER: LlmProvider = 'offline';

  @ValidateIf((e: EnvSchema) => works(e) && e.LLM_PROVIDER === 'openai')
  @IsNotEmpty({ message: 'is required with LLM_PROVIDER=openai for the worker (e.g. http://vllm:8000/v1)' })
  @Matches(/^https?:\/\/\S+$/, { message: 'must be an http(s) URL' })
  LLM_BASE_URL?: string;

  @IsNotEmpty()
  LLM_MODEL = 'default';

  @Transform(emptyToUndefined)
  @IsOptional()
  @IsString()
  LLM_API_KEY?: string;

  @Type(() => Number)
  @IsInt({ message: 'must be a whole number of milliseconds ≥ 100' })
  @Min(100, { message: 'must be a whole number of milliseconds ≥ 100' })
  LLM_TIMEOUT_MS = 30000;

  @Type(() => Number)
  @IsInt({ message: 'must be a whole number ≥ 1' })
  @Min(1, { message: 'must be a whole number ≥ 1' })
  LLM_MAX_CONCURRENCY = 32;

  @Type(() => Number)
  @IsInt({ message: 'must be a whole number ≥ 1' })
  @Min(1, { message: 'must be a whole number ≥ 1' })
  LLM_MAX_ATTEMPTS = 5;

  @Type(() => Number)
  @IsInt({ message: 'must be a whole number of milliseconds ≥ 0' })
  @Min(0, { message: 'must be a whole number of milliseconds ≥ 0' })
  LLM_BACKOFF_MS = 2000;

  @IsNotEmpty()
  LLM_HANDOFF_MARKER = '[HANDOFF]';

  /** The clinic's declared actions (docs/actions.md); an absent default file means none. */
  @IsNotEmpty()
  ACTIONS_FILE = 'config/actions.json';

  /** Where the declared actions' paths are appended. Required once an action is declared. */
  @Transform(emptyToUndefined)
  @IsOptional()
  @Matches(/^https?:\/\/[^\s?#]+$/, { message: 'must be an http(s) URL without query or fragment' })
  CLINIC_API_BASE_URL?: string;

  /** Sent to the clinic's API as a Bearer token. */
  @Transform(emptyToUndefined)
  @IsOptional()
  @IsString()
  CLINIC_API_TOKEN?: string;

  /**
   * An MCP server (Streamable HTTP) whose tools are offered beside the declared actions, under the
   * same rules (docs/actions.md, "MCP source"). Listed at start-up by every process that runs turns.
   */
  @Transform(emptyToUndefined)
  @IsOptional()
  @Matches(/^https?:\/\/\S+$/, { message: 'must be an http(s) URL' })
  MCP_SERVER_URL?: string;

  /** Sent to the MCP server as a Bearer token. */
  @Transform(emptyToUndefined)
  @IsOptional()
  @IsString()
  MCP_SERVER_TOKEN?: string;

  /**
   * One MCP tool call's limit, and the limit of connecting and listing: MCP tools declare none of
   * their own. A side-effecting call that reached the server and did not answer in time is never
   * repeated: the chat is handed over.
   */
  @Type(() => Number)
  @IsInt({ message: 'must be a whole number of milliseconds between 100 and 60000' })
  @Min(100, { message: 'must be a whole number of milliseconds between 100 and 60000' })
  @Max(60000, { message: 'must be a whole number of milliseconds between 100 and 60000' })
  MCP_TIMEOUT_MS = 10000;

  /** Rounds of action calls in one turn before the LLM must answer without them. */
  @Type(() => Number)
  @IsInt({ message: 'must be a whole number between 1 and 20' })
  @Min(1, { message: 'must be a whole number between 1 and 20' })
  @Max(20, { message: 'must be a whole number between 1 and 20' })
  ACTIONS_MAX_STEPS = 4;

  @IsNotEmpty()
  SYSTEM_PROMPT_FILE = 'config/prompts/system.md';

  @IsNotEmpty()
  CLINIC_NAME = 'Demo Clinic';

  @Transform(emptyToUndefined)
  @IsOptional()
  @Matches(/^\+?[0-9 ()-]{5,20}$/, { message: 'must be a phone number such as +971 4 000 0000' })
  CLINIC_PHONE?: string;

  @IsNotEmpty()
  MESSAGES_FILE = 'config/messages.json';

  @IsNotEmpty()
  RECEPTIONIST_FILE = 'config/receptionist.json';

  @Type(() => Number)
  @IsInt({ message: 'must be a whole number of seconds ≥ 7200' })
  @Min(7200, { message: 'must be a whole number of seconds ≥ 7200 (Meta retries for up to 7 days)' })
  DEDUP_TTL_SECONDS = 604800;

  @Type(() => Number)
  @IsInt({ message: 'must be a whole number of seconds ≥ 60' })
  @Min(60, { message: 'must be a whole number of seconds ≥ 60' })
  CONVERSATION_TTL_SECONDS = 86400;

  @Type(() => Number)
  @IsInt({ message: 'must be a whole number ≥ 1' })
  @Min(1, { message: 'must be a whole number ≥ 1' })
  HISTORY_MAX_MESSAGES = 30;

  @Type(() => Number)
  @IsInt({ message: 'must be a whole number of milliseconds ≥ 0' })
  @Min(0, { message: 'must be a whole number of milliseconds ≥ 0' })
  TURN_DEBOUNCE_MS = 1000;

  @Type(() => Number)
  @IsInt({ message: 'must be a whole number between 1 and 1000' })
  @Min(1, { message: 'must be a whole number between 1 and 1000' })
  @Max(1000, { message: 'must be a whole number between 1 and 1000' })
  WORKER_CONCURRENCY = 50;

  @Transform(toBool)
  @IsBoolean({ message: 'must be true or false' })
  MARK_READ = true;

  @Type(() => Number)
  @IsInt({ message: 'must be a whole number of milliseconds between 50 and 60000' })
  @Min(50, { message: 'must be a whole number of milliseconds between 50 and 60000' })
  @Max(60000, { message: 'must be a whole number of milliseconds between 50 and 60000' })
  INGEST_TIMEOUT_MS = 2000;

  @Type(() => Number)
  @IsInt({ message: 'must be a whole number of bytes between 1024 and 104857600' })
  @Min(1024, { message: 'must be a whole number of bytes between 1024 and 104857600' })
  @Max(104857600, { message: 'must be a whole number of bytes between 1024 and 104857600' })
  WEBHOOK_BODY_LIMIT = 3145728;

  @Transform(emptyToUndefined)
  @IsOptional()
  @Matches(/^[^:,]+:\d+(\.\d+)?(,[^:,]+:\d+(\.\d+)?)*$/u, { message: 'must be word:weight,word:weight…' })
  ESCALATION_KEYWORDS?: string;

  @Type(() => Number)
  @Min(0.01, { message: 'must be a positive number' })
  ESCALATION_THRESHOLD = 3;

  @Transform(emptyToUndefined)
  @IsOptional()
  @Matches(/^https?:\/\/\S+$/, { message: 'must be an http(s) URL' })
  ESCALATION_WEBHOOK_URL?: string;

  @Type(() => Number)
  @IsInt({ message: 'must be a whole number of seconds ≥ 1' })
  @Min(1, { message: 'must be a whole number of seconds ≥ 1' })
  HANDOFF_PAUSE_SECONDS = 1800;

  @Transform(emptyToUndefined)
  @IsOptional()
  @Matches(/^https?:\/\/\S+$/, { message: 'must be an http(s) URL' })
  CHATWOOT_BASE_URL?: string;

  @ValidateIf((e: EnvSchema) => works(e) && !!e.CHATWOOT_BASE_URL)
  @IsNotEmpty({ message: 'is required with CHATWOOT_BASE_URL for the worker' })
  CHATWOOT_API_TOKEN?: string;

  @ValidateIf((e: EnvSchema) => works(e) && !!e.CHATWOOT_BASE_URL)
  @IsNotEmpty({ message: 'is required with CHATWOOT_BASE_URL for the worker' })
  @Matches(/^\d+$/, { message: 'must be a numeric account id' })
  CHATWOOT_ACCOUNT_ID?: string;

  @ValidateIf((e: EnvSchema) => works(e) && !!e.CHATWOOT_BASE_URL)
  @IsNotEmpty({ message: 'is required with CHATWOOT_BASE_URL for the worker' })
  @Matches(/^\d+$/, { message: 'must be a numeric inbox id' })
  CHATWOOT_INBOX_ID?: string;

  @ValidateIf((e: EnvSchema) => receives(e) && !!e.CHATWOOT_BASE_URL)
  @IsNotEmpty({ message: 'is required with CHATWOOT_BASE_URL for the receiver (?token= on /chatwoot/webhook)' })
  CHATWOOT_WEBHOOK_TOKEN?: string;

  @Transform(emptyToUndefined)
  @IsOptional()
  @IsString()
  CHATWOOT_WEBHOOK_SECRET?: string;

  @Transform(emptyToUndefined)
  @IsOptional()
  @Matches(/^[^,\s]+(,[^,\s]+)*$/, { message: 'must be comma-separated keys without spaces' })
  API_KEYS?: string;

  @IsNotEmpty()
  PRICING_FILE = 'config/pricing.json';

  @Transform(emptyToUndefined)
  @IsOptional()
  @Matches(/^[a-z0-9_]+:[A-Za-z_]{2,10}(:(marketing|utility|authentication))?$/, {
    message: 'must be template_name:language[:category], e.g. reengage:en or reengage:en:marketing',
  })
  REENGAGEMENT_TEMPLATE?: string;

  @IsIn(LOG_LEVELS, { message: `must be one of ${LOG_LEVELS.join(', ')}` })
  LOG_LEVEL = 'info';

  @Transform(emptyToUndefined)
  @IsOptional()
  @IsString()
  LOG_HASH_KEY?: string;

  /** Turns /admin/queues on; 16+ characters in production (validate-env.ts). */
  @Transform(emptyToUndefined)
  @IsOptional()
  @IsString()
  ADMIN_PASSWORD?: string;

  /**
   * In production the peer URLs (Graph API, 360dialog, LLM, Chatwoot) must be
   * https unless this is true, for peers reached over a private network.
   */
  @Transform(toBool)
  @IsBoolean({ message: 'must be true or false' })
  ALLOW_PLAIN_HTTP = false;

  /**
   * Longest a client may take to send one whole request, headers and body, so that
   * a client trickling a 3 MB body cannot hold a socket and its buffer for ever.
   */
  @Type(() => Number)
  @IsInt({ message: 'must be a whole number of milliseconds between 1000 and 600000' })
  @Min(1000, { message: 'must be a whole number of milliseconds between 1000 and 600000' })
  @Max(600000, { message: 'must be a whole number of milliseconds between 1000 and 600000' })
  HTTP_REQUEST_TIMEOUT_MS = 30000;

  /** How long the receiver keeps serving after SIGTERM (endpoints need time to update). */
  @Type(() => Number)
  @IsInt({ message: 'must be a whole number of milliseconds between 0 and 60000' })
  @Min(0, { message: 'must be a whole number of milliseconds between 0 and 60000' })
  @Max(60000, { message: 'must be a whole number of milliseconds between 0 and 60000' })
  SHUTDOWN_DRAIN_MS = 2000;

  /** A worker's lease on a lane; renewed while it works, taken over when it lapses. */
  @Type(() => Number)
  @IsInt({ message: 'must be a whole number of milliseconds between 1000 and 600000' })
  @Min(1000, { message: 'must be a whole number of milliseconds between 1000 and 600000' })
  @Max(600000, { message: 'must be a whole number of milliseconds between 1000 and 600000' })
  TURN_LEASE_MS = 3000;

  /** How long a send of unknown outcome waits for its status before it is resent. */
  @Type(() => Number)
  @IsInt({ message: 'must be a whole number of milliseconds between 1000 and 3600000' })
  @Min(1000, { message: 'must be a whole number of milliseconds between 1000 and 3600000' })
  @Max(3600000, { message: 'must be a whole number of milliseconds between 1000 and 3600000' })
  SEND_UNKNOWN_WAIT_MS = 30000;
}
