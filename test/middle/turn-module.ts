import { getQueueToken } from '@nestjs/bullmq';
import { Test } from '@nestjs/testing';
import { type Counter } from 'prom-client';
import { ClinicActions } from '../../src/actions/clinic-actions';
import { McpTools } from '../../src/actions/mcp-tools';
import {
  BspClient,
  type MarkReadInput,
  type SendReceipt,
  type SendTemplateInput,
  type SendTextInput,
} from '../../src/bsp/bsp.client';
import { type BspSendError } from '../../src/bsp/bsp-send.error';
import { AppConfig } from '../../src/config/app-config';
import { type BspProvider } from '../../src/config/env.schema';
import { validateEnv } from '../../src/config/validate-env';
import { ActionRounds } from '../../src/conversation/action-rounds';
import { AgentTurnService } from '../../src/conversation/agent-turn.service';
import { ApiSendTurn } from '../../src/conversation/api-send-turn';
import { ChatTurnService } from '../../src/conversation/chat-turn.service';
import { ConversationStore } from '../../src/conversation/conversation.store';
import { type DeadLetterData, DeadLetters } from '../../src/conversation/dead-letters';
import { HandoverPlanner } from '../../src/conversation/handover-planner';
import { LlmStep } from '../../src/conversation/llm-step';
import { OutboundRecords } from '../../src/conversation/outbound-records';
import { Reengagement } from '../../src/conversation/reengagement';
import { ReplySender } from '../../src/conversation/reply-sender';
import { type RunOutcome } from '../../src/conversation/turn-outcome';
import { type Lease } from '../../src/conversation/turn.types';
import { CostLedger } from '../../src/costs/cost-ledger';
import { Pricing } from '../../src/costs/pricing';
import { WakeUpService, type WakeTarget } from '../../src/dedup/wake-up.service';
import { EscalationNotifier } from '../../src/escalation/escalation-notifier';
import { EscalationTriggers } from '../../src/escalation/escalation-triggers';
import { CannedMessages } from '../../src/llm/canned-messages';
import { LlmConcurrencyLimiter } from '../../src/llm/llm-concurrency.limiter';
import { LlmClient, type LlmError, type LlmReply, type LlmRequest } from '../../src/llm/llm.client';
import { SystemPromptLoader } from '../../src/llm/system-prompt.loader';
import { AppLogger } from '../../src/logging/app-logger';
import { LogHasher } from '../../src/logging/log-hasher';
import { MetricsService } from '../../src/metrics/metrics.service';
import { chatLane, laneParts } from '../../src/queue/lanes';
import { DEAD_LETTERS_QUEUE } from '../../src/queue/queue.constants';
import { RedisConnections } from '../../src/redis/redis-connections.service';
import { RedisKeys } from '../../src/redis/redis-keys';
import { Clock } from '../../src/time/clock';
import { InMemoryConversationStore } from '../utils/in-memory-conversation.store';
import { InMemoryOutboundRecords, RecordingCostLedger } from '../utils/in-memory-outbound-records';
import { TEST_PHONE_NUMBER_ID, testEnv } from '../utils/test-env';

/** What the fake LLM answers next: a text, a failure, or whatever a step of the test decides. */
export type LlmAnswer = string | LlmError | ((request: LlmRequest) => Promise<string> | string);

/** LlmClient in process: answers from a script, records every request. */
export class ScriptedLlm extends LlmClient {
  readonly requests: LlmRequest[] = [];
  private readonly script: LlmAnswer[] = [];

  answer(...answers: LlmAnswer[]): void {
    this.script.push(...answers);
  }

  async complete(request: LlmRequest): Promise<LlmReply> {
    this.requests.push(request);
    const next = this.script.shift();
    if (next === undefined) throw new Error('ScriptedLlm: asked more often than the test scripted');
    if (next instanceof Error) throw next;
    const content = typeof next === 'function' ? await next(request) : next;
    return { content, finishReason: 'stop', latencyMs: 1 };
  }
}

export interface RecordedSend {
  to: string;
  body?: string;
  template?: string;
  callbackData?: string;
  wamid?: string;
  /** The error the send was answered with, when it failed. */
  error?: BspSendError;
}

/** What the fake BSP does with the next send: refuse it, or run a step of the test first. */
export type BspAnswer = BspSendError | ((input: SendTextInput | SendTemplateInput) => Promise<void> | void);

