import { type ChaosConfig } from './config';
import { type SenderStats } from './meta-sender';
import { type MonkeyStats } from './monkey';
import { type Finding, type Verdict } from './verdict';

export interface ChaosTimings {
  startupMs: number;
  /** From the start of the traffic to the end of the chaos (every process back, every fault over). */
  chaosMs: number;
  /** From the end of the chaos to the bot being quiet with everything answered; undefined if it never was. */
  drainMs?: number;
  /** From the last message accepted to quiet. */
  drainAfterLastMessageMs?: number;
  totalMs: number;
}

export interface ChaosReportInput {
  config: ChaosConfig;
  verdict: Verdict;
  sender: SenderStats;
  monkey: MonkeyStats;
  timings: ChaosTimings;
  runDir: string;
  failures: string[];
}

const s = (ms: number | undefined): string => (ms === undefined ? 'never' : `${(ms / 1000).toFixed(1)} s`);
const row = (label: string, value: string | number, note = ''): string =>
  `  ${label.padEnd(40)} ${String(value).padStart(8)}${note ? `   ${note}` : ''}`;

/** The invariants that make a run fail, each with the reason; empty when it passed. */
export function failuresOf(verdict: Verdict, drained: boolean): string[] {
  const failures: string[] = [];
  if (verdict.notAccepted > 0) failures.push(`${verdict.notAccepted} messages never accepted with 200`);
  if (verdict.lost.length > 0) failures.push(`${verdict.lost.length} lost`);
  if (verdict.duplicates.length > 0) failures.push(`${verdict.duplicates.length} duplicated replies`);
  if (verdict.orderViolations.length > 0) failures.push(`${verdict.orderViolations.length} order violations`);
  if (verdict.misrouted.length > 0) failures.push(`${verdict.misrouted.length} misrouted`);
  const agent = verdict.agent;
  if (agent.relayedOnce !== agent.accepted) {
    failures.push(`agent replies relayed once: ${agent.relayedOnce} of ${agent.accepted} accepted`);
  }
  if (agent.accepted !== agent.replies)
    failures.push(`${agent.replies - agent.accepted} agent webhooks never accepted`);
  if (!drained) failures.push('the bot did not drain within the drain timeout');
  return failures;
}

