import { type FakeChatwootServer } from '../../test/fakes/fake-chatwoot.server';
import { type FakeGraphServer } from '../../test/fakes/fake-graph.server';
import { agentMessage, statusChanged } from '../../test/utils/chatwoot-payloads';
import { chatOfWaId } from './plan';
import { type Prng } from './prng';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** The private note of a hand-over carries `n.<turn id>`; a note about an unsent reply has a third part. */
const HANDOVER_NOTE = /^n\.[0-9a-f-]{36}$/;

export interface AgentReply {
  content: string;
  chat: number;
  conversationId: number;
  messageId: number;
  /** The receiver took the webhook (200): from then on the app owes the patient this reply. */
  accepted: boolean;
  redelivered: boolean;
}

export interface Episode {
  id: number;
  chat: number;
  conversationId: number;
  replies: AgentReply[];
  state: 'replying' | 'waiting' | 'resolving' | 'done' | 'abandoned';
  seenAt: number;
  doneAt?: number;
}

/**
 * A human agent in the fake Chatwoot. Every hand-over (found by the private note the app posts
 * with it) is answered with one or two replies, typed into Chatwoot and announced by its
 * `message_created` webhook, some delivered twice as Chatwoot may do; once the patient got them,
 * the agent resolves the conversation, which gives the chat back to the bot.
 */
export class FakeAgent {
  readonly episodes: Episode[] = [];
  private readonly seenNotes = new Set<string>();
  private readonly work = new Set<Promise<void>>();
  private timer?: NodeJS.Timeout;
  private stopAt = Number.POSITIVE_INFINITY;

  constructor(
    private readonly chatwoot: FakeChatwootServer,
    private readonly graph: FakeGraphServer,
    private readonly post: (payload: unknown) => Promise<boolean>,
    private readonly rng: Prng,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.scan(), 250);
  }

  /** No more scanning; episodes still waiting give up at `at`. */
  stop(at = Date.now()): void {
    clearInterval(this.timer);
    this.stopAt = at;
  }

  idle(): boolean {
    return this.work.size === 0;
  }

  async settled(): Promise<void> {
    while (this.work.size > 0) await Promise.all([...this.work]);
  }

  private scan(): void {
    for (const conversation of this.chatwoot.conversations()) {
      for (const m of this.chatwoot.messagesOf(conversation.id)) {
        if (!m.private || !m.sourceId || !HANDOVER_NOTE.test(m.sourceId) || this.seenNotes.has(m.sourceId)) continue;
        this.seenNotes.add(m.sourceId);
        const contact = this.chatwoot.contacts().find((c) => c.id === conversation.contactId);
        const waId = contact?.identifier?.replace(/^wa:/, '') ?? '';
        const chat = chatOfWaId(waId);
        if (chat === undefined) continue;
        const episode: Episode = {
          id: this.episodes.length + 1,
          chat,
          conversationId: conversation.id,
          replies: [],
          state: 'replying',
          seenAt: Date.now(),
        };
        this.episodes.push(episode);
        const run = this.answer(episode, waId, conversation.contactId).catch(() => {
          episode.state = 'abandoned';
        });
        this.work.add(run);
        void run.finally(() => this.work.delete(run));
      }
    }
  }

  private async answer(episode: Episode, waId: string, contactId: number): Promise<void> {
    await sleep(this.rng.between(300, 1500));
    const count = this.rng.int(1, 2);
    for (let k = 1; k <= count; k++) {
      const content = `Agent reply ${episode.id}.${k}: your appointment is confirmed.`;
      // What the agent typed exists in Chatwoot first; its webhook carries its id.
      const message = this.chatwoot.seedMessage(episode.conversationId, { content, messageType: 'outgoing' });
      const reply: AgentReply = {
        content,
        chat: episode.chat,
        conversationId: episode.conversationId,
        messageId: message.id,
        accepted: false,
        redelivered: false,
      };
      episode.replies.push(reply);
      const payload = agentMessage({
        conversationId: episode.conversationId,
        content,
        waId,
        messageId: message.id,
        contactId,
        inboxId: this.chatwoot.inboxId,
        accountId: this.chatwoot.accountId,
      });
      reply.accepted = await this.post(payload);
      if (reply.accepted && this.rng.chance(0.25)) {
        reply.redelivered = true;
        await this.post(payload);
      }
      await sleep(this.rng.between(200, 1500));
    }
    episode.state = 'waiting';
    const relayed = (): boolean =>
      episode.replies.every((r) => this.graph.sends().some((s) => s.wamid && s.body?.text?.body === r.content));
    while (!relayed()) {
      if (Date.now() > this.stopAt) {
        episode.state = 'abandoned';
        return;
      }
      await sleep(200);
    }
    // Meanwhile the patient's messages are mirrored into the conversation.
    await sleep(this.rng.between(500, 3000));
    episode.state = 'resolving';
    this.chatwoot.setStatus(episode.conversationId, 'resolved');
    const resolved = statusChanged({
      conversationId: episode.conversationId,
      status: 'resolved',
      waId,
      contactId,
      inboxId: this.chatwoot.inboxId,
      accountId: this.chatwoot.accountId,
    });
    // Each resolution is its own event to the app (keyed by update time): sub-second precision, as
    // Chatwoot's own updated_at, so that two resolutions within a second stay two.
    resolved.updated_at = Date.now() / 1000;
    if (!(await this.post(resolved))) {
      episode.state = 'abandoned';
      return;
    }
    episode.state = 'done';
    episode.doneAt = Date.now();
  }
}
