/**
 * Bounds on graceful shutdown (README, "Graceful shutdown"). A Redis that is stopped or frozen
 * must never make a rollout wait out the orchestrator's whole grace period, nor Ctrl-C hang.
 */

/** After the drain, the process exits (code 0) within this, whatever Redis does. */
export const SHUTDOWN_CLOSE_LIMIT_MS = 10_000;

/**
 * Of that limit, how long a job in flight may take to finish; the rest is for closing the HTTP
 * server and the Redis connections. A job still running then is cut short: its lane's lease
 * lapses and another worker resumes the turn, as after a crash.
 */
export const JOB_FINISH_LIMIT_MS = 8_000;

/** How long a Redis connection's QUIT may wait for its answer before the socket is just dropped. */
export const REDIS_QUIT_LIMIT_MS = 1_000;

/** True when `promise` settles (either way) within `ms`, false when it is still pending then. */
export function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, ms))));
  const settled = promise.then(
    () => true,
    () => true,
  );
  return Promise.race([settled, late]).finally(() => clearTimeout(timer));
}
