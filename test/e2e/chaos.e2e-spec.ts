import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { type ChaosResult, runChaos, shortConfig } from '../../bench/chaos/harness';

/*
 * `npm run chaos` in short: the same harness on the built app (dist/main.js), a few hundred
 * messages in a few dozen chats for 30 s with a fixed seed, a modest kill rate and a generous
 * drain, so that it fails on a broken invariant rather than on a slow machine. The seed, the
 * report and the directory of the logs are printed; CHAOS_SEED=<seed> npm run chaos replays the
 * schedule at full length.
 */

const ROOT = resolve(__dirname, '..', '..');
const { needsBuild } = createRequire(__filename)(join(ROOT, 'scripts', 'start.js')) as {
  needsBuild(root?: string): boolean;
};

/** What `npm start` does when dist/ is missing or older than src/: the processes run the build. */
function build(): Promise<void> {
  return new Promise((resolveBuild, reject) => {
    const child = spawn('npx', ['nest', 'build'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolveBuild() : reject(new Error(`nest build exited ${code}`))));
  });
}

describe('chaos, short run with a fixed seed', () => {
  let result: ChaosResult;

  beforeAll(async () => {
    if (needsBuild(ROOT)) {
      process.stderr.write('chaos: dist/ is missing or older than src/: building it (npx nest build)\n');
      await build();
    }
    result = await runChaos(shortConfig());
    process.stdout.write(`\n${result.report}\n`);
  }, 300_000);

  it('injected the chaos it planned: kills, a Redis restart, LLM outages, Graph API faults, hand-overs', () => {
    const { chaos, verdict, sender } = result;
    expect(chaos.kills.receiver + chaos.kills.worker).toBeGreaterThanOrEqual(2);
    expect(chaos.redisRestarts).toBe(1);
    expect(chaos.llmOutages).toBe(2);
    expect(verdict.sends.throttled + verdict.sends.errorBeforeSend + verdict.sends.errorAfterSend).toBeGreaterThan(0);
    expect(verdict.handovers.episodes).toBeGreaterThanOrEqual(2);
    expect(verdict.redeliveries.accepted).toBeGreaterThan(0);
    expect(sender.refused.size).toBeGreaterThan(0);
  });

  it('every message was accepted with 200 and the bot drained', () => {
    expect(result.verdict.notAccepted).toBe(0);
    expect(result.drained).toBe(true);
  });

  it('loses no message: each answered by the bot, or in Chatwoot for a human, or dead-lettered visibly', () => {
    const v = result.verdict;
    expect(v.lost).toEqual([]);
    expect(v.answeredByBot + v.answeredByHuman + v.deadLettered).toBe(v.accepted);
  });

  it('sends no reply twice', () => {
    expect(result.verdict.duplicates).toEqual([]);
  });

  it("answers each chat's messages in the order they were written, and only in their own chat", () => {
    expect(result.verdict.orderViolations).toEqual([]);
    expect(result.verdict.misrouted).toEqual([]);
  });

  it("relays every agent's reply to the patient exactly once", () => {
    const { agent } = result.verdict;
    expect(agent.accepted).toBeGreaterThan(0);
    expect(agent.notRelayed).toEqual([]);
    expect(agent.relayedTwice).toBe(0);
    expect(agent.relayedOnce).toBe(agent.accepted);
    expect(agent.accepted).toBe(agent.replies);
  });
});