/** BspClient in process: accepts every send with a fresh wamid unless the script says otherwise. */
export class ScriptedBsp extends BspClient {
  readonly provider: BspProvider = 'meta';
  readonly sends: RecordedSend[] = [];
  readonly marked: MarkReadInput[] = [];
  private readonly script: BspAnswer[] = [];
  private seq = 0;

  answer(...answers: BspAnswer[]): void {
    this.script.push(...answers);
  }

  /** Sends Meta accepted, in order. */
  get accepted(): RecordedSend[] {
    return this.sends.filter((send) => send.wamid);
  }

  sendText(input: SendTextInput): Promise<SendReceipt> {
    return this.send({ to: input.to, body: input.body, callbackData: input.callbackData }, input);
  }

  sendTemplate(input: SendTemplateInput): Promise<SendReceipt> {
    return this.send({ to: input.to, template: input.name, callbackData: input.callbackData }, input);
  }

  markRead(input: MarkReadInput): Promise<void> {
    this.marked.push(input);
    return Promise.resolve();
  }

  private async send(send: RecordedSend, input: SendTextInput | SendTemplateInput): Promise<SendReceipt> {
    this.sends.push(send);
    const next = this.script.shift();
    if (next instanceof Error) {
      send.error = next;
      throw next;
    }
    if (next) await next(input);
    send.wamid = `wamid.M${++this.seq}`;
    return { wamid: send.wamid };
  }
}

/** The cross-process LLM slot cap is Redis' (tested end to end): here every call gets a slot. */
class FreeSlots {
  tryAcquire(): Promise<boolean> {
    return Promise.resolve(true);
  }

  release(): Promise<[]> {
    return Promise.resolve([]);
  }

  leaveLine(): Promise<[]> {
    return Promise.resolve([]);
  }
}

/** Wake-ups are BullMQ jobs: here they are only kept, for tests that care what was re-armed. */
class RecordedWakeUps {
  readonly targets: WakeTarget[] = [];

  wake(targets: readonly WakeTarget[]): Promise<void> {
    this.targets.push(...targets);
    return Promise.resolve();
  }
}

/** The dead-letters queue stand-in: the jobs DeadLetters adds, with their data. */
class DeadLetterJobs {
  readonly jobs: DeadLetterData[] = [];

  add(_name: string, data: DeadLetterData): Promise<void> {
    this.jobs.push(data);
    return Promise.resolve();
  }
}

/** Nothing in the middle tier may reach Redis: a collaborator that tries fails the test loudly. */
const noRedis = Object.defineProperties(
  {},
  Object.fromEntries(
    (['ingest', 'health', 'producer', 'worker', 'outage'] as const).map((name) => [
      name,
      {
        get: () => {
          throw new Error(`the middle tier has no Redis (RedisConnections.${name})`);
        },
      },
    ]),
  ),
);

export interface TurnWorld {
  config: AppConfig;
  store: InMemoryConversationStore;
  records: InMemoryOutboundRecords;
  llm: ScriptedLlm;
  bsp: ScriptedBsp;
  ledger: RecordingCostLedger;
  deadLetters: DeadLetterData[];
  metrics: MetricsService;
  canned: CannedMessages;
  sender: ReplySender;
  chatTurns: ChatTurnService;
  /** Takes the lane's lease as the runner does (respecting its not-before time) and runs one chat turn. */
  runTurn(lane: string): Promise<RunOutcome>;
  /** Takes the lane's lease; fails when it is held or parked. */
  lease(lane: string): Promise<Lease>;
  /** Moves the store's clock to `at` (a not-before time), as if the delayed wake-up came due. */
  until(at: number): void;
  close(): Promise<void>;
}

/**
 * The worker's turn machinery from its real classes (ChatTurnService, LlmStep, ReplySender,
 * DeadLetters, the planners and triggers, Pricing, the canned texts and prompt from config/), with
 * only what talks to Redis or the network replaced: the in-memory ConversationStore and
 * OutboundRecords, a recording cost ledger, the LLM and BSP ports scripted in process, free LLM
 * slots, recorded wake-ups and dead-letter jobs. The providers are those of ConversationModule
 * that a chat turn needs.
 */
