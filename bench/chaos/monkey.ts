import { type FakeGraphBehaviour } from '../../test/fakes/fake-graph.server';
import { type ChaosCluster } from './cluster';
import { type ChaosEvent, type GraphFault, type LlmOutageMode } from './plan';
import { type AppProcess } from './processes';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

export interface Outage {
  kind: 'redis' | 'llm';
  mode?: LlmOutageMode;
  startedAt: number;
  endedAt?: number;
}

export interface MonkeyStats {
  kills: { receiver: number; worker: number };
  pauses: { receiver: number; worker: number };
  /** Kills planned while every process of the role was already down. */
  skippedKills: number;
  restartFailures: number;
  redisRestarts: number;
  llmOutages: number;
  graphFaults: Record<GraphFault, { bursts: number; requests: number }>;
}

/**
 * Carries out the planned faults at their times: SIGKILLs (and restarts after the planned pause),
 * Redis killed and restarted on its AOF, the LLM failing or hanging for a while, the Graph API
 * answering a run of errors. Everything it does goes to the timeline, with the time since start.
 */
export class Monkey {
  readonly outages: Outage[] = [];
  readonly stats: MonkeyStats = {
    kills: { receiver: 0, worker: 0 },
    pauses: { receiver: 0, worker: 0 },
    skippedKills: 0,
    restartFailures: 0,
    redisRestarts: 0,
    llmOutages: 0,
    graphFaults: {
      throttled: { bursts: 0, requests: 0 },
      'error-before-send': { bursts: 0, requests: 0 },
      'error-after-send': { bursts: 0, requests: 0 },
    },
  };
  private readonly pending = new Set<Promise<void>>();
  /** Killed and not live again yet, or paused: never a victim twice over, never started twice. */
  private readonly restarting = new Set<AppProcess>();
  private redisDown = false;
  private llmOut?: Outage;
  private stopped = false;

  constructor(
    private readonly cluster: ChaosCluster,
    private readonly timeline: (line: string) => void,
  ) {}

  /** Runs the schedule; resolves when the last event has been started. */
  async run(events: readonly ChaosEvent[], startedAt: number): Promise<void> {
    for (const event of events) {
      await sleep(startedAt + event.at - Date.now());
      if (this.stopped) return;
      this.track(this.apply(event));
    }
  }

  /**
   * The end of the chaos: waits for the faults under way to end (each ends by itself within
   * seconds), then brings back whatever is still down.
   */
  async stopAndRestore(): Promise<void> {
    this.stopped = true;
    while (this.pending.size > 0) await Promise.all([...this.pending]);
    this.cluster.llm.mode = 'ok';
    this.cluster.graph.behaviourFor = undefined;
    for (const p of this.cluster.processes) if (!p.running()) await this.startWithRetries(p);
  }

  private track(work: Promise<void>): void {
    const guarded = work.catch((err: Error) => this.timeline(`monkey error: ${err.message}`));
    this.pending.add(guarded);
    void guarded.finally(() => this.pending.delete(guarded));
  }

  private async apply(event: ChaosEvent): Promise<void> {
    switch (event.kind) {
      case 'kill':
        return this.kill(event.role, event.pick, event.restartAfterMs);
      case 'pause':
        return this.pause(event.role, event.pick, event.durationMs);
      case 'redis':
        return this.restartRedis(event.downMs);
      case 'llm':
        return this.llmOutage(event.mode, event.durationMs);
      case 'graph':
        return this.graphFault(event.fault, event.count, event.durationMs);
    }
  }

  private async kill(role: 'receiver' | 'worker', pick: number, restartAfterMs: number): Promise<void> {
    const candidates = (role === 'receiver' ? this.cluster.receivers : this.cluster.workers).filter(
      (p) => p.running() && !this.restarting.has(p),
    );
    if (candidates.length === 0) {
      this.stats.skippedKills++;
      this.timeline(`kill ${role}: none running, skipped`);
      return;
    }
    const victim = candidates[Math.floor(pick * candidates.length)];
    this.restarting.add(victim);
    try {
      await victim.kill();
      this.stats.kills[role]++;
      this.timeline(`SIGKILL ${victim.name}; restart in ${restartAfterMs} ms`);
      await sleep(restartAfterMs);
      await this.startWithRetries(victim);
    } finally {
      this.restarting.delete(victim);
    }
  }

