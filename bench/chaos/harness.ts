import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RecordedRequest } from '../../test/fakes/fake-graph.server';
import { FakeAgent } from './agent';
import { ChaosCluster, CHATWOOT_WEBHOOK_TOKEN, logHashOf, PHONE_NUMBER_ID, SECRET } from './cluster';
import { type ChaosConfig } from './config';
import { MetaSender, type SenderStats } from './meta-sender';
import { Monkey, type MonkeyStats } from './monkey';
import { chatOfWaId, makePlan, waIdOf } from './plan';
import { Prng } from './prng';
import { type ChaosTimings, failuresOf, formatReport } from './report';
import { cannedTexts, judge, type Verdict } from './verdict';

export { longConfig, shortConfig, configFromEnv, type ChaosConfig } from './config';

export interface ChaosResult {
  config: ChaosConfig;
  verdict: Verdict;
  /** What the chaos did: a run that injected nothing proves nothing. */
  chaos: MonkeyStats;
  sender: SenderStats;
  timings: ChaosTimings;
  drained: boolean;
  /** Why the run failed; empty when every invariant held. */
  failures: string[];
  passed: boolean;
  report: string;
  runDir: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/**
 * One chaos run: the built app under Meta-like traffic while processes, Redis, the LLM and the
 * Graph API fail on the seed's schedule; then the chaos stops, the bot drains, and what patients
 * and agents received is checked (verdict.ts). `say` gets progress lines as the run goes.
 */
export async function runChaos(
  config: ChaosConfig,
  say: (line: string) => void = () => undefined,
): Promise<ChaosResult> {
  const began = Date.now();
  const runDir = config.runDir ?? mkdtempSync(join(tmpdir(), `tawasul-chaos-${config.seed}-`));
  mkdirSync(runDir, { recursive: true });
  const plan = makePlan(config);
  writeFileSync(join(runDir, 'schedule.json'), JSON.stringify({ config, events: plan.events }, null, 2));
  let t0 = began;
  const timelineFile = join(runDir, 'timeline.log');
  const timeline = (line: string): void => {
    const now = new Date();
    const stamped = `+${((now.getTime() - t0) / 1000).toFixed(1).padStart(6)}s ${now.toISOString().slice(11, 23)} ${line}`;
    appendFileSync(timelineFile, `${stamped}\n`);
    if (config.verbose) say(stamped);
  };
  say(
    `chaos seed ${config.seed}: ${config.messages} messages, ${config.chats} chats, ${config.durationS} s; ${runDir}`,
  );

  const cluster = await ChaosCluster.start(config, runDir).catch((err: Error) => {
    rmSync(join(runDir, 'app'), { recursive: true, force: true });
    throw err;
  });
  // Timers and retry loops that must stop however the run ends, or they would hold the process.
  const cleanups: (() => void)[] = [];
  try {
    const startupMs = Date.now() - began;
    const { llm, graph, chatwoot } = cluster;
    llm.latencyMs = 100;
    const sender = new MetaSender(
      cluster.receivers.map((r) => r.url),
      SECRET,
      PHONE_NUMBER_ID,
      Prng.stream(config.seed, 'sender'),
    );
    const stamps = new Map<RecordedRequest, number>();
    graph.onRequest((request) => {
      stamps.set(request, Date.now());
      sender.onGraphSend(request);
    });
    const agent = new FakeAgent(
      chatwoot,
      graph,
      (payload) => sender.postChatwoot(payload, CHATWOOT_WEBHOOK_TOKEN),
      Prng.stream(config.seed, 'agent'),
    );
    const monkey = new Monkey(cluster, timeline);
    cleanups.push(
      () => agent.stop(),
      () => sender.stopRetryingAt(Date.now()),
    );

    t0 = Date.now();
    const durationMs = config.durationS * 1000;
    const giveUpAt = t0 + durationMs + config.drainTimeoutS * 1000;
    sender.stopRetryingAt(giveUpAt);
    agent.start();
    const progress = setInterval(() => {
      const accepted = [...sender.records.values()].filter((r) => r.acceptedAt !== undefined).length;
      const received = graph.sends().filter((r) => r.wamid).length;
      timeline(
        `progress: ${accepted}/${config.messages} accepted, ${received} sends received, ${agent.episodes.length} hand-overs`,
      );
    }, 15_000);
    cleanups.push(() => clearInterval(progress));
    const sending = sender.sendAll(plan.byChat, t0);
    await monkey.run(plan.events, t0);
    await sleep(t0 + durationMs - Date.now());
    await monkey.stopAndRestore();
    const chaosEndedAt = Date.now();
    timeline('chaos over: every process up, Redis up, LLM and Graph API healthy');
    await sending;
    const lastAcceptedAt = Math.max(...[...sender.records.values()].map((r) => r.acceptedAt ?? 0));

    const drainedAt = await drain(cluster, sender, agent, chaosEndedAt + config.drainTimeoutS * 1000, timeline);
    clearInterval(progress);
    timeline(drainedAt ? 'drained' : 'NOT drained within the timeout');
    if (!drainedAt) {
      const stuck = await cluster.stuckLanes().catch((err: Error) => [{ error: err.message }]);
      writeFileSync(join(runDir, 'stuck-lanes.json'), JSON.stringify(stuck, null, 2));
      timeline(`${stuck.length} lanes still waiting: see stuck-lanes.json`);
    }
    agent.stop(Date.now());
    sender.stopRetryingAt(Date.now());
    await agent.settled();

    const verdict = judge({
      records: sender.records,
      graphRequests: graph.requests,
      stamps,
      chatwoot,
      llm,
      episodes: agent.episodes,
      deadLetters: await cluster.deadLetters(),
      outages: monkey.outages,
      statusAcceptedAt: sender.statusAcceptedAt,
      ackWrittenAt: cluster.ackWrittenAt,
      logIdOf: (chat) => logHashOf(`c.${PHONE_NUMBER_ID}.${waIdOf(chat)}`),
      canned: cannedTexts(),
      llmTimeoutMs: config.app.llmTimeoutMs,
    });
    const timings: ChaosTimings = {
      startupMs,
      chaosMs: chaosEndedAt - t0,
      drainMs: drainedAt ? drainedAt - chaosEndedAt : undefined,
      drainAfterLastMessageMs: drainedAt ? drainedAt - lastAcceptedAt : undefined,
      totalMs: Date.now() - began,
    };
    const failures = failuresOf(verdict, drainedAt !== undefined);
    const report = formatReport({
      config,
      verdict,
      sender: sender.stats,
      monkey: monkey.stats,
      timings,
      runDir,
      failures,
    });
    writeFileSync(join(runDir, 'report.txt'), `${report}\n`);
    writeFileSync(join(runDir, 'verdict.json'), JSON.stringify(verdict, null, 2));
    writeEvidence(runDir, t0, graph.requests, stamps, sender, cluster.ackWrittenAt);
    return {
      config,
      verdict,
      chaos: monkey.stats,
      sender: sender.stats,
      timings,
      drained: drainedAt !== undefined,
      failures,
      passed: failures.length === 0,
      report,
      runDir,
    };
  } finally {
    for (const cleanup of cleanups) cleanup();
    await cluster.close();
    rmSync(join(runDir, 'app'), { recursive: true, force: true });
  }
}

/**
 * Waits until nothing is left to do: the sender and the agent have nothing in flight, every chat
 * and desk lane is done, and nothing new reached the fakes over two checks a second apart.
 * Returns when that was first seen, or undefined at the deadline.
 */
async function drain(
  cluster: ChaosCluster,
  sender: MetaSender,
  agent: FakeAgent,
  deadline: number,
  timeline: (line: string) => void,
): Promise<number | undefined> {
  const activity = (): string =>
    `${cluster.graph.requests.length}/${cluster.llm.requests.length}/${cluster.chatwoot.requests.length}`;
  let quietSince: { at: number; activity: string } | undefined;
  let nextNote = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (Date.now() >= nextNote) {
      nextNote += 10_000;
      const episodes = agent.episodes.filter((e) => e.state !== 'done' && e.state !== 'abandoned').length;
      const redis = await cluster.busy().catch((err: Error) => `redis: ${err.message}`);
      timeline(`draining: ${redis}; sender ${sender.idle() ? 'idle' : 'busy'}, ${episodes} hand-overs open`);
    }
    const quiet = sender.idle() && agent.idle() && (await cluster.isQuiet().catch(() => false));
    if (!quiet) quietSince = undefined;
    else if (!quietSince || quietSince.activity !== activity()) quietSince = { at: Date.now(), activity: activity() };
    else if (Date.now() - quietSince.at >= 1000) return quietSince.at;
    await sleep(250);
  }
  return undefined;
}