export async function turnWorld(env: Record<string, string> = {}): Promise<TurnWorld> {
  const config = new AppConfig(
    validateEnv(testEnv({ TURN_DEBOUNCE_MS: '0', MARK_READ: 'false', LLM_MAX_ATTEMPTS: '3', ...env })),
  );
  const clock = new Clock();
  const store = new InMemoryConversationStore(config, clock);
  const ledger = new RecordingCostLedger();
  const llm = new ScriptedLlm();
  const bsp = new ScriptedBsp();
  const deadLetterJobs = new DeadLetterJobs();
  const pricing = Pricing.fromFile(config.env.PRICING_FILE, config.env.BSP_PROVIDER);
  const moduleRef = await Test.createTestingModule({
    providers: [
      { provide: AppConfig, useValue: config },
      { provide: AppLogger, useValue: new AppLogger(config.env.LOG_LEVEL) },
      { provide: LogHasher, useValue: new LogHasher(config.logHashKey) },
      { provide: RedisKeys, useValue: new RedisKeys(config.redisKeyRoot) },
      { provide: RedisConnections, useValue: noRedis },
      { provide: Pricing, useValue: pricing },
      { provide: CostLedger, useValue: ledger },
      { provide: ConversationStore, useValue: store },
      { provide: OutboundRecords, useValue: new InMemoryOutboundRecords(store, config, pricing, ledger, clock) },
      { provide: LlmClient, useValue: llm },
      { provide: BspClient, useValue: bsp },
      { provide: LlmConcurrencyLimiter, useValue: new FreeSlots() },
      { provide: WakeUpService, useValue: new RecordedWakeUps() },
      { provide: getQueueToken(DEAD_LETTERS_QUEUE), useValue: deadLetterJobs },
      { provide: Clock, useValue: clock },
      MetricsService,
      SystemPromptLoader,
      CannedMessages,
      EscalationTriggers,
      EscalationNotifier,
      HandoverPlanner,
      Reengagement,
      AgentTurnService,
      ApiSendTurn,
      LlmStep,
      McpTools,
      ClinicActions,
      ActionRounds,
      ReplySender,
      DeadLetters,
      ChatTurnService,
    ],
  }).compile();
  const chatTurns = moduleRef.get(ChatTurnService);
  const lease = async (lane: string): Promise<Lease> => {
    const taken = await store.acquireDue(lane);
    if (typeof taken !== 'object')
      throw new Error(`${lane}: ${taken === undefined ? 'held' : `parked until ${taken}`}`);
    return taken;
  };
  return {
    config,
    store,
    records: moduleRef.get<OutboundRecords, InMemoryOutboundRecords>(OutboundRecords),
    llm,
    bsp,
    ledger,
    deadLetters: deadLetterJobs.jobs,
    metrics: moduleRef.get(MetricsService),
    canned: moduleRef.get(CannedMessages),
    sender: moduleRef.get(ReplySender),
    chatTurns,
    lease,
    runTurn: async (lane) => chatTurns.run(await lease(lane)),
    until: (at) => store.elapse(Math.max(0, at - store.clock.now())),
    close: () => moduleRef.close(),
  };
}

/** One test's world and the chat it talks in. */
export interface TurnTest {
  w: TurnWorld;
  /** The test's number in its block, from 1: for ids that must differ from one test to the next. */
  seq: number;
  /** A chat lane no other test of the block uses. */
  lane: string;
  /** The lane's sender, whom the replies go to. */
  to: string;
}

/**
 * A fresh world for each test of the enclosing describe block, closed after it, and a chat lane of
 * its own (senders `${senderPrefix}00000`, `${senderPrefix}00001`, …). `started` receives them, for
 * the block's own variables.
 */
export function turnWorldPerTest(senderPrefix: string, started: (test: TurnTest) => void): void {
  let seq = 0;
  let w: TurnWorld | undefined;
  beforeEach(async () => {
    w = await turnWorld();
    const lane = chatLane(TEST_PHONE_NUMBER_ID, `${senderPrefix}${String(seq++).padStart(5, '0')}`);
    started({ w, seq, lane, to: laneParts(lane).sender });
  });
  afterEach(async () => {
    await w?.close();
  });
}

/** A counter's value for these labels (0 when never counted). */
export async function counted(counter: Counter, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await counter.get();
  return values
    .filter((v) => Object.entries(labels).every(([name, value]) => v.labels[name] === value))
    .reduce((sum, v) => sum + v.value, 0);
}
