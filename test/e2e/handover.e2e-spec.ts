import { BotCluster } from '../utils/bot-cluster';
import { agentMessage, statusChanged } from '../utils/chatwoot-payloads';
import { expectConformsToChatwootApi } from '../utils/openapi-contract';
import { envelope, freshWamid, nowSeconds, textPayload } from '../utils/meta-payloads';
import { waitUntil } from '../utils/spawn-app';
import { TEST_PHONE_NUMBER_ID } from '../utils/test-env';
import { type FakeMessage } from '../fakes/fake-chatwoot.server';
import { FakeEscalationHook } from '../fakes/fake-escalation-hook.server';

const HANDOFF_EN =
  'Thank you. A colleague from Demo Clinic will take over this conversation and reply to you here shortly.';

/**
 * The hand-over (docs/handover.md) with a fake Chatwoot: one receiver in this process, two worker
 * processes, real Redis. Every trigger reaches Chatwoot with the whole history, in order, and the
 * triggering message never reaches the LLM; agents' replies come back once; a resolved conversation
 * gives the chat back to the bot. Every request the app makes conforms to Chatwoot's OpenAPI.
 */
describe('hand-over to Chatwoot', () => {
  let bot: BotCluster;
  let hook: FakeEscalationHook;
  let sender = 971500300000;
  const nextSender = (): string => String(++sender);

  beforeAll(async () => {
    hook = await FakeEscalationHook.start();
    bot = await BotCluster.start({
      workers: 2,
      chatwoot: true,
      env: { LLM_MAX_ATTEMPTS: '2', ESCALATION_WEBHOOK_URL: hook.url },
    });
  }, 120_000);

  afterAll(async () => {
    await bot?.close();
    await hook?.close();
  });

  beforeEach(() => {
    bot.llm.reset();
    bot.graph.reset();
    bot.chatwoot.down = false;
    bot.chatwoot.clearFaults();
  });

  afterEach(() => {
    // The contract: every request the app made in this test, as Chatwoot's own API description says.
    const requests = bot.chatwoot.requests.filter((r) => r.fault === undefined);
    if (requests.length > 0) expectConformsToChatwootApi(requests);
    bot.chatwoot.requests.length = 0;
  });

  /** The conversation of a patient, once the hand-over is complete (set open after the history). */
  const handedOver = (waId: string, messages: number) => bot.handedOver(waId, messages);

  const visible = (messages: FakeMessage[]) =>
    messages.filter((m) => !m.private).map((m) => [m.messageType, m.content]);

  it('an English keyword hands over before any LLM call, with the whole history, a note and one handoff message', async () => {
    const from = nextSender();
    await bot.post(textPayload({ from, text: 'hello', name: 'Amal' }));
    await bot.graph.waitForSends(1, 20_000);
    await bot.waitQuiet();
    await bot.post(textPayload({ from, text: 'I want to file a complaint about my bill' }));
    const { id, messages } = await handedOver(from, 5);

    expect(bot.llm.requests).toHaveLength(1); // the first message only
    expect(bot.sentTexts(from)).toEqual(['Echo: hello', HANDOFF_EN]);
    expect(visible(messages)).toEqual([
      ['incoming', 'hello'],
      ['outgoing', 'Echo: hello'],
      ['incoming', 'I want to file a complaint about my bill'],
      ['outgoing', HANDOFF_EN],
    ]);
    const note = messages.find((m) => m.private)!;
    expect(note.content).toContain('Trigger: keyword (complaint)');
    expect(note.content).toContain(`+${from}`);
    expect(messages.every((m) => m.sourceId)).toBe(true);
    const contact = bot.chatwoot.contacts().find((c) => c.identifier === `wa:${from}`)!;
    expect(contact.phoneNumber).toBe(`+${from}`);
    expect(bot.chatwoot.contactInboxes()).toContainEqual({ contactId: contact.id, inboxId: 5, sourceId: from });
    const conversation = bot.chatwoot.conversation(id)!;
    expect(conversation.status).toBe('open');
    expect(conversation.additionalAttributes).toMatchObject({ wa_phone_number_id: TEST_PHONE_NUMBER_ID });
    expect(await bot.metric('tawasul_escalations_total', 'trigger="keyword"')).toBeGreaterThanOrEqual(1);
    // The notice follows the hand-over, so it names the Chatwoot conversation.
    await waitUntil('the notice', () => hook.accepted.some((n) => n.chatwootConversationId === String(id)), 20_000);
  });

  it.each([
    ['Arabic with diacritics', 'أُرِيدُ تَقْدِيمَ شَكْوَى', 'keyword'],
    ['Arabic without diacritics, with the article', 'عندي مشكلة وأريد التحدث مع المحامي', 'keyword'],
    ['a request for a human', 'can I talk to someone please', 'human_request'],
    ['a request for a human in Arabic', 'أريد التحدث مع موظف', 'human_request'],
  ])('%s hands over without calling the LLM', async (_name, text, trigger) => {
    const from = nextSender();
    await bot.post(textPayload({ from, text }));
    const { messages } = await handedOver(from, 3);
    expect(bot.llm.requests).toHaveLength(0);
    expect(visible(messages)[0]).toEqual(['incoming', text]);
    expect(messages.find((m) => m.private)!.content).toContain(`Trigger: ${trigger}`);
    const sent = bot.sentTexts(from);
    expect(sent).toHaveLength(1);
    if (/[\u0600-\u06ff]/.test(text)) expect(sent[0]).toMatch(/زملائنا/);
  });

  it('an interactive reply whose id asks for an agent hands over', async () => {
    const from = nextSender();
    const message = {
      from,
      id: freshWamid(),
      timestamp: nowSeconds(),
      type: 'interactive',
      interactive: { type: 'button_reply', button_reply: { id: 'talk_to_agent', title: 'Yes please' } },
    };
    await bot.post(envelope({ contacts: [{ profile: { name: 'P' }, wa_id: from }], messages: [message] }));
    const { messages } = await handedOver(from, 3);
    expect(bot.llm.requests).toHaveLength(0);
    expect(messages.find((m) => m.private)!.content).toContain('Trigger: human_request');
  });

  it('a keyword only inside another word does not hand over', async () => {
    const from = nextSender();
    await bot.post(textPayload({ from, text: 'Which agency handles the management of my file?' }));
    await bot.graph.waitForSends(1, 20_000);
    await bot.waitQuiet();
    expect(bot.llm.requests).toHaveLength(1);
    expect(bot.chatwoot.contacts().find((c) => c.identifier === `wa:${from}`)).toBeUndefined();
  });

  it('the LLM marker hands over; the marker never reaches the patient', async () => {
    const from = nextSender();
    bot.llm.reply = () => 'I will ask a colleague to help you with this. [HANDOFF]';
    await bot.post(textPayload({ from, text: 'my results look strange' }));
    const { messages } = await handedOver(from, 3);
    const sent = bot.sentTexts(from);
    expect(sent).toEqual([`I will ask a colleague to help you with this.\n\n${HANDOFF_EN}`]);
    expect(sent.join()).not.toContain('[HANDOFF]');
    expect(visible(messages)).toEqual([
      ['incoming', 'my results look strange'],
      ['outgoing', sent[0]],
    ]);
    expect(messages.find((m) => m.private)!.content).toContain('Trigger: marker');
  });

  it('exhausted LLM attempts hand over instead of the apology, and nothing is dead-lettered', async () => {
    const from = nextSender();
    const before = await bot.metrics(['tawasul_dead_letters_total{reason="llm_exhausted"}']);
    bot.llm.mode = 'error500';
    await bot.post(textPayload({ from, text: 'is the clinic open on Friday?' }));
    const { messages } = await handedOver(from, 3);
    const sent = bot.sentTexts(from);
    expect(sent).toHaveLength(2); // holding, then the handoff message
    expect(sent[1]).toBe(HANDOFF_EN);
    expect(messages.find((m) => m.private)!.content).toContain('Trigger: exhausted');
    expect(Object.values(await bot.metricDeltas(before))).toEqual([0]);
  });

  it('while a human has the chat, messages are mirrored in order, media as a description, and the LLM is not called', async () => {
    const from = nextSender();
    await bot.post(textPayload({ from, text: 'I need a human' }));
    const { id } = await handedOver(from, 3);
    bot.llm.reset();
    bot.graph.reset();
    const before = bot.chatwoot.messagesOf(id).length;
    const image = {
      from,
      id: freshWamid(),
      timestamp: nowSeconds(),
      type: 'image',
      image: { id: 'media-1', mime_type: 'image/jpeg', caption: 'my prescription' },
    };
    await bot.post(textPayload({ from, text: 'first' }));
    await bot.post(textPayload({ from, text: 'second' }));
    await bot.post(envelope({ messages: [image] }));
    await bot.chatwoot.waitForMessages(id, before + 3, 20_000);
    await bot.waitQuiet();
    const mirrored = bot.chatwoot.messagesOf(id).slice(before);
    expect(mirrored.map((m) => [m.messageType, m.content])).toEqual([
      ['incoming', 'first'],
      ['incoming', 'second'],
      ['incoming', '[image: my prescription]'],
    ]);
    expect(bot.llm.requests).toHaveLength(0);
    expect(bot.sentTexts(from)).toEqual([]);
  });

  it('an agent reply reaches the patient once, even delivered twice; our own and non-agent messages never do', async () => {
    const from = nextSender();
    await bot.post(textPayload({ from, text: 'talk to a representative' }));
    const { id, messages } = await handedOver(from, 3);
    bot.graph.reset();
    const reply = agentMessage({ conversationId: id, content: 'Hello, Sara here. How can I help?', waId: from });
    const [first, second] = await Promise.all([bot.postChatwoot(reply), bot.postChatwoot(reply)]);
    expect([first.status, second.status]).toEqual([200, 200]);
    // Not for the patient: a note, an incoming mirror, an agent bot, one carrying our source_id, and a
    // message we created ourselves coming back as if a user wrote it (a user token).
    const ours = messages.find((m) => m.messageType === 'outgoing')!;
    for (const payload of [
      agentMessage({ conversationId: id, content: 'note', waId: from, private: true }),
      agentMessage({ conversationId: id, content: 'mirror', waId: from, messageType: 'incoming' }),
      agentMessage({ conversationId: id, content: 'bot', waId: from, senderType: 'agent_bot' }),
      agentMessage({ conversationId: id, content: 'tagged', waId: from, sourceId: 't.x.0' }),
      agentMessage({ conversationId: id, content: ours.content, waId: from, messageId: ours.id }),
    ]) {
      expect((await bot.postChatwoot(payload)).status).toBe(200);
    }
    await bot.graph.waitForSends(1, 20_000);
    await bot.waitQuiet();
    expect(bot.sentTexts(from)).toEqual(['Hello, Sara here. How can I help?']);
    // Agent activity renews the hand-over, for at most 7 days.
    const ttl = await bot.redis.ttl(bot.receiver.keys.handoff(`c.${TEST_PHONE_NUMBER_ID}.${from}`));
    expect(ttl).toBeGreaterThan(7 * 86400 - 120);
    expect(ttl).toBeLessThanOrEqual(7 * 86400);
    expect(await bot.metric('tawasul_agent_replies_total', 'outcome="relayed"')).toBeGreaterThanOrEqual(1);
  });

  it('patient messages and an agent reply waiting together are handled in arrival order, each by its own turn', async () => {
    const from = nextSender();
    await bot.post(textPayload({ from, text: 'I need a human agent' }));
    const { id } = await handedOver(from, 3);
    bot.graph.reset();
    const before = bot.chatwoot.messagesOf(id).length;
    // Freeze the workers so that all three wait in the chat's inbox together.
    for (const worker of bot.workers) worker.kill('SIGSTOP');
    try {
      await bot.post(textPayload({ from, text: 'before the agent' }));
      await bot.postChatwoot(agentMessage({ conversationId: id, content: 'Agent here.', waId: from }));
      await bot.post(textPayload({ from, text: 'after the agent' }));
    } finally {
      for (const worker of bot.workers) worker.kill('SIGCONT');
    }
    await bot.chatwoot.waitForMessages(id, before + 2, 30_000);
    await bot.graph.waitForSends(1, 30_000);
    await bot.waitQuiet();
    expect(bot.sentTexts(from)).toEqual(['Agent here.']);
    const history = await bot.redis.lrange(bot.receiver.keys.history(`c.${TEST_PHONE_NUMBER_ID}.${from}`), -3, -1);
    expect(
      history.map((raw) => JSON.parse(raw) as { role: string; text: string }).map((h) => [h.role, h.text]),
    ).toEqual([
      ['user', 'before the agent'],
      ['agent', 'Agent here.'],
      ['user', 'after the agent'],
    ]);
  }, 60_000);

  it('resolved: the bot answers again, with the agent’s words in its context', async () => {
    const from = nextSender();
    await bot.post(textPayload({ from, text: 'I want to speak to a human' }));
    const { id } = await handedOver(from, 3);
    await bot.postChatwoot(agentMessage({ conversationId: id, content: 'Your refund was approved.', waId: from }));
    await bot.graph.waitForSends(2, 20_000);
    await bot.waitQuiet();
    expect((await bot.postChatwoot(statusChanged({ conversationId: id, status: 'resolved', waId: from }))).status).toBe(
      200,
    );
    await bot.waitQuiet();
    await bot.post(textPayload({ from, text: 'thanks, when will I get it?' }));
    await bot.graph.waitForSends(3, 20_000);
    await bot.waitQuiet();
    expect(bot.llm.requests).toHaveLength(1);
    const sent = bot.llm.requests[0].body.messages.map((m: { role: string; content: string }) => [m.role, m.content]);
    // Consecutive clinic-side entries (the handoff message, the agent) reach the LLM as one assistant turn.
    expect(
      sent.some(([role, content]: string[]) => role === 'assistant' && content.includes('Your refund was approved.')),
    ).toBe(true);
    expect(sent.at(-1)).toEqual(['user', 'thanks, when will I get it?']);
    expect(bot.sentTexts(from).at(-1)).toBe('Echo: thanks, when will I get it?');
  });

  it('an agent reply into a closed window is not sent, and a private note says why', async () => {
    const from = nextSender();
    // Hand the chat over while its window is open, then age its last inbound message.
    await bot.post(textPayload({ from, text: 'I need a human' }));
    const { id } = await handedOver(from, 3);
    const dayAndAnHourAgo = Math.floor(Date.now() / 1000) - 25 * 3600;
    await bot.redis.hset(bot.receiver.keys.chat(`c.${TEST_PHONE_NUMBER_ID}.${from}`), 'lastInboundTs', dayAndAnHourAgo);
    bot.graph.reset();
    const before = bot.chatwoot.messagesOf(id).length;
    await bot.postChatwoot(agentMessage({ conversationId: id, content: 'Are you still there?', waId: from }));
    await bot.chatwoot.waitForMessages(id, before + 1, 20_000);
    await bot.waitQuiet();
    expect(bot.sentTexts(from)).toEqual([]);
    const note = bot.chatwoot.messagesOf(id).at(-1)!;
    expect(note.private).toBe(true);
    expect(note.content).toMatch(/Not delivered to the patient on WhatsApp: the 24-hour window is closed/);
  });

  it('an agent reply WhatsApp refuses for good is not retried, and a private note says why', async () => {
    const from = nextSender();
    await bot.post(textPayload({ from, text: 'I need a human' }));
    const { id } = await handedOver(from, 3);
    bot.graph.reset();
    bot.graph.enqueue({ kind: 'graph-error', code: 131026, message: 'Message undeliverable' });
    const before = bot.chatwoot.messagesOf(id).length;
    await bot.postChatwoot(agentMessage({ conversationId: id, content: 'Can you hear me?', waId: from }));
    await bot.chatwoot.waitForMessages(id, before + 1, 20_000);
    await bot.waitQuiet();
    expect(bot.graph.sends()).toHaveLength(1);
    const note = bot.chatwoot.messagesOf(id).at(-1)!;
    expect([note.private, note.content]).toEqual([
      true,
      'Not delivered to the patient on WhatsApp: WhatsApp refused it (error 131026)',
    ]);
  });

  it('Chatwoot down during a hand-over, then up: one contact, one conversation, the history once, one handoff message', async () => {
    const from = nextSender();
    bot.chatwoot.down = true;
    await bot.post(textPayload({ from, text: 'this is a complaint' }));
    await bot.graph.waitForSends(1, 20_000);
    await waitUntil('a failed Chatwoot request', () => bot.chatwoot.requests.some((r) => r.fault === 'down'), 20_000);
    expect(await bot.metric('tawasul_desk_backlog')).toBeGreaterThan(0);
    // A message while Chatwoot is still down is mirrored after the history, in order.
    await bot.post(textPayload({ from, text: 'hello?' }));
    // One post also lands although its answer is lost: the retry must find it, not post it again.
    bot.chatwoot.fail(1, { status: 500, afterEffect: true, on: 'message_create' });
    bot.chatwoot.down = false;
    const { id, messages } = await handedOver(from, 4);
    expect(visible(messages)).toEqual([
      ['incoming', 'this is a complaint'],
      ['outgoing', HANDOFF_EN],
      ['incoming', 'hello?'],
    ]);
    expect(messages.filter((m) => m.private)).toHaveLength(1);
    expect(bot.chatwoot.contacts().filter((c) => c.identifier === `wa:${from}`)).toHaveLength(1);
    expect(bot.chatwoot.conversations().filter((c) => c.id === id || c.sourceId === from)).toHaveLength(1);
    expect(bot.sentTexts(from)).toEqual([HANDOFF_EN]);
    expect(await bot.metric('tawasul_desk_backlog')).toBe(0);
  }, 90_000);

  it('a worker SIGKILLed mid-hand-over: another finishes it, nothing posted twice', async () => {
    const from = nextSender();
    await bot.post(textPayload({ from, text: 'hello' }));
    await bot.graph.waitForSends(1, 20_000);
    await bot.waitQuiet();
    // The first history post is made by Chatwoot but its answer never comes: the worker waits on it.
    bot.chatwoot.hang(1, { on: 'message_create', afterEffect: true });
    await bot.post(textPayload({ from, text: 'I will call my lawyer' }));
    await waitUntil('the hung post', () => bot.chatwoot.requests.some((r) => r.fault === 'hang'), 20_000);
    for (const worker of bot.workers.splice(0)) worker.kill('SIGKILL');
    await bot.addWorker();
    const { messages } = await handedOver(from, 5);
    expect(visible(messages)).toEqual([
      ['incoming', 'hello'],
      ['outgoing', 'Echo: hello'],
      ['incoming', 'I will call my lawyer'],
      ['outgoing', HANDOFF_EN],
    ]);
    expect(messages.filter((m) => m.private)).toHaveLength(1);
    expect(bot.chatwoot.conversations().filter((c) => c.sourceId === from)).toHaveLength(1);
    expect(bot.sentTexts(from)).toEqual(['Echo: hello', HANDOFF_EN]);
    await bot.addWorker();
  }, 90_000);
});