  private async pause(role: 'receiver' | 'worker', pick: number, durationMs: number): Promise<void> {
    const candidates = (role === 'receiver' ? this.cluster.receivers : this.cluster.workers).filter(
      (p) => p.running() && !this.restarting.has(p),
    );
    if (candidates.length === 0) return;
    const victim = candidates[Math.floor(pick * candidates.length)];
    // A paused process is not killed meanwhile: the kill would find it stopped and so would its restart.
    this.restarting.add(victim);
    try {
      this.stats.pauses[role]++;
      this.timeline(`SIGSTOP ${victim.name} for ${durationMs} ms`);
      await victim.pause(durationMs);
      this.timeline(`SIGCONT ${victim.name}`);
    } finally {
      this.restarting.delete(victim);
    }
  }

  private async startWithRetries(p: AppProcess): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await p.start();
        this.timeline(`${p.name} live again (start #${p.starts})`);
        return;
      } catch (err) {
        this.stats.restartFailures++;
        this.timeline(`${p.name} start failed: ${(err as Error).message}`);
        await p.kill();
        if (attempt >= 5) throw err;
        await sleep(1000);
      }
    }
  }

  private async restartRedis(downMs: number): Promise<void> {
    if (this.redisDown) return;
    this.redisDown = true;
    const outage: Outage = { kind: 'redis', startedAt: Date.now() };
    this.outages.push(outage);
    try {
      await this.cluster.redis.stop();
      this.timeline(`redis SIGKILLed; down for ${downMs} ms`);
      await sleep(downMs);
      await this.cluster.redis.restart();
      this.stats.redisRestarts++;
      outage.endedAt = Date.now();
      this.timeline('redis back (AOF loaded)');
    } finally {
      this.redisDown = false;
    }
  }

  private async llmOutage(mode: LlmOutageMode, durationMs: number): Promise<void> {
    if (this.llmOut) return;
    const outage: Outage = { kind: 'llm', mode, startedAt: Date.now() };
    this.llmOut = outage;
    this.outages.push(outage);
    this.stats.llmOutages++;
    const llm = this.cluster.llm;
    this.timeline(`LLM ${mode} for ${durationMs} ms`);
    if (mode === 'down') await llm.stop();
    else llm.mode = mode;
    await sleep(durationMs);
    if (mode === 'down') await llm.restart();
    else llm.mode = 'ok';
    outage.endedAt = Date.now();
    this.llmOut = undefined;
    this.timeline(`LLM ok again after ${mode}`);
  }

  /**
   * A throttled period is timed, not counted: a count queued while nothing sends would all land
   * on the first sends after an outage, and park those chats for minutes of backoff.
   */
  private async graphFault(fault: GraphFault, count: number, durationMs: number): Promise<void> {
    const graph = this.cluster.graph;
    this.stats.graphFaults[fault].bursts++;
    if (fault !== 'throttled') {
      const behaviour: FakeGraphBehaviour = {
        kind: 'status',
        httpStatus: 500,
        delivered: fault === 'error-after-send',
      };
      graph.enqueue(...Array.from({ length: count }, () => behaviour));
      this.stats.graphFaults[fault].requests += count;
      this.timeline(
        `Graph API: the next ${count} sends get a 500 ${fault === 'error-after-send' ? 'after' : 'before'} sending`,
      );
      return;
    }
    if (graph.behaviourFor) return;
    this.timeline(`Graph API: 130429 to every send for ${durationMs} ms`);
    graph.behaviourFor = (request) => {
      if (request.type !== 'send') return undefined;
      this.stats.graphFaults.throttled.requests++;
      return { kind: 'graph-error', code: 130429, message: 'Rate limit hit' };
    };
    await sleep(durationMs);
    graph.behaviourFor = undefined;
  }
}