/**
 * What the verdict was computed from, one JSON line per send and per message, times in ms since
 * the traffic started: sends.jsonl (chat, part key, how the fake answered, whether Meta took it,
 * the tokens it answers, when its status was accepted and its ack written) and messages.jsonl.
 */
function writeEvidence(
  runDir: string,
  t0: number,
  requests: readonly RecordedRequest[],
  stamps: ReadonlyMap<RecordedRequest, number>,
  sender: MetaSender,
  acks: ReadonlyMap<string, number>,
): void {
  const rel = (t: number | undefined): number | undefined => (t === undefined ? undefined : t - t0);
  const sends = requests
    .filter((r) => r.type === 'send')
    .map((r) => {
      const key = r.body?.biz_opaque_callback_data as string | undefined;
      const text = String(r.body?.text?.body ?? '');
      return JSON.stringify({
        seq: r.seq,
        t: rel(stamps.get(r)),
        chat: chatOfWaId(String(r.body?.to ?? '')),
        key,
        behaviour: r.behaviour,
        received: !!r.wamid,
        tokens: text.match(/\[c\d+\.\d+\]/g) ?? [],
        kind: /\[c\d+\.\d+\]/.test(text) ? 'bot' : text.slice(0, 24),
        statusAccepted: key ? rel(sender.statusAcceptedAt.get(key)) : undefined,
        ackWritten: key ? rel(acks.get(key)) : undefined,
      });
    });
  writeFileSync(join(runDir, 'sends.jsonl'), `${sends.join('\n')}\n`);
  const messages = [...sender.records.values()].map((r) =>
    JSON.stringify({
      chat: r.planned.chat,
      seq: r.planned.seq,
      handover: r.planned.handover,
      planned: r.planned.at,
      firstPost: rel(r.firstPostAt),
      accepted: rel(r.acceptedAt),
      attempts: r.attempts,
      redelivery: r.redelivery,
    }),
  );
  writeFileSync(join(runDir, 'messages.jsonl'), `${messages.join('\n')}\n`);
}
