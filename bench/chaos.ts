/**
 * `npm run chaos` — the built app under Meta-like traffic while its processes, Redis, the LLM and
 * the Graph API fail on a seeded schedule; then it drains, and every message must have been
 * answered once, in order. Exits 1 when an invariant fails. See bench/chaos/README.md.
 *
 * Knobs (defaults): CHAOS_SEED (random, always printed), CHAOS_MESSAGES (3000), CHAOS_CHATS (200),
 * CHAOS_MAX_PER_CHAT, CHAOS_DURATION (s, 150), CHAOS_RECEIVERS (2), CHAOS_WORKERS (3),
 * CHAOS_KILL_EVERY (mean s between SIGKILLs, 6; 0 = none), CHAOS_PAUSE_EVERY (mean s between
 * SIGSTOP pauses, 12), CHAOS_REDIS_RESTARTS (4), CHAOS_LLM_OUTAGES (8), CHAOS_GRAPH_FAULTS (18),
 * CHAOS_DRAIN_TIMEOUT (s, 180), CHAOS_SEND_UNKNOWN_WAIT_MS (30000), CHAOS_TURN_LEASE_MS (3000),
 * CHAOS_NICE (0), CHAOS_LOG_LEVEL (the app's, info), CHAOS_DIR (where logs go), CHAOS_PRESET=short
 * (the CI test's settings as the base).
 */
import { configFromEnv, runChaos } from './chaos/harness';

async function main(): Promise<number> {
  const config = configFromEnv();
  const result = await runChaos(config, (line) => console.log(line));
  console.log(`\n${result.report}`);
  return result.passed ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`chaos run failed to run: ${err.stack ?? err.message}`);
    process.exit(2);
  },
);