export function formatReport(input: ChaosReportInput): string {
  const { config, verdict: v, sender, monkey, timings } = input;
  const refused = [...sender.refused.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([status, n]) => `${n} × ${status === 0 ? 'no answer' : status}`)
    .join(', ');
  const faults = monkey.graphFaults;
  const outages = v.holdingPerOutage
    .map(
      (o) =>
        `${o.mode} ${s(o.durationMs)}: ${o.holding} to ${o.chats} chats${o.repeated ? ` (${o.repeated} twice)` : ''}`,
    )
    .join('; ');
  const lines = [
    `tawasul chaos run, seed ${config.seed} (replay: CHAOS_SEED=${config.seed} npm run chaos)`,
    `  ${config.receivers} receivers and ${config.workers} workers of dist/main.js, a private redis-server (AOF, appendfsync always),`,
    `  fake LLM, Graph API and Chatwoot; ${config.messages} messages in ${config.chats} chats over ${config.durationS} s`,
    `  logs, timeline and result: ${input.runDir}`,
    '',
    'chaos',
    row(
      'SIGKILLs (each restarted)',
      monkey.kills.receiver + monkey.kills.worker,
      `${monkey.kills.receiver} receivers, ${monkey.kills.worker} workers`,
    ),
    row(
      'SIGSTOP pauses of 1-6 s',
      monkey.pauses.receiver + monkey.pauses.worker,
      `${monkey.pauses.receiver} receivers, ${monkey.pauses.worker} workers`,
    ),
    row('Redis SIGKILLed and restarted', monkey.redisRestarts),
    row('LLM outages', monkey.llmOutages, v.holdingPerOutage.map((o) => `${o.mode} ${s(o.durationMs)}`).join(', ')),
    row(
      'Graph API fault bursts',
      faults.throttled.bursts + faults['error-before-send'].bursts + faults['error-after-send'].bursts,
      `${faults.throttled.requests} × 130429, ${faults['error-before-send'].requests} × 500 before sending, ${faults['error-after-send'].requests} × 500 after sending`,
    ),
    row(
      'hand-overs answered by the fake agent',
      `${v.handovers.resolved}/${v.handovers.episodes}`,
      `${v.handovers.conversations} Chatwoot conversations`,
    ),
    '',
    'Meta-like sender',
    row('webhook POSTs', sender.posts, refused ? `non-200: ${refused}` : ''),
    row(
      'messages delivered twice',
      v.redeliveries.accepted + v.redeliveries.refused,
      `${v.redeliveries.accepted} answered 200`,
    ),
    row('statuses sent', sender.statuses, `${sender.statusRedeliveries} delivered twice`),
    row('Chatwoot webhooks (replies, resolutions)', sender.chatwootWebhooks),
    '',
    'the app',
    row('LLM calls', v.llmCalls),
    row('sends tried / received by patients', `${v.sends.attempts}/${v.sends.received}`),
    row(
      '  received: bot replies',
      v.sends.botReplies,
      `agent ${v.sends.agentReplies}, holding ${v.sends.holding}, handoff ${v.sends.handoff}, apology ${v.sends.apology}, other ${v.sends.other}`,
    ),
    row(
      '5xx before sending',
      v.sends.errorBeforeSend,
      `${v.sends.resentAfterUnknown} resent after SEND_UNKNOWN_WAIT_MS (documented)`,
    ),
    row('5xx after sending', v.sends.errorAfterSend, 'settled by their status: a resend would show as a duplicate'),
    row('holding messages per LLM outage', '', outages || 'none'),
    row('  holding messages outside outages', v.holdingOutsideOutages),
    row(
      'dead letters',
      Object.values(v.deadLettersByReason).reduce((a, b) => a + b, 0),
      JSON.stringify(v.deadLettersByReason),
    ),
    row('Chatwoot posts repeated in a conversation', v.chatwootRepeatedPosts),
    '',
    'results',
    row('delivered (accepted with 200)', `${v.accepted}/${v.planned}`),
    row('answered by the bot', v.answeredByBot),
    row('answered by a human (in Chatwoot)', v.answeredByHuman),
    row('dead-lettered with the apology', v.deadLettered, 'documented outcome, not a loss'),
    row('LOST', v.lost.length, 'must be 0'),
    row('DUPLICATED REPLIES', v.duplicates.length, 'must be 0'),
    row('PER-CHAT ORDER VIOLATIONS', v.orderViolations.length, 'must be 0'),
    row('MISROUTED', v.misrouted.length, 'must be 0'),
    row('AGENT REPLIES RELAYED ONCE', `${v.agent.relayedOnce}/${v.agent.accepted}`, 'must be all'),
    row(
      'time to drain',
      s(timings.drainMs),
      `after the chaos ended (${s(timings.drainAfterLastMessageMs)} after the last message was accepted)`,
    ),
    row('run time', s(timings.totalMs), `start-up ${s(timings.startupMs)}, chaos ${s(timings.chaosMs)}`),
    '',
    input.failures.length === 0 ? 'PASS' : `FAIL: ${input.failures.join('; ')}`,
  ];
  const details = (title: string, findings: readonly Finding[]): string[] =>
    findings.length === 0
      ? []
      : [
          '',
          `${title} (${findings.length}${findings.length > 20 ? ', first 20' : ''}):`,
          ...findings.slice(0, 20).map((f) => `  chat ${f.chat}${f.log ? ` [${f.log}]` : ''}: ${f.what}`),
        ];
  lines.push(
    ...details('lost', v.lost),
    ...details('duplicated replies', v.duplicates),
    ...details('order violations', v.orderViolations),
    ...details('misrouted', v.misrouted),
    ...details('agent replies not relayed', v.agent.notRelayed),
  );
  return lines.join('\n');
}
