import { RedisConversationStore } from '../../src/conversation/redis-conversation.store';
import { AppLogger } from '../../src/logging/app-logger';
import { RedisConnections } from '../../src/redis/redis-connections.service';
import { DedupStore } from '../../src/dedup/dedup.store';
import { type BotCluster } from '../utils/bot-cluster';
import { botPerSuite } from '../utils/bot-suite';
import { envelope, nowSeconds, textMessage, textPayload } from '../utils/meta-payloads';

/**
 * The heart of the product (docs/architecture.md: lanes, leases, turns, sends) with one receiver
 * and three worker processes sharing one Redis: exact counts are asserted only once the whole bot
 * is quiet.
 */
describe('worker turns with three worker processes', () => {
  let bot: BotCluster;

  botPerSuite({ workers: 3 }, (started) => (bot = started), 120_000);

  /** `from` writes `text`; waits until `sends` sends went out in all and the bot is quiet. */
  async function writesAndIsAnswered(from: string, text: string, sends: number): Promise<void> {
    await bot.post(textPayload({ from, text }));
    await bot.graph.waitForSends(sends, 20_000);
    await bot.waitQuiet();
  }

  /** What the LLM is sent after the system prompt: `first`, its echo, then `next`. */
  const echoedThen = (first: string, next: string): { role: string; content: string }[] => [
    { role: 'user', content: first },
    { role: 'assistant', content: `Echo: ${first}` },
    { role: 'user', content: next },
  ];

  /** The system message Meta sends when `from` changes its number to `to`. */
  const numberChange = (from: string, to: string): Record<string, unknown> => ({
    from,
    id: `wamid.NC${Date.now()}`,
    timestamp: nowSeconds(),
    type: 'system',
    system: { body: `User changed from ${from} to ${to}`, wa_id: to, type: 'user_changed_number' },
  });

  it('one message gets one reply, from the LLM, to the sender', async () => {
    const from = '971500000101';
    expect((await bot.post(textPayload({ from, text: 'hello there' }))).status).toBe(200);
    await bot.graph.waitForSends(1, 20_000);
    await bot.waitQuiet();
    expect(bot.sentTexts(from)).toEqual(['Echo: hello there']);
    expect(bot.llm.requests).toHaveLength(1);
  });

  it('duplicates of a message, concurrent and late, make one LLM call and one reply', async () => {
    const from = '971500000102';
    const payload = textPayload({ from, text: 'only once' });
    const answers = await Promise.all(Array.from({ length: 8 }, () => bot.post(payload)));
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200));
    await bot.graph.waitForSends(1, 20_000);
    await bot.waitQuiet();
    expect((await bot.post(payload)).status).toBe(200);
    await bot.waitQuiet();
    expect(bot.llm.requests).toHaveLength(1);
    expect(bot.sentTexts(from)).toEqual(['Echo: only once']);
  });

  it('a batch for several users answers each of them once', async () => {
    const senders = ['971500000111', '971500000112', '971500000113', '971500000114'];
    const messages = senders.map((from) => textMessage({ from, text: `hi from ${from}` }));
    const contacts = senders.map((from) => ({ profile: { name: 'P' }, wa_id: from }));
    expect((await bot.post(envelope({ contacts, messages }))).status).toBe(200);
    await bot.graph.waitForSends(senders.length, 20_000);
    await bot.waitQuiet();
    for (const from of senders) expect(bot.sentTexts(from)).toEqual([`Echo: hi from ${from}`]);
  });

  it('the next turn sees the history, in order, as user/assistant messages', async () => {
    const from = '971500000103';
    await writesAndIsAnswered(from, 'first question', 1);
    await writesAndIsAnswered(from, 'second question', 2);
    const second = bot.llm.requests[1].body.messages;
    expect(second[0].role).toBe('system');
    expect(second.slice(1)).toEqual(echoedThen('first question', 'second question'));
  });

  it('with a slow LLM, back-to-back messages of one chat never overlap and keep their order', async () => {
    const from = '971500000104';
    bot.llm.latencyMs = 400;
    const texts = ['m1', 'm2', 'm3', 'm4', 'm5'];
    for (const text of texts) {
      expect((await bot.post(textPayload({ from, text }))).status).toBe(200);
      await new Promise((r) => setTimeout(r, 120));
    }
    await bot.waitQuiet(40_000);
    // One chat: never two inferences at once, and every message reached the LLM once, in order.
    expect(bot.llm.maxInFlight).toBe(1);
    const turns = bot.llm.requests.map((r) => r.body.messages[r.body.messages.length - 1].content);
    expect(turns.join('\n').split('\n')).toEqual(texts);
    expect(bot.sentTexts(from)).toHaveLength(bot.llm.requests.length);
  });

  it('many chats are answered concurrently, in about one LLM latency', async () => {
    bot.llm.latencyMs = 1500;
    const senders = Array.from({ length: 30 }, (_, i) => `9715009002${String(i).padStart(2, '0')}`);
    const started = Date.now();
    await Promise.all(senders.map((from) => bot.post(textPayload({ from, text: 'busy day' }))));
    await bot.graph.waitForSends(senders.length, 30_000);
    const elapsed = Date.now() - started;
    await bot.waitQuiet();
    expect(bot.llm.maxInFlight).toBeGreaterThan(10);
    // Sequential handling would take 30 × 1.5 s; concurrent handling about one latency.
    expect(elapsed).toBeLessThan(10 * 1500);
  });

  it('Arabic goes through unchanged, and a 9,000-character reply is split in order', async () => {
    const from = '971500000105';
    const long = Array.from({ length: 90 }, (_, i) => `Sentence ${i} ${'x'.repeat(88)}.`).join(' ');
    bot.llm.reply = (body) =>
      body.messages[body.messages.length - 1].content.startsWith('مرحبا') ? 'أهلاً وسهلاً' : long;
    await writesAndIsAnswered(from, 'مرحبا، هل يمكنني حجز موعد؟', 1);
    expect(bot.llm.requests[0].body.messages.at(-1)!.content).toBe('مرحبا، هل يمكنني حجز موعد؟');
    expect(bot.sentTexts(from)).toEqual(['أهلاً وسهلاً']);
    bot.graph.reset();
    await writesAndIsAnswered(from, 'tell me everything', 3);
    const parts = bot.sentTexts(from);
    expect(parts.length).toBeGreaterThanOrEqual(3);
    for (const part of parts) expect(part.length).toBeLessThanOrEqual(4096);
    expect(parts.join(' ').replace(/\s+/g, ' ')).toBe(long.replace(/\s+/g, ' '));
  });

  it('statuses are deduplicated and settle the outbound record', async () => {
    const from = '971500000106';
    await bot.post(textPayload({ from, text: 'status please' }));
    const [send] = await bot.graph.waitForSends(1, 20_000);
    await bot.waitQuiet();
    const status = envelope({
      statuses: [
        {
          id: send.wamid,
          status: 'delivered',
          timestamp: nowSeconds(),
          recipient_id: from,
          biz_opaque_callback_data: send.body.biz_opaque_callback_data,
        },
      ],
    });
    await bot.post(status);
    await bot.post(status);
    await bot.waitQuiet();
    const state = await bot.redis.hgetall(`${bot.receiver.config.redisKeyRoot}:chat:c.100000000000001.${from}:state`);
    expect(state).toMatchObject({ name: 'Test User', language: 'en' });
    expect(Number(state.lastInboundTs)).toBeGreaterThan(Date.now() / 1000 - 60);
    const record = await bot.redis.hgetall(`${bot.receiver.config.redisKeyRoot}:out:${send.wamid}`);
    expect(record.status).toBe('delivered');
    expect(record.lane).toBe(`c.100000000000001.${from}`);
  });

  it('a number change moves the chat history to the new number', async () => {
    const from = '971500000107';
    const to = '971500000108';
    await writesAndIsAnswered(from, 'remember me', 1);
    const change = numberChange(from, to);
    await bot.post(envelope({ messages: [change] }));
    await bot.waitQuiet();
    expect(bot.sentTexts()).toHaveLength(1);
    await writesAndIsAnswered(to, 'it is me again', 2);
    const last = bot.llm.requests[bot.llm.requests.length - 1].body.messages;
    expect(last.slice(1)).toEqual(echoedThen('remember me', 'it is me again'));
  });

  it('a number change learnt in a turn that also answers commits that turn to the new number', async () => {
    const from = '971500000117';
    const to = '971500000118';
    const keys = bot.receiver.keys;
    const history = async (wa: string): Promise<{ role: string; text: string }[]> =>
      (await bot.redis.lrange(keys.history(`c.100000000000001.${wa}`), 0, -1)).map((raw) => {
        const { role, text } = JSON.parse(raw) as { role: string; text: string };
        return { role, text };
      });
    await writesAndIsAnswered(from, 'remember me', 1);
    // One webhook, one turn: a message and the number change after it.
    const change = numberChange(from, to);
    await bot.post(envelope({ messages: [textMessage({ from, text: 'my number changes now' }), change] }));
    await bot.graph.waitForSends(2, 20_000);
    await bot.waitQuiet();
    expect(bot.llm.requests).toHaveLength(2);
    // The turn's own message and reply are in the new chat, after the old history; nothing is left behind.
    expect(await history(to)).toEqual([
      { role: 'user', text: 'remember me' },
      { role: 'assistant', text: 'Echo: remember me' },
      { role: 'user', text: 'my number changes now' },
      { role: 'assistant', text: 'Echo: my number changes now' },
    ]);
    expect(await history(from)).toEqual([]);
    expect(await bot.redis.exists(keys.chat(`c.100000000000001.${from}`))).toBe(0);
  });

  it('while a human has the chat the bot stays quiet but keeps the history', async () => {
    const from = '971500000109';
    const root = bot.receiver.config.redisKeyRoot;
    const handoff = `${root}:chat:c.100000000000001.${from}:handoff`;
    await bot.redis.multi().hset(handoff, { state: 'human', conversationId: '42' }).expire(handoff, 120).exec();
    await bot.post(textPayload({ from, text: 'are you there?' }));
    await bot.waitQuiet();
    expect(bot.llm.requests).toHaveLength(0);
    expect(bot.sentTexts(from)).toEqual([]);
    await bot.redis.del(handoff);
    await writesAndIsAnswered(from, 'hello again', 1);
    expect(bot.llm.requests[0].body.messages.slice(1)).toEqual([
      { role: 'user', content: 'are you there?' },
      { role: 'user', content: 'hello again' },
    ]);
  });

  it('the hand-over record is fenced and lives at most 7 days', async () => {
    const config = bot.receiver.config;
    const connections = new RedisConnections(config, new AppLogger('silent'));
    const store = new RedisConversationStore(connections.worker, bot.receiver.keys, config);
    try {
      const lane = 'c.100000000000001.971500000110';
      const lease = (await store.acquire(lane))!;
      expect(await store.setHandoff(lease, lane, { state: 'human', conversationId: '7' }, 30 * 86400)).toBe(true);
      expect((await store.readChat(lane)).handoff).toMatchObject({ state: 'human', conversationId: '7' });
      const ttl = await bot.redis.ttl(bot.receiver.keys.handoff(lane));
      expect(ttl).toBeGreaterThan(7 * 86400 - 10);
      expect(ttl).toBeLessThanOrEqual(7 * 86400);
      expect(await store.setHandoff({ ...lease, fence: `${lease.fence}0` }, lane, { state: 'bot' }, 0)).toBe(false);
      expect(await store.setHandoff(lease, lane, { state: 'bot' }, 0)).toBe(true);
      expect((await store.readChat(lane)).handoff).toEqual({ state: 'bot' });
      await store.release(lease);
    } finally {
      await connections.onApplicationShutdown();
    }
  });

  it('the sweeper answers a message whose wake-up was lost', async () => {
    const from = '971500000111';
    const lane = `c.100000000000001.${from}`;
    // Exactly what the receiver's atomic step stores, without the best-effort wake-up that follows.
    const store = bot.receiver.app.get(DedupStore, { strict: false });
    const message = textMessage({ from, text: 'lost wake-up' });
    const [result] = await store.ingest(
      [
        {
          key: `m:${String(message.id)}`,
          lane,
          kind: 'message',
          receivedAt: Date.now(),
          phoneNumberId: '100000000000001',
          raw: message,
        },
      ],
      [],
    );
    expect(result.outcome).toBe(1);
    // Pending for longer than the sweeper's grace (2 leases + 5 s), with no job anywhere.
    await bot.redis.zadd(bot.receiver.keys.pending, 'XX', Date.now() - 60_000, lane);
    const jobs = await bot.turnsQueue.getJobs(['waiting', 'active', 'delayed']);
    expect(jobs.filter((job) => job?.data?.lane === lane)).toEqual([]);
    await bot.graph.waitForSends(1, 30_000);
    await bot.waitQuiet();
    expect(bot.sentTexts(from)).toEqual(['Echo: lost wake-up']);
  });
});
