import { BspSendError } from '../../src/bsp/bsp-send.error';
import { partKey, SEND_GIVE_UP_MS } from '../../src/conversation/reply-sender';
import { type Lease, type TurnMeta } from '../../src/conversation/turn.types';
import { statusLane } from '../../src/queue/lanes';
import { laneItem } from '../utils/ingest-items';
import { TEST_PHONE_NUMBER_ID } from '../utils/test-env';
import { counted, type TurnWorld, turnWorldPerTest } from './turn-module';

/**
 * ReplySender on the in-memory store: the order of the parts, the ack that stops a resend, the
 * unknown outcome settled by a status, and the BSP error kinds (src/bsp/bsp-error-taxonomy.ts).
 */
describe('ReplySender', () => {
  let w: TurnWorld;
  let seq: number;
  let lane: string;
  let to: string;

  turnWorldPerTest('9715020', (test) => ({ w, seq, lane, to } = test));

  /** A decided reply, stored and locked as ChatTurnService leaves it before the first send. */
  async function decided(...parts: string[]): Promise<{ lease: Lease; turn: TurnMeta }> {
    const lease = await w.lease(lane);
    const turn: TurnMeta = {
      id: `turn${seq}`,
      startedAt: Date.now(),
      attempts: 1,
      sendFailures: 0,
      pairRateFailures: 0,
      reply: {
        kind: 'llm',
        text: parts.join('\n'),
        parts,
        sent: parts.map(() => null),
        sending: parts.map(() => null),
      },
    };
    expect(await w.store.saveTurn(lease, turn, true)).toBe(true);
    return { lease, turn };
  }

  const failure = (code: number | string, kind: BspSendError['kind'], outcome: BspSendError['outcome'] = 'not_sent') =>
    new BspSendError(code, kind, outcome, `send failed (${code})`, code === 1 ? { retryLimit: 2 } : {});

  it('sends the parts in order, each with its part key, and records each one', async () => {
    const { lease, turn } = await decided('one', 'two', 'three');
    expect(await w.sender.sendParts(lease, turn, to)).toEqual({ kind: 'done' });
    expect(w.bsp.accepted.map((s) => [s.to, s.body, s.callbackData])).toEqual([
      [to, 'one', partKey(turn.id, 0)],
      [to, 'two', partKey(turn.id, 1)],
      [to, 'three', partKey(turn.id, 2)],
    ]);
    const wamids = w.bsp.accepted.map((s) => s.wamid);
    expect(turn.reply!.sent).toEqual(wamids);
    expect((await w.store.join(lease))?.turn?.reply?.sent).toEqual(wamids);
    for (const [i, wamid] of wamids.entries()) {
      expect(await w.records.ackOf(partKey(turn.id, i))).toBe(wamid);
      expect(w.records.record(wamid!)).toMatchObject({ lane, mode: 'free_form', category: 'service' });
    }
    expect(w.ledger.entries.map((e) => e.wamid)).toEqual(wamids);
    expect(await counted(w.metrics.sends, { outcome: 'ok' })).toBe(3);
  });

  it('a worker whose lease is gone sends nothing', async () => {
    const { lease, turn } = await decided('one');
    await w.store.release(lease);
    expect(await w.sender.sendParts(lease, turn, to)).toEqual({ kind: 'lost' });
    expect(w.bsp.sends).toEqual([]);
  });

  it('a part Meta confirmed is never sent again: the next holder sends only what is left', async () => {
    const { lease, turn } = await decided('one', 'two');
    // Meta accepts the first part while this worker stalls past its lease.
    w.bsp.answer(() => w.store.elapse(w.config.env.TURN_LEASE_MS + 1));
    expect(await w.sender.sendParts(lease, turn, to)).toEqual({ kind: 'lost' });
    expect(w.bsp.accepted.map((s) => s.body)).toEqual(['one']);

    const next = await w.lease(lane);
    const stored = (await w.store.join(next))!.turn!;
    expect(stored.reply!.sent).toEqual([null, null]);
    expect(stored.reply!.sending[0]).toEqual(expect.any(Number));
    expect(await w.sender.sendParts(next, stored, to)).toEqual({ kind: 'done' });
    expect(w.bsp.accepted.map((s) => s.body)).toEqual(['one', 'two']);
    expect(stored.reply!.sent).toEqual(w.bsp.accepted.map((s) => s.wamid));
    expect(await counted(w.metrics.possibleDuplicateSends)).toBe(0);
  });

  it('an unknown outcome waits for the status carrying the part key, and settles from it without a resend', async () => {
    const { lease, turn } = await decided('one', 'two');
    w.bsp.answer(failure('ETIMEDOUT', 'retry', 'unknown'));
    const first = await w.sender.sendParts(lease, turn, to);
    expect(first).toMatchObject({ kind: 'defer' });
    expect(turn.reply!.sending[0]).toEqual(expect.any(Number));

    // Woken before SEND_UNKNOWN_WAIT_MS: nothing is resent, the part waits for its status.
    const waiting = await w.sender.sendParts(lease, turn, to);
    expect(waiting).toEqual({ kind: 'defer', at: turn.reply!.sending[0]! + w.config.env.SEND_UNKNOWN_WAIT_MS });
    expect(w.bsp.sends).toHaveLength(1);

    const status = statusLane(TEST_PHONE_NUMBER_ID, to);
    w.store.enqueue(
      status,
      laneItem(status, 'status', {
        id: 'wamid.ACCEPTED',
        status: 'sent',
        biz_opaque_callback_data: partKey(turn.id, 0),
      }),
    );
    expect(await w.sender.sendParts(lease, turn, to)).toEqual({ kind: 'done' });
    expect(w.bsp.sends.map((s) => s.body)).toEqual(['one', 'two']);
    expect(turn.reply!.sent[0]).toBe('wamid.ACCEPTED');
    expect(await counted(w.metrics.possibleDuplicateSends)).toBe(0);
  });

  it('an unknown outcome with no status within SEND_UNKNOWN_WAIT_MS is resent and counted as a possible duplicate', async () => {
    const { lease, turn } = await decided('one');
    w.bsp.answer(failure(500, 'retry', 'unknown'));
    expect(await w.sender.sendParts(lease, turn, to)).toMatchObject({ kind: 'defer' });
    // The wait is measured on real time: the part's send is made older instead of sleeping.
    turn.reply!.sending[0]! -= w.config.env.SEND_UNKNOWN_WAIT_MS + 1;
    expect(await w.sender.sendParts(lease, turn, to)).toEqual({ kind: 'done' });
    expect(w.bsp.sends.map((s) => s.body)).toEqual(['one', 'one']);
    expect(await counted(w.metrics.possibleDuplicateSends)).toBe(1);
  });

  it('retryable errors park the turn with growing, jittered backoff; not_sent clears the mark', async () => {
    const { lease, turn } = await decided('one');
    const delays: number[] = [];
    for (const error of [failure(131000, 'retry'), failure(131000, 'retry'), failure(190, 'config')]) {
      w.bsp.answer(error);
      const before = Date.now();
      const step = await w.sender.sendParts(lease, turn, to);
      expect(step.kind).toBe('defer');
      delays.push((step as { at: number }).at - before);
      expect(turn.reply!.sending[0]).toBeNull();
    }
    expect(turn.sendFailures).toBe(3);
    expect(delays[0]).toBeGreaterThanOrEqual(800);
    expect(delays[0]).toBeLessThanOrEqual(1200 + 50);
    expect(delays[1]).toBeGreaterThanOrEqual(1600);
    expect(delays[1]).toBeLessThanOrEqual(2400 + 50);
    // A configuration error waits for a human: from 30 s, doubled per failure.
    expect(delays[2]).toBeGreaterThanOrEqual(0.8 * 120_000);
    expect(delays[2]).toBeLessThanOrEqual(1.2 * 120_000 + 50);
    expect(await counted(w.metrics.sends, { outcome: 'retried' })).toBe(3);
    expect(await w.sender.sendParts(lease, turn, to)).toEqual({ kind: 'done' });
    expect(turn.sendFailures).toBe(0);
  });

  it('131056 parks only this chat for 4^n seconds', async () => {
    const { lease, turn } = await decided('one');
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      w.bsp.answer(failure(131056, 'pair_rate'));
      const before = Date.now();
      const step = await w.sender.sendParts(lease, turn, to);
      delays.push(Math.round(((step as { at: number }).at - before) / 1000));
    }
    expect(delays).toEqual([1, 4, 16]);
    expect(turn.pairRateFailures).toBe(3);
  });

  it('permanent and closed-window errors fail the part at once; a code with a retry limit fails once it is reached', async () => {
    for (const [error, metric] of [
      [failure(131026, 'permanent'), 'failed'],
      [failure(131047, 'window_closed'), 'failed'],
    ] as const) {
      const { lease, turn } = await decided('one');
      w.bsp.answer(error);
      expect(await w.sender.sendParts(lease, turn, to)).toEqual({ kind: 'failed', error });
      expect(turn.reply!.sent).toEqual([null]);
      expect(await counted(w.metrics.sends, { outcome: metric })).toBeGreaterThan(0);
      await w.store.release(lease);
    }
    expect(await counted(w.metrics.windowClosed, { source: 'send' })).toBe(1);

    const { lease, turn } = await decided('one');
    w.bsp.answer(failure(1, 'retry'), failure(1, 'retry'), failure(1, 'retry'));
    expect((await w.sender.sendParts(lease, turn, to)).kind).toBe('defer');
    expect((await w.sender.sendParts(lease, turn, to)).kind).toBe('defer');
    expect(await w.sender.sendParts(lease, turn, to)).toMatchObject({ kind: 'failed' });
  });

  it('a retryable error gives up once the turn is older than SEND_GIVE_UP_MS', async () => {
    const { lease, turn } = await decided('one');
    turn.startedAt = Date.now() - SEND_GIVE_UP_MS - 1;
    for (const error of [failure(131000, 'retry'), failure(131056, 'pair_rate')]) {
      w.bsp.answer(error);
      expect(await w.sender.sendParts(lease, turn, to)).toEqual({ kind: 'failed', error });
    }
  });
});
