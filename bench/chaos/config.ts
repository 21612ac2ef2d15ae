import { randomInt } from 'node:crypto';

/** Everything that shapes a chaos run; the seed decides every random choice within it. */
export interface ChaosConfig {
  seed: number;
  /** Patient messages over the whole run. */
  messages: number;
  chats: number;
  /**
   * At most this many messages in one chat. The app answers a chat at most 10 turns a minute (a
   * flood waits for the window): a short run keeps under it so that its drain stays short.
   */
  maxPerChat: number;
  /** Seconds of traffic and chaos; the drain comes after. */
  durationS: number;
  receivers: number;
  workers: number;
  /** Mean seconds between two SIGKILLs (of a receiver or a worker). */
  killEveryS: number;
  /** Mean seconds between two SIGSTOP pauses (1–6 s, then SIGCONT) of a receiver or a worker; 0: none. */
  pauseEveryS: number;
  redisRestarts: number;
  llmOutages: number;
  graphFaults: number;
  /** Share of the chats that ask for a person at some point (a hand-over to Chatwoot). */
  handoverShare: number;
  /** Share of the messages (and statuses) Meta delivers a second time. */
  redeliveryShare: number;
  /** How long the bot may take to answer everything after the chaos ends. */
  drainTimeoutS: number;
  /** The app's own settings, shortened so that a run of minutes sees every path. */
  app: {
    leaseMs: number;
    sendUnknownWaitMs: number;
    llmTimeoutMs: number;
    llmBackoffMs: number;
    llmMaxAttempts: number;
    debounceMs: number;
    logLevel: string;
  };
  /**
   * Niceness of the app's processes (0–19). On a shared machine a high value starves them of CPU
   * the way an overloaded node does: event loops stall past their leases.
   */
  nice: number;
  /** Where logs and the schedule go; a fresh directory under the system's temp dir by default. */
  runDir?: string;
  /** Prints progress while it runs (the entry point does; the CI test keeps quiet). */
  verbose: boolean;
}

/** The long run of `npm run chaos`: about 3–5 minutes on a 2-core machine. */
export function longConfig(seed: number = randomSeed()): ChaosConfig {
  return {
    seed,
    messages: 3000,
    chats: 200,
    maxPerChat: Number.POSITIVE_INFINITY,
    durationS: 150,
    receivers: 2,
    workers: 3,
    killEveryS: 6,
    pauseEveryS: 12,
    redisRestarts: 4,
    llmOutages: 8,
    graphFaults: 18,
    handoverShare: 0.08,
    redeliveryShare: 0.05,
    drainTimeoutS: 180,
    app: {
      leaseMs: 3000,
      sendUnknownWaitMs: 30000,
      llmTimeoutMs: 2000,
      llmBackoffMs: 500,
      llmMaxAttempts: 5,
      debounceMs: 200,
      logLevel: 'info',
    },
    nice: 0,
    verbose: true,
  };
}

/**
 * The short run of the CI test: a fixed seed, a modest kill rate and a generous drain, so that it
 * fails on a broken invariant and not on a slow machine. Seed 22 draws every kind of fault within
 * 30 s: SIGKILLs of two workers and a receiver, SIGSTOP pauses of a receiver and a worker, a Redis
 * restart, an LLM answering 503 and one that hangs, 130429 periods and 500s both before and after
 * Meta took the message.
 */
export function shortConfig(seed = 22): ChaosConfig {
  return {
    ...longConfig(seed),
    messages: 280,
    chats: 40,
    maxPerChat: 9,
    durationS: 30,
    killEveryS: 7,
    pauseEveryS: 15,
    redisRestarts: 1,
    llmOutages: 2,
    graphFaults: 5,
    handoverShare: 0.15,
    drainTimeoutS: 60,
    app: { ...longConfig(seed).app, sendUnknownWaitMs: 20000 },
    verbose: false,
  };
}

export function randomSeed(): number {
  return randomInt(1, 2 ** 31 - 1);
}

const num = (env: NodeJS.ProcessEnv, name: string): number | undefined => {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number, got "${raw}"`);
  return value;
};

/** The long run, with CHAOS_* overrides from the environment. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): ChaosConfig {
  const preset = env.CHAOS_PRESET === 'short' ? shortConfig : longConfig;
  const seed = num(env, 'CHAOS_SEED');
  const base = preset(seed === undefined ? randomSeed() : Math.floor(seed));
  const pick = (name: string, fallback: number): number => num(env, name) ?? fallback;
  return {
    ...base,
    verbose: true,
    messages: pick('CHAOS_MESSAGES', base.messages),
    chats: Math.max(1, pick('CHAOS_CHATS', base.chats)),
    maxPerChat: Math.max(1, pick('CHAOS_MAX_PER_CHAT', base.maxPerChat)),
    durationS: Math.max(5, pick('CHAOS_DURATION', base.durationS)),
    receivers: Math.max(1, pick('CHAOS_RECEIVERS', base.receivers)),
    workers: Math.max(1, pick('CHAOS_WORKERS', base.workers)),
    killEveryS: pick('CHAOS_KILL_EVERY', base.killEveryS),
    pauseEveryS: pick('CHAOS_PAUSE_EVERY', base.pauseEveryS),
    redisRestarts: pick('CHAOS_REDIS_RESTARTS', base.redisRestarts),
    llmOutages: pick('CHAOS_LLM_OUTAGES', base.llmOutages),
    graphFaults: pick('CHAOS_GRAPH_FAULTS', base.graphFaults),
    drainTimeoutS: pick('CHAOS_DRAIN_TIMEOUT', base.drainTimeoutS),
    nice: Math.min(19, Math.floor(pick('CHAOS_NICE', base.nice))),
    runDir: env.CHAOS_DIR || undefined,
    app: {
      ...base.app,
      leaseMs: pick('CHAOS_TURN_LEASE_MS', base.app.leaseMs),
      sendUnknownWaitMs: pick('CHAOS_SEND_UNKNOWN_WAIT_MS', base.app.sendUnknownWaitMs),
      logLevel: env.CHAOS_LOG_LEVEL || base.app.logLevel,
    },
  };
}
