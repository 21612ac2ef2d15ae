import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type FakeChatwootServer } from '../../test/fakes/fake-chatwoot.server';
import { type RecordedRequest } from '../../test/fakes/fake-graph.server';
import { type FakeLlmServer } from '../../test/fakes/fake-llm.server';
import { type DeadLetterJob } from '../../test/utils/dead-letters';
import { type Episode } from './agent';
import { type MessageRecord } from './meta-sender';
import { type Outage } from './monkey';
import { chatOfWaId, TOKEN } from './plan';
import { REPO_ROOT } from './processes';

/**
 * What the run proved, read from what the patients' phones got (the fake Graph API's sends that
 * Meta accepted, i.e. that carry a wamid), what the agents saw (the fake Chatwoot's conversations)
 * and what the app gave up visibly (its dead letters).
 *
 * - A message is **answered** when a reply the patient received carries its token (the echoing LLM
 *   copies the turn's messages), or when it reached a human: posted into a Chatwoot conversation
 *   of its chat (the hand-over posts the history, a handed-over chat's messages are mirrored).
 *   One in a dead letter is a documented outcome (the patient got the apology): counted, not lost.
 * - **Lost**: accepted with 200 and none of these once the bot is quiet.
 * - **Duplicated reply**: a received send whose part key (biz_opaque_callback_data) was received
 *   before, or that answers a message a received reply already answered, or an agent's reply
 *   received a second time.
 * - **Order violation**: in a chat, a received reply answering a message written before one that an
 *   earlier reply already answered; or an agent's replies received out of the order typed.
 * - **Misrouted**: a reply (or a Chatwoot post) carrying another chat's token.
 */

export interface CannedTexts {
  holding: string;
  handoff: string;
  apology: string;
}

export function cannedTexts(clinicName = 'Demo Clinic'): CannedTexts {
  const file = JSON.parse(readFileSync(join(REPO_ROOT, 'config', 'messages.json'), 'utf8'));
  const en = (key: string): string => String(file[key].en).replace(/\{\{clinicName\}\}/g, clinicName);
  return { holding: en('holding'), handoff: en('handoff'), apology: en('apology') };
}

export interface VerdictInput {
  records: ReadonlyMap<string, MessageRecord>;
  /** Every request the fake Graph API got, in arrival order, and when each arrived. */
  graphRequests: readonly RecordedRequest[];
  stamps: ReadonlyMap<RecordedRequest, number>;
  chatwoot: FakeChatwootServer;
  llm: FakeLlmServer;
  episodes: readonly Episode[];
  deadLetters: readonly DeadLetterJob[];
  outages: readonly Outage[];
  statusAcceptedAt: ReadonlyMap<string, number>;
  /** When each part key's ack was first written in Redis (keyspace events). */
  ackWrittenAt: ReadonlyMap<string, number>;
  /** The chat's id in the app's logs. */
  logIdOf: (chat: number) => string;
  canned: CannedTexts;
  llmTimeoutMs: number;
}

export interface Finding {
  chat: number;
  what: string;
  /** The chat's id in the app's logs. */
  log?: string;
}

export interface Verdict {
  planned: number;
  accepted: number;
  notAccepted: number;
  redeliveries: { accepted: number; refused: number };
  answeredByBot: number;
  answeredByHuman: number;
  deadLettered: number;
  deadLettersByReason: Record<string, number>;
  lost: Finding[];
  duplicates: Finding[];
  orderViolations: Finding[];
  misrouted: Finding[];
  agent: { replies: number; accepted: number; relayedOnce: number; notRelayed: Finding[]; relayedTwice: number };
  handovers: { episodes: number; resolved: number; conversations: number };
  sends: {
    attempts: number;
    received: number;
    botReplies: number;
    agentReplies: number;
    holding: number;
    handoff: number;
    apology: number;
    other: number;
    throttled: number;
    errorBeforeSend: number;
    errorAfterSend: number;
    /** 5xx before sending whose part went out later (resent after SEND_UNKNOWN_WAIT_MS, as documented). */
    resentAfterUnknown: number;
  };
  holdingPerOutage: { mode: string; durationMs: number; holding: number; chats: number; repeated: number }[];
  holdingOutsideOutages: number;
  llmCalls: number;
  /** Chatwoot posts of one conversation with a source_id posted there before (hand-over history re-posted). */
  chatwootRepeatedPosts: number;
}

