import { BspSendError } from '../../src/bsp/bsp-send.error';
import { partKey } from '../../src/conversation/reply-sender';
import { LlmError } from '../../src/llm/llm.client';
import { laneItem, messageItem } from '../utils/ingest-items';
import { counted, type TurnWorld, turnWorldPerTest } from './turn-module';

/**
 * ChatTurnService's main paths on the in-memory store, from the lane's inbox to the commit: what
 * is sent, what the history keeps, and what a turn whose lease is lost leaves behind (nothing).
 */
describe('ChatTurnService', () => {
  let w: TurnWorld;
  let seq: number;
  let lane: string;
  let to: string;

  turnWorldPerTest('9715030', (test) => ({ w, seq, lane, to } = test));

  const texts = () => w.bsp.accepted.map((send) => send.body);
  const history = async () => (await w.store.readChat(lane)).history.map((h) => [h.role, h.text]);

  it("answers with the LLM's reply, sends it, and commits both sides to the history", async () => {
    w.store.enqueue(lane, messageItem(lane, 'When do you open?', { name: 'Amal' }));
    w.llm.answer('We open at 9.');
    expect(await w.runTurn(lane)).toEqual({ kind: 'finished', result: 'idle', wake: undefined });

    expect(w.llm.requests).toHaveLength(1);
    expect(w.llm.requests[0].messages.at(-1)).toMatchObject({ role: 'user', content: 'When do you open?' });
    expect(w.bsp.accepted).toEqual([expect.objectContaining({ to, body: 'We open at 9.' })]);
    const [turnId] = (await w.store.readChat(lane)).history[1].ids!;
    expect(w.bsp.accepted[0].callbackData).toBe(partKey(turnId, 0));
    expect(await history()).toEqual([
      ['user', 'When do you open?'],
      ['assistant', 'We open at 9.'],
    ]);
    expect((await w.store.readChat(lane)).state).toMatchObject({ language: 'en', name: 'Amal', holding: false });
    expect(await w.records.ackOf(partKey(turnId, 0))).toBe(w.bsp.accepted[0].wamid);
    expect(await counted(w.metrics.turns, { outcome: 'replied' })).toBe(1);
    expect(await w.store.join(await w.lease(lane))).toEqual({ turn: undefined, items: [] });
  });

  it('an LLM failure sends the holding message once, then retries with backoff until the reply', async () => {
    w.store.enqueue(lane, messageItem(lane, 'Can I book for Monday?'));
    w.llm.answer(new LlmError('timeout', 'timed out'), new LlmError('error', 'HTTP 500'), 'Monday at 10 is free.');
    const holding = w.canned.text('holding', 'en');

    const first = await w.runTurn(lane);
    expect(first.kind).toBe('deferred');
    expect(texts()).toEqual([holding]);
    expect((await w.store.readChat(lane)).state.holding).toBe(true);
    await expect(w.lease(lane)).rejects.toThrow(/parked/);

    w.until((first as { at: number }).at);
    const second = await w.runTurn(lane);
    expect(second.kind).toBe('deferred');
    expect(texts()).toEqual([holding]);

    w.until((second as { at: number }).at);
    expect(await w.runTurn(lane)).toMatchObject({ kind: 'finished', result: 'idle' });
    expect(texts()).toEqual([holding, 'Monday at 10 is free.']);
    expect(w.llm.requests).toHaveLength(3);
    expect((await w.store.readChat(lane)).state.holding).toBe(false);
    expect(await history()).toEqual([
      ['user', 'Can I book for Monday?'],
      ['assistant', 'Monday at 10 is free.'],
    ]);
    expect(await counted(w.metrics.holdingMessages)).toBe(1);
  });

  it('LLM attempts exhausted without Chatwoot: the apology goes out and the turn is dead-lettered', async () => {
    const message = messageItem(lane, 'Is the clinic open?');
    w.store.enqueue(lane, message);
    const attempts = w.config.env.LLM_MAX_ATTEMPTS;
    w.llm.answer(...Array.from({ length: attempts }, () => new LlmError('error', 'HTTP 500')));
    let outcome = await w.runTurn(lane);
    for (let i = 1; i < attempts; i++) {
      w.until((outcome as { at: number }).at);
      outcome = await w.runTurn(lane);
    }
    expect(outcome).toMatchObject({ kind: 'finished' });
    expect(texts()).toEqual([w.canned.text('holding', 'en'), w.canned.text('apology', 'en')]);
    expect(w.deadLetters).toEqual([expect.objectContaining({ reason: 'llm_exhausted', lane, items: [message] })]);
    expect(await counted(w.metrics.turns, { outcome: 'dead_lettered' })).toBe(1);
  });

  it('an escalation trigger hands the chat over without asking the LLM; the bot then stays quiet', async () => {
    w.store.enqueue(lane, messageItem(lane, 'I want to file a complaint about my bill'));
    expect(await w.runTurn(lane)).toMatchObject({ kind: 'finished', result: 'idle' });
    expect(w.llm.requests).toEqual([]);
    const handoff = w.canned.text('handoff', 'en');
    expect(texts()).toEqual([handoff]);
    expect((await w.store.readChat(lane)).handoff).toMatchObject({ state: 'human', since: expect.any(Number) });
    expect(await history()).toEqual([
      ['user', 'I want to file a complaint about my bill'],
      ['assistant', handoff],
    ]);
    expect(await counted(w.metrics.escalations, { trigger: 'keyword' })).toBe(1);

    w.store.enqueue(lane, messageItem(lane, 'Hello?'));
    expect(await w.runTurn(lane)).toMatchObject({ kind: 'finished' });
    expect(w.llm.requests).toEqual([]);
    expect(texts()).toEqual([handoff]);
    expect((await history()).at(-1)).toEqual(['user', 'Hello?']);
  });

  it('a turn whose lease is lost while the LLM answers writes nothing; the next holder answers once', async () => {
    w.store.enqueue(lane, messageItem(lane, 'Do you take insurance?'));
    w.llm.answer(() => {
      // This worker stalls past its lease; the lane is someone else's to take.
      w.store.elapse(w.config.env.TURN_LEASE_MS + 1);
      return 'Late answer.';
    });
    expect(await w.runTurn(lane)).toEqual({ kind: 'lost' });
    expect(w.bsp.sends).toEqual([]);
    expect(await w.store.readChat(lane)).toEqual({ state: {}, history: [], handoff: { state: 'bot' } });

    w.llm.answer('Yes, most plans.');
    expect(await w.runTurn(lane)).toMatchObject({ kind: 'finished', result: 'idle' });
    expect(texts()).toEqual(['Yes, most plans.']);
    expect(await history()).toEqual([
      ['user', 'Do you take insurance?'],
      ['assistant', 'Yes, most plans.'],
    ]);
  });

  it('a send Meta refuses for good dead-letters the turn and commits what the patient said', async () => {
    const message = messageItem(lane, 'Hi');
    w.store.enqueue(lane, message);
    w.llm.answer('Hello! How can we help?');
    w.bsp.answer(new BspSendError(131026, 'permanent', 'not_sent', 'undeliverable'));
    expect(await w.runTurn(lane)).toMatchObject({ kind: 'finished', result: 'idle' });
    expect(w.bsp.accepted).toEqual([]);
    expect(w.deadLetters).toEqual([
      expect.objectContaining({ reason: 'send_permanent', lane, code: 131026, items: [message] }),
    ]);
    expect(await history()).toEqual([['user', 'Hi']]);
  });

  describe('an API message whose window closed before its turn', () => {
    const apiItem = () =>
      laneItem(lane, 'api', { id: `api-${seq}`, to, mode: 'free_form', text: 'Your results are ready.' });

    it('is dead-lettered (window_closed) and sends nothing', async () => {
      w.store.enqueue(lane, apiItem());
      expect(await w.runTurn(lane)).toMatchObject({ kind: 'finished' });
      expect(w.bsp.accepted).toEqual([]);
      expect(w.deadLetters).toEqual([expect.objectContaining({ reason: 'window_closed', lane, api: `api-${seq}` })]);
    });

    it('is not dead-lettered when the chat was erased meanwhile (the lease went with it)', async () => {
      w.store.enqueue(lane, apiItem());
      const read = w.store.readChat.bind(w.store);
      // DELETE /v1/conversations lands while the turn decides.
      jest.spyOn(w.store, 'readChat').mockImplementationOnce(async (chat) => {
        await w.store.erase(chat);
        return read(chat);
      });
      expect(await w.runTurn(lane)).toEqual({ kind: 'lost' });
      expect(w.bsp.accepted).toEqual([]);
      expect(w.deadLetters).toEqual([]);
    });
  });
});
