import { BotCluster, type BotClusterOptions } from './bot-cluster';

/**
 * One BotCluster for a whole describe block: started before its first test (spawning workers
 * takes a while, hence the long default), closed after its last, and the fake LLM and Graph reset
 * before each test. `started` receives it, for the suite's own variables.
 */
export function botPerSuite(
  options: BotClusterOptions,
  started: (bot: BotCluster) => void,
  startTimeoutMs = 180_000,
): void {
  let bot: BotCluster | undefined;
  beforeAll(async () => {
    bot = await BotCluster.start(options);
    started(bot);
  }, startTimeoutMs);
  afterAll(async () => {
    await bot?.close();
  });
  beforeEach(() => {
    bot!.llm.reset();
    bot!.graph.reset();
  });
}

/**
 * The fakes record the order of requests, not their times: from now on each request pushed to
 * `requests` is stamped as it arrives. The function returned gives the time (ms) between each
 * request of a list and the one before it.
 */
export function arrivalGaps<T>(requests: T[]): (list: readonly T[]) => number[] {
  const at = new Map<T, number>();
  const push = requests.push.bind(requests);
  requests.push = (...items: T[]): number => {
    for (const item of items) at.set(item, Date.now());
    return push(...items);
  };
  return (list) => list.slice(1).map((r, i) => at.get(r)! - at.get(list[i])!);
}