type Kind = 'bot' | 'agent' | 'holding' | 'handoff' | 'apology' | 'other';

export function judge(input: VerdictInput): Verdict {
  const sends = input.graphRequests.filter((r) => r.type === 'send');
  const received = sends.filter((r) => r.wamid);
  const agentReplies = input.episodes.flatMap((e) => e.replies);
  const agentTexts = new Set(agentReplies.map((r) => r.content));
  const kindOf = (text: string): Kind => {
    if (/\[c\d+\.\d+\]/.test(text)) return 'bot';
    if (agentTexts.has(text)) return 'agent';
    if (text === input.canned.holding) return 'holding';
    if (text.includes(input.canned.handoff)) return 'handoff';
    if (text === input.canned.apology) return 'apology';
    return 'other';
  };
  const textOf = (r: RecordedRequest): string => String(r.body?.text?.body ?? '');
  const chatOf = (r: RecordedRequest): number => chatOfWaId(String(r.body?.to ?? '')) ?? -1;
  const keyOf = (r: RecordedRequest): string | undefined => r.body?.biz_opaque_callback_data as string | undefined;
  const at = (r: RecordedRequest): number => input.stamps.get(r) ?? 0;

  const counts: Record<Kind, number> = { bot: 0, agent: 0, holding: 0, handoff: 0, apology: 0, other: 0 };
  const duplicates: Finding[] = [];
  const misrouted: Finding[] = [];
  const orderViolations: Finding[] = [];
  const byKey = new Map<string, RecordedRequest>();
  const byToken = new Map<string, RecordedRequest>();
  const byAgentText = new Map<string, RecordedRequest[]>();
  const answeredByBot = new Set<string>();
  const lastSeq = new Map<number, number>();

  for (const send of received) {
    const text = textOf(send);
    const chat = chatOf(send);
    const kind = kindOf(text);
    counts[kind]++;
    const key = keyOf(send);
    const tokens = [...text.matchAll(TOKEN)].map((m) => ({ chat: Number(m[1]), seq: Number(m[2]), token: m[0] }));
    const repeats: string[] = [];
    const firstOfKey = key ? byKey.get(key) : undefined;
    if (firstOfKey) repeats.push(`part ${describeKey(key!)} received again${explain(firstOfKey, send, input)}`);
    for (const t of tokens) {
      const first = byToken.get(t.token);
      if (first && first !== firstOfKey)
        repeats.push(`message #${t.seq} answered again (seq ${first.seq}, ${send.seq})`);
    }
    if (kind === 'agent') {
      const earlier = byAgentText.get(text) ?? [];
      if (earlier.length > 0 && !firstOfKey) repeats.push('an agent reply received again');
      byAgentText.set(text, [...earlier, send]);
    }
    if (repeats.length > 0) duplicates.push({ chat, what: repeats.join('; ') });
    if (key && !firstOfKey) byKey.set(key, send);
    for (const t of tokens) {
      if (byToken.has(t.token)) continue;
      byToken.set(t.token, send);
      if (t.chat !== chat) {
        misrouted.push({ chat, what: `a reply to chat ${chat} answers chat ${t.chat}'s message #${t.seq}` });
        continue;
      }
      answeredByBot.add(t.token);
      const last = lastSeq.get(chat) ?? 0;
      if (t.seq < last) orderViolations.push({ chat, what: `message #${t.seq} answered after #${last}` });
      lastSeq.set(chat, Math.max(last, t.seq));
    }
  }

  // The agent's replies: each received exactly once, in the order typed.
  const agent = {
    replies: agentReplies.length,
    accepted: 0,
    relayedOnce: 0,
    notRelayed: [] as Finding[],
    relayedTwice: 0,
  };
  for (const episode of input.episodes) {
    let lastSeen = 0;
    for (const reply of episode.replies) {
      if (!reply.accepted) continue;
      agent.accepted++;
      const got = byAgentText.get(reply.content) ?? [];
      if (got.length === 1) agent.relayedOnce++;
      else if (got.length === 0)
        agent.notRelayed.push({
          chat: reply.chat,
          what: `agent reply ${reply.content.split(':')[0]} never reached the patient`,
        });
      else agent.relayedTwice++;
      const first = got[0]?.seq ?? 0;
      if (first && first < lastSeen) {
        orderViolations.push({
          chat: reply.chat,
          what: `agent replies of hand-over ${episode.id} received out of order`,
        });
      }
      lastSeen = Math.max(lastSeen, first);
    }
  }

  // Reached a human: posted into a Chatwoot conversation of the same chat.
  const answeredByHuman = new Set<string>();
  let chatwootRepeatedPosts = 0;
  const contacts = new Map(input.chatwoot.contacts().map((c) => [c.id, c]));
  for (const conversation of input.chatwoot.conversations()) {
    const waId = contacts.get(conversation.contactId)?.identifier?.replace(/^wa:/, '') ?? '';
    const chat = chatOfWaId(waId) ?? -1;
    const sourceIds = new Set<string>();
    for (const m of input.chatwoot.messagesOf(conversation.id)) {
      if (m.sourceId) {
        if (sourceIds.has(m.sourceId)) chatwootRepeatedPosts++;
        sourceIds.add(m.sourceId);
      }
      if (m.messageType !== 'incoming') continue;
      for (const t of m.content.matchAll(TOKEN)) {
        if (Number(t[1]) !== chat) {
          misrouted.push({ chat, what: `chat ${t[1]}'s message #${t[2]} posted into chat ${chat}'s conversation` });
        } else answeredByHuman.add(t[0]);
      }
    }
  }

  const deadLettered = new Set<string>();
  const deadLettersByReason: Record<string, number> = {};
  for (const job of input.deadLetters) {
    deadLettersByReason[job.data.reason] = (deadLettersByReason[job.data.reason] ?? 0) + 1;
    for (const item of job.data.items ?? []) {
      const id = (item?.raw as { id?: string } | undefined)?.id;
      if (id) deadLettered.add(id);
    }
  }

  // Which tokens the LLM was asked about, and which sends were tried: to tell where a lost one stopped.
  const askedLlm = new Set<string>();
  for (const request of input.llm.requests) {
    const last = request.body.messages[request.body.messages.length - 1]?.content ?? '';
    for (const t of last.matchAll(TOKEN)) askedLlm.add(t[0]);
  }
  const attempted = new Set<string>();
  for (const send of sends) for (const t of textOf(send).matchAll(TOKEN)) attempted.add(t[0]);

  const lost: Finding[] = [];
  let accepted = 0;
  let notAccepted = 0;
  let byBot = 0;
  let byHuman = 0;
  let dead = 0;
  const redeliveries = { accepted: 0, refused: 0 };
  for (const record of input.records.values()) {
    const m = record.planned;
    if (record.redelivery) redeliveries[record.redelivery]++;
    if (record.acceptedAt === undefined) {
      notAccepted++;
      continue;
    }
    accepted++;
    const token = `[c${m.chat}.${m.seq}]`;
    if (answeredByBot.has(token)) byBot++;
    else if (answeredByHuman.has(token)) byHuman++;
    else if (deadLettered.has(m.wamid)) dead++;
    else {
      const where = attempted.has(token)
        ? 'a reply was sent but none reached the patient'
        : askedLlm.has(token)
          ? 'the LLM answered it, no reply was sent'
          : 'it never reached the LLM';
      lost.push({ chat: m.chat, what: `message #${m.seq}${m.handover ? ' (asks for a person)' : ''}: ${where}` });
    }
  }

  for (const f of [...lost, ...duplicates, ...orderViolations, ...misrouted, ...agent.notRelayed]) {
    f.log = f.chat >= 0 ? input.logIdOf(f.chat) : undefined;
  }
  const resentKeys = new Set(received.map(keyOf).filter(Boolean));
  const errorsBefore = sends.filter((r) => r.behaviour === 'status' && !r.wamid);
  const holdingSends = received.filter((r) => kindOf(textOf(r)) === 'holding');
  const llmOutages = input.outages.filter((o) => o.kind === 'llm');
  const attributed = new Set<RecordedRequest>();
  const holdingPerOutage = llmOutages.map((o) => {
    // A call that started during the outage fails up to one LLM timeout after it ended.
    const until = (o.endedAt ?? Number.POSITIVE_INFINITY) + input.llmTimeoutMs + 1000;
    const mine = holdingSends.filter((r) => at(r) >= o.startedAt && at(r) <= until && !attributed.has(r));
    for (const r of mine) attributed.add(r);
    const perChat = new Map<number, number>();
    for (const r of mine) perChat.set(chatOf(r), (perChat.get(chatOf(r)) ?? 0) + 1);
    return {
      mode: o.mode ?? 'llm',
      durationMs: (o.endedAt ?? o.startedAt) - o.startedAt,
      holding: mine.length,
      chats: perChat.size,
      repeated: [...perChat.values()].filter((n) => n > 1).length,
    };
  });

  return {
    planned: input.records.size,
    accepted,
    notAccepted,
    redeliveries,
    answeredByBot: byBot,
    answeredByHuman: byHuman,
    deadLettered: dead,
    deadLettersByReason,
    lost,
    duplicates,
    orderViolations,
    misrouted,
    agent,
    handovers: {
      episodes: input.episodes.length,
      resolved: input.episodes.filter((e) => e.state === 'done').length,
      conversations: input.chatwoot.conversations().length,
    },
    sends: {
      attempts: sends.length,
      received: received.length,
      botReplies: counts.bot,
      agentReplies: counts.agent,
      holding: counts.holding,
      handoff: counts.handoff,
      apology: counts.apology,
      other: counts.other,
      throttled: sends.filter((r) => r.behaviour === 'graph-error').length,
      errorBeforeSend: errorsBefore.length,
      errorAfterSend: sends.filter((r) => r.behaviour === 'status' && r.wamid).length,
      resentAfterUnknown: errorsBefore.filter((r) => resentKeys.has(keyOf(r))).length,
    },
    holdingPerOutage,
    holdingOutsideOutages: holdingSends.length - attributed.size,
    llmCalls: input.llm.requests.length,
    chatwootRepeatedPosts,
  };
}

/** `t.<turn>.<i>` → `<i> of turn <first 8 of the turn id>`, short enough for a report line. */
function describeKey(key: string): string {
  const [kind, turn = '', part = ''] = key.split('.');
  return kind === 'h' ? `holding of turn ${turn.slice(0, 8)}` : `${part} of turn ${turn.slice(0, 8)}`;
}

/** Why a part went out twice, as far as the records tell. */
function explain(first: RecordedRequest, second: RecordedRequest, input: VerdictInput): string {
  const key = first.body?.biz_opaque_callback_data as string | undefined;
  const statusAt = key ? input.statusAcceptedAt.get(key) : undefined;
  const resentAt = input.stamps.get(second) ?? 0;
  const sentAt = input.stamps.get(first) ?? 0;
  const relative = (t: number | undefined, what: string): string =>
    t === undefined
      ? `${what} never seen`
      : `${what} ${Math.abs(t - resentAt)} ms ${t > resentAt ? 'after' : 'before'} the resend`;
  const ackAt = key ? input.ackWrittenAt.get(key) : undefined;
  return ` (first answered ${first.behaviour}, resent ${resentAt - sentAt} ms later; ${relative(statusAt, 'its status accepted')}, ${relative(ackAt, 'its ack written')})`;
}
