import { randomBytes } from 'node:crypto';
import { AppConfig } from '../../src/config/app-config';
import { validateEnv } from '../../src/config/validate-env';
import { type ConversationStore } from '../../src/conversation/conversation.store';
import { type OutboundRecords, type SentPart, type StatusUpdate } from '../../src/conversation/outbound-records';
import { FUTURE_SKEW_S } from '../../src/conversation/service-window';
import { type HistoryEntry, type Lease, type TurnMeta } from '../../src/conversation/turn.types';
import { Pricing } from '../../src/costs/pricing';
import { type IngestItem } from '../../src/dedup/ingest-item';
import { chatLane, deskLaneOf, statusLane } from '../../src/queue/lanes';
import { type RecordingCostLedger } from './in-memory-outbound-records';
import { laneItem, messageItem } from './ingest-items';
import { TEST_PHONE_NUMBER_ID, testEnv } from './test-env';

/**
 * The contract of ConversationStore and OutboundRecords as cases that run unchanged against every
 * implementation: RedisConversationStore and RedisOutboundRecords on a real Redis
 * (test/e2e/conversation-store-contract.e2e-spec.ts) and the in-memory fakes the middle tier runs
 * the turn logic on (test/middle/conversation-store-contract.spec.ts). A fake that drifts from
 * Redis fails here, not in a middle-tier test that trusted it.
 */
export interface StoresUnderTest {
  store: ConversationStore;
  records: OutboundRecords;
  ledger: RecordingCostLedger;
  config: AppConfig;
  /** What ingest does: items onto a lane's inbox, in order. */
  enqueue(lane: string, ...items: IngestItem[]): Promise<void>;
  /** Lets time pass for leases, not-before times and TTLs: the fake's clock, real time on Redis. */
  elapse(ms: number): Promise<void>;
  /** Now on the store's clock (ms). */
  now(): number;
  /** An outbound record's fields as stored ({} when there is none). */
  record(wamid: string): Promise<Record<string, string>>;
  /** The chat's running estimate, micro-USD. */
  chatCostMicros(chat: string): Promise<number>;
  close(): Promise<void>;
}

/** Short leases, so the Redis half waits about a second for one to lapse; a short history to trim. */
export function contractConfig(): AppConfig {
  return new AppConfig(validateEnv(testEnv({ TURN_LEASE_MS: '1000', HISTORY_MAX_MESSAGES: '3' })));
}

export function contractPricing(config: AppConfig): Pricing {
  return Pricing.fromFile(config.env.PRICING_FILE, config.env.BSP_PROVIDER);
}

const sender = (): string => `9715${randomBytes(4).readUInt32BE() % 100_000_000}`.padEnd(12, '0');

function newTurn(id = randomBytes(4).toString('hex')): TurnMeta {
  return { id, startedAt: Date.now(), attempts: 0, sendFailures: 0, pairRateFailures: 0 };
}

const texts = (items: IngestItem[] | undefined): string[] =>
  (items ?? []).map((i) => (i.raw as { text?: { body?: string } }).text?.body ?? i.kind);
const counter = (lease: Lease): number => Number(lease.fence.split('.')[0]);

export function conversationStoreContract(name: string, open: () => Promise<StoresUnderTest>): void {
  let t: StoresUnderTest;
  let store: ConversationStore;
  let leaseMs: number;

  beforeAll(async () => {
    t = await open();
    store = t.store;
    leaseMs = t.config.env.TURN_LEASE_MS;
  });

  afterAll(async () => {
    await t?.close();
  });

  const newChat = (): string => chatLane(TEST_PHONE_NUMBER_ID, sender());
  const held = async (lane: string): Promise<Lease> => {
    const lease = await store.acquire(lane);
    if (!lease) throw new Error(`${lane} is held`);
    return lease;
  };

  describe(`ConversationStore contract: ${name}`, () => {
    it('one holder at a time; every lease has a fence of its own', async () => {
      const lane = newChat();
      const first = await held(lane);
      expect(await store.acquire(lane)).toBeUndefined();
      expect(await store.acquireDue(lane)).toBeUndefined();
      const ttl = await store.leaseTtl(lane);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(leaseMs);
      await store.release(first);
      expect(await store.leaseTtl(lane)).toBeLessThanOrEqual(0);
      const second = await held(lane);
      expect(second.fence).not.toBe(first.fence);
      expect(counter(second)).toBe(counter(first) + 1);
      // A stale holder's release lets nothing go.
      await store.release(first);
      expect(await store.acquire(lane)).toBeUndefined();
      await store.release(second);
    });

    it('a lease lapses after TURN_LEASE_MS unless renewed; a holder whose lease lapsed writes nothing', async () => {
      const lane = newChat();
      const chat = newChat();
      await t.enqueue(lane, messageItem(lane, 'first'));
      const stale = await held(lane);
      expect(texts((await store.join(stale))?.items)).toEqual(['first']);
      const decided = newTurn('kept');
      expect(await store.saveTurn(stale, decided)).toBe(true);
      await t.elapse(leaseMs * 0.6);
      expect(await store.renew(stale)).toBe(true);
      await t.elapse(leaseMs * 0.6);
      expect(await store.acquire(lane)).toBeUndefined();
      await t.elapse(leaseMs + 100);
      const next = await held(lane);

      expect(await store.renew(stale)).toBe(false);
      expect(stale.lost).toBe(true);
      expect(await store.join(stale)).toBeUndefined();
      expect(await store.saveTurn(stale, newTurn('stale'), true)).toBe(false);
      expect(await store.saveChat(stale, lane, { name: 'stale' })).toBe(false);
      expect(await store.defer(stale, t.now() + 60_000, newTurn('stale'), [])).toBe(false);
      const history: HistoryEntry[] = [{ role: 'user', text: 'stale', at: 1 }];
      expect(await store.finish(stale, lane, { history, state: { name: 'stale' } })).toBe('lost');
      expect(await store.admitTurn(stale, 60_000, 10)).toBe(-1);
      expect(await store.countFailure(stale)).toBe(-1);
      expect(await store.setHandoff(stale, lane, { state: 'human' }, 60)).toBe(false);
      expect(await store.moveChat(stale, lane, chat)).toBe(false);
      expect(await store.markDeskPosting(stale, lane, 'src')).toBe(false);
      expect(await store.shiftDesk(stale, lane, { contactId: '1' })).toBe(false);

      const snapshot = await store.join(next);
      expect(snapshot?.turn).toEqual(decided);
      expect(texts(snapshot?.items)).toEqual(['first']);
      expect(await store.readChat(lane)).toEqual({ state: {}, history: [], handoff: { state: 'bot' } });
      expect(await store.readDesk(lane)).toEqual({});
      expect(await store.countFailure(next)).toBe(1);
      await store.release(next);
    });

    it('messages join the turn until its reply is locked; finish commits and reports more waiting', async () => {
      const lane = newChat();
      await t.enqueue(lane, messageItem(lane, 'a'), messageItem(lane, 'b'));
      const lease = await held(lane);
      expect(await store.join(lease)).toMatchObject({ turn: undefined });
      const turn = newTurn();
      expect(await store.saveTurn(lease, turn)).toBe(true);
      await t.enqueue(lane, messageItem(lane, 'c'));
      const joined = await store.join(lease);
      expect(joined?.turn).toEqual(turn);
      expect(texts(joined?.items)).toEqual(['a', 'b', 'c']);
      expect(await store.saveTurn(lease, turn, true)).toBe(true);
      await t.enqueue(lane, messageItem(lane, 'd'));
      expect(texts((await store.join(lease))?.items)).toEqual(['a', 'b', 'c']);
      expect(await store.finish(lease, lane)).toBe('more');
      expect(await store.leaseTtl(lane)).toBeLessThanOrEqual(0);

      const next = await held(lane);
      const after = await store.join(next);
      expect(after?.turn).toBeUndefined();
      expect(texts(after?.items)).toEqual(['d']);
      expect(await store.finish(next, lane)).toBe('idle');
    });

    it('a turn holds one class of items: Chatwoot events and single items wait for a turn of their own', async () => {
      const lane = newChat();
      const api = laneItem(lane, 'api');
      const reengage = laneItem(lane, 'reengage');
      const agent = laneItem(lane, 'chatwoot');
      await t.enqueue(
        lane,
        messageItem(lane, 'a'),
        agent,
        laneItem(lane, 'chatwoot'),
        api,
        reengage,
        messageItem(lane, 'b'),
      );
      const kinds = async (): Promise<string[]> => {
        const lease = await held(lane);
        const kinds = texts((await store.join(lease))?.items);
        await store.finish(lease, lane);
        return kinds;
      };
      expect(await kinds()).toEqual(['a']);
      expect(await kinds()).toEqual(['chatwoot', 'chatwoot']);
      expect(await kinds()).toEqual(['api']);
      expect(await kinds()).toEqual(['reengage']);
      expect(await kinds()).toEqual(['b']);
      expect(await kinds()).toEqual([]);
    });

    it('defer parks the turn until not-before and lets the lease go; a plain acquire ignores the parking', async () => {
      const lane = newChat();
      await t.enqueue(lane, messageItem(lane, 'a'), messageItem(lane, 'b'));
      const lease = await held(lane);
      const [, kept] = (await store.join(lease))!.items;
      const turn = newTurn();
      const notBefore = t.now() + 300.5;
      expect(await store.defer(lease, notBefore, turn, [JSON.stringify(kept)])).toBe(true);
      expect(await store.leaseTtl(lane)).toBeLessThanOrEqual(0);
      expect(await store.acquireDue(lane)).toBe(Math.ceil(notBefore));

      const early = await held(lane);
      const snapshot = await store.join(early);
      expect(snapshot?.turn).toEqual(turn);
      expect(texts(snapshot?.items)).toEqual(['b']);
      await store.release(early);

      await t.elapse(400);
      const due = await store.acquireDue(lane);
      expect(typeof due).toBe('object');
      expect(await store.finish(due as Lease, lane)).toBe('idle');
      // A turn finished by a holder that ignored the parking ends the parking with it.
      expect(await store.defer(await held(lane), t.now() + 60_000)).toBe(true);
      expect(typeof (await store.acquireDue(lane))).toBe('number');
      expect(await store.finish(await held(lane), lane)).toBe('idle');
      const free = await store.acquireDue(lane);
      expect(typeof free).toBe('object');
      await store.release(free as Lease);
    });

    it('admits at most `max` turns per window; counts failures until the turn finishes', async () => {
      const lane = newChat();
      const lease = await held(lane);
      const before = t.now();
      expect(await store.admitTurn(lease, 60_000, 2)).toBe(0);
      expect(await store.admitTurn(lease, 60_000, 2)).toBe(0);
      const at = await store.admitTurn(lease, 60_000, 2);
      expect(at).toBeGreaterThanOrEqual(before + 60_000);
      expect(at).toBeLessThanOrEqual(t.now() + 60_000);
      expect(await store.countFailure(lease)).toBe(1);
      expect(await store.countFailure(lease)).toBe(2);
      expect(await store.finish(lease, lane)).toBe('idle');
      const next = await held(lane);
      expect(await store.countFailure(next)).toBe(1);
      expect(await store.admitTurn(next, 60_000, 2)).toBe(at);
      await store.release(next);
    });

    it('finish commits history (trimmed to HISTORY_MAX_MESSAGES), chat state, timing and desk steps', async () => {
      const lane = newChat();
      const desk = deskLaneOf(lane);
      const backlog = await store.deskBacklog();
      const entry = (text: string): HistoryEntry => ({ role: 'user', text, at: 1, ids: [text] });
      let lease = await held(lane);
      const steps = [
        JSON.stringify(laneItem(desk, 'desk', { op: 'open' })),
        JSON.stringify(laneItem(desk, 'desk', { op: 'notify' })),
      ];
      const commit = {
        history: [entry('1'), entry('2')],
        state: { language: 'ar' as const, holding: true, lastInboundTs: 1700000000, name: 'Amal' },
        desk: { lane: desk, items: steps },
        timing: { at: 1, ms: 2, outcome: 'replied' },
      };
      expect(await store.finish(lease, lane, commit)).toBe('idle');
      lease = await held(lane);
      const later = { history: [entry('3'), entry('4')], state: { holding: false, windowClosed: true } };
      expect(await store.finish(lease, lane, later)).toBe('idle');
      expect(await store.readChat(lane)).toEqual({
        state: { language: 'ar', holding: false, windowClosed: true, lastInboundTs: 1700000000, name: 'Amal' },
        history: [entry('2'), entry('3'), entry('4')],
        handoff: { state: 'bot' },
      });
      expect(await store.deskBacklog()).toBe(backlog + 2);

      const deskLease = await held(desk);
      const joined = await store.join(deskLease);
      expect(joined?.items.map((i) => (i.raw as { op: string }).op)).toEqual(['open', 'notify']);
      expect(await store.markDeskPosting(deskLease, lane, 'src-1')).toBe(true);
      expect(await store.readDesk(lane)).toEqual({ posting: 'src-1' });
      const own = `own-${randomBytes(4).toString('hex')}`;
      expect(await store.shiftDesk(deskLease, lane, { contactId: '7', conversationId: '9' }, own)).toBe(true);
      expect(await store.readDesk(lane)).toEqual({ contactId: '7', conversationId: '9' });
      expect(await store.deskBacklog()).toBe(backlog + 1);
      expect(await store.ownDeskMessages([own, `${own}x`])).toEqual(new Set([own]));
      // An empty string clears a field.
      expect(await store.shiftDesk(deskLease, lane, { conversationId: '' })).toBe(true);
      expect(await store.readDesk(lane)).toEqual({ contactId: '7' });
      expect(await store.deskBacklog()).toBe(backlog);
      // Nothing left to shift: nothing changes.
      expect(await store.shiftDesk(deskLease, lane, { contactId: '8' })).toBe(true);
      expect(await store.readDesk(lane)).toEqual({ contactId: '7' });
      expect(await store.deskBacklog()).toBe(backlog);
      await store.release(deskLease);
    });

    it('saveChat sets chat state fields under the lease; with no fields it has nothing to write', async () => {
      const lane = newChat();
      const lease = await held(lane);
      expect(await store.saveChat(lease, lane, { holding: true, language: 'en' })).toBe(true);
      expect((await store.readChat(lane)).state).toEqual({ holding: true, language: 'en' });
      await store.release(lease);
      expect(await store.saveChat(lease, lane, {})).toBe(true);
      expect(await store.saveChat(lease, lane, { holding: false })).toBe(false);
      expect((await store.readChat(lane)).state).toEqual({ holding: true, language: 'en' });
    });

    it('a hand-over lasts its TTL; handing back to the bot or resuming ends it at once', async () => {
      const lane = newChat();
      let lease = await held(lane);
      expect(await store.setHandoff(lease, lane, { state: 'human', conversationId: '42', since: 1000 }, 1)).toBe(true);
      expect((await store.readChat(lane)).handoff).toEqual({ state: 'human', conversationId: '42', since: 1000 });
      await t.elapse(1100);
      expect((await store.readChat(lane)).handoff).toEqual({ state: 'bot' });

      lease = await held(lane);
      expect(await store.setHandoff(lease, lane, { state: 'human', since: 2000 }, 60)).toBe(true);
      expect(await store.setHandoff(lease, lane, { state: 'bot' }, 60)).toBe(true);
      expect((await store.readChat(lane)).handoff).toEqual({ state: 'bot' });
      expect(await store.setHandoff(lease, lane, { state: 'human', since: 3000 }, 60)).toBe(true);
      expect(await store.resume(lane)).toBe(true);
      expect((await store.readChat(lane)).handoff).toEqual({ state: 'bot' });
      expect(await store.resume(lane)).toBe(false);
      await store.release(lease);
    });

    it('moveChat moves history and state to the new number, never over a chat of its own', async () => {
      const from = newChat();
      const to = newChat();
      const taken = newChat();
      const entry: HistoryEntry = { role: 'user', text: 'hi', at: 1 };
      for (const chat of [from, taken]) {
        const lease = await held(chat);
        await store.finish(lease, chat, { history: [entry], state: { name: chat } });
      }
      const lease = await held(from);
      expect(await store.moveChat(lease, from, taken)).toBe(false);
      expect(await store.moveChat(lease, from, to)).toBe(true);
      expect(await store.readChat(to)).toEqual({ state: { name: from }, history: [entry], handoff: { state: 'bot' } });
      expect(await store.readChat(from)).toEqual({ state: {}, history: [], handoff: { state: 'bot' } });
      expect((await store.readChat(taken)).state).toEqual({ name: taken });
      await store.release(lease);
    });

    it("waitingInboundTs: the newest timestamp of the patient's messages waiting in the inbox or the turn", async () => {
      const lane = newChat();
      expect(await store.waitingInboundTs(lane)).toBe(0);
      await t.enqueue(
        lane,
        messageItem(lane, 'a', { timestamp: 1700000100 }),
        laneItem(lane, 'chatwoot', { timestamp: '1800000000' }),
      );
      const lease = await held(lane);
      await store.join(lease);
      await t.enqueue(lane, messageItem(lane, 'b', { timestamp: 1700000050 }));
      expect(await store.waitingInboundTs(lane)).toBe(1700000100);
      await t.enqueue(lane, messageItem(lane, 'c', { timestamp: 1700000200 }));
      expect(await store.waitingInboundTs(lane)).toBe(1700000200);
      // A stamp counts no later than the message's arrival (plus the skew the window allows).
      const arrived = messageItem(lane, 'from the future', { timestamp: Math.floor(Date.now() / 1000) + 86_400 });
      await t.enqueue(lane, arrived);
      expect(await store.waitingInboundTs(lane)).toBe(Math.floor(arrived.receivedAt / 1000) + FUTURE_SKEW_S);
      await store.release(lease);
    });

    it('turnItems: the items of the turn in flight, not those still in the inbox', async () => {
      const lane = newChat();
      expect(await store.turnItems(lane)).toEqual([]);
      const first = messageItem(lane, 'first', { timestamp: 1700000100 });
      await t.enqueue(lane, first);
      const lease = await held(lane);
      await store.join(lease);
      await t.enqueue(lane, messageItem(lane, 'still in the inbox', { timestamp: 1700000200 }));
      expect(await store.turnItems(lane)).toEqual([first]);
      await store.release(lease);
    });

    it("erase drops the chat's work, state, hand-over, desk steps and leases; the fence counter goes on", async () => {
      const lane = newChat();
      const desk = deskLaneOf(lane);
      const backlog = await store.deskBacklog();
      let lease = await held(lane);
      await store.finish(lease, lane, {
        history: [{ role: 'user', text: 'hi', at: 1 }],
        state: { name: 'Amal' },
        desk: { lane: desk, items: [JSON.stringify(laneItem(desk, 'desk', { op: 'open' }))] },
      });
      await t.records.sent(sentPart(lane));
      expect(await t.chatCostMicros(lane)).toBeGreaterThan(0);
      lease = await held(lane);
      expect(await store.setHandoff(lease, lane, { state: 'human' }, 60)).toBe(true);
      await t.enqueue(lane, messageItem(lane, 'waiting'));
      expect(await store.join(lease)).toBeDefined();
      expect(await store.saveTurn(lease, newTurn(), true)).toBe(true);
      expect(await store.countFailure(lease)).toBe(1);

      expect(await store.erase(lane)).toBe(true);
      expect(await store.readChat(lane)).toEqual({ state: {}, history: [], handoff: { state: 'bot' } });
      expect(await store.deskBacklog()).toBe(backlog);
      expect(await t.chatCostMicros(lane)).toBe(0);
      expect(await store.saveTurn(lease, newTurn())).toBe(false);
      const next = await held(lane);
      expect(counter(next)).toBeGreaterThan(counter(lease));
      // The failures of the erased turn do not count against the next one.
      expect(await store.countFailure(next)).toBe(1);
      expect(await store.join(next)).toEqual({ turn: undefined, items: [] });
      await store.release(next);
      const deskLease = await held(desk);
      expect(await store.join(deskLease)).toEqual({ turn: undefined, items: [] });
      await store.release(deskLease);
      expect(await store.erase(lane)).toBe(false);
    });
  });

  describe(`OutboundRecords contract: ${name}`, () => {
    const statusOf = (chat: string): string => statusLane(TEST_PHONE_NUMBER_ID, chat.split('.')[2]);

    it('sent writes the ack and the record; a retried send adds to the estimates once', async () => {
      const lane = newChat();
      const part = sentPart(lane);
      const usd = await t.records.sent(part);
      expect(usd).toBeGreaterThan(0);
      expect(await t.records.sent(part)).toBe(usd);
      expect(await t.records.ackOf(part.partKey)).toBe(part.wamid);
      expect(await t.record(part.wamid)).toMatchObject({
        lane,
        part: part.partKey,
        mode: 'template',
        category: 'marketing',
      });
      expect(await t.chatCostMicros(lane)).toBe(Math.round(usd * 1e6));
      expect(t.ledger.entries.filter((e) => e.wamid === part.wamid)).toEqual([
        expect.objectContaining({ side: 'estimated', category: 'marketing', usd }),
      ]);
    });

    it("a status moves the record forward only, under the status lane's lease, and bills once", async () => {
      const lane = newChat();
      const part: SentPart = { ...sentPart(lane), origin: 'api' };
      await t.records.sent(part);
      const lease = await held(statusOf(lane));
      const apply = (status: string, extra: Partial<StatusUpdate> = {}) =>
        t.records.applyStatus(lease, { wamid: part.wamid, status, timestamp: '1700000000', ...extra });
      expect(await apply('delivered')).toEqual({
        lane,
        mode: 'template',
        category: 'marketing',
        origin: 'api',
        turnId: part.turnId,
        sentAt: expect.any(Number),
      });
      expect(await t.record(part.wamid)).toMatchObject({ status: 'delivered' });
      await apply('sent');
      expect((await t.record(part.wamid)).status).toBe('delivered');
      await apply('read', { pricing: { category: 'marketing', type: 'regular' }, recipient: part.to });
      await apply('read', { pricing: { category: 'marketing', type: 'regular' }, recipient: part.to });
      expect(t.ledger.entries.filter((e) => e.wamid === part.wamid && e.side === 'billed')).toHaveLength(1);
      await apply('failed', { errorCode: '131047' });
      expect(await t.record(part.wamid)).toMatchObject({ status: 'failed', errorCode: '131047' });
      await apply('read', { errorCode: '1' });
      expect(await t.record(part.wamid)).toMatchObject({ status: 'failed', errorCode: '131047' });
      await store.release(lease);
    });

    it('a status under a lease no longer held changes nothing', async () => {
      const lane = newChat();
      const part = sentPart(lane);
      await t.records.sent(part);
      const lease = await held(statusOf(lane));
      await store.release(lease);
      expect(await t.records.applyStatus(lease, { wamid: part.wamid, status: 'read' })).toBe('lost');
      expect((await t.record(part.wamid)).status).toBeUndefined();
    });

    it('a status for a message we do not know is refused, unless it carries our part key', async () => {
      const lane = newChat();
      const lease = await held(statusOf(lane));
      const wamid = `wamid.U${randomBytes(6).toString('hex')}`;
      expect(await t.records.applyStatus(lease, { wamid, status: 'delivered' })).toBeUndefined();
      expect(await t.record(wamid)).toEqual({});
      expect(await t.records.applyStatus(lease, { wamid, status: 'delivered', partKey: 't.x.0' })).toEqual({
        lane: '',
        mode: '',
        category: '',
        origin: '',
        turnId: '',
        sentAt: undefined,
      });
      expect(await t.record(wamid)).toMatchObject({ status: 'delivered', part: 't.x.0' });
      await store.release(lease);
    });

    it("the first ack of a part wins; ackOf also finds a status waiting on the recipient's status lane", async () => {
      const lane = newChat();
      const status = statusOf(lane);
      const key = (): string => `t.${randomBytes(4).toString('hex')}.0`;
      const first = key();
      await t.records.ack(first, 'wamid.first');
      await t.records.ack(first, 'wamid.second');
      expect(await t.records.ackOf(first)).toBe('wamid.first');

      const waiting = key();
      const inTurn = key();
      const statusItem = (id: string, partKey: string): IngestItem =>
        laneItem(status, 'status', { id, status: 'sent', biz_opaque_callback_data: partKey });
      await t.enqueue(status, statusItem('wamid.inturn', inTurn));
      const lease = await held(status);
      await store.join(lease);
      await t.enqueue(status, statusItem('wamid.waiting', waiting));
      // Only a chat's own part is looked for on its status lane.
      expect(await t.records.ackOf(waiting)).toBeNull();
      expect(await t.records.ackOf(waiting, status)).toBeNull();
      expect(await t.records.ackOf(waiting, lane)).toBe('wamid.waiting');
      expect(await t.records.ackOf(inTurn, lane)).toBe('wamid.inturn');
      // Found once, acked for good.
      expect(await t.records.ackOf(waiting)).toBe('wamid.waiting');
      expect(await t.records.ackOf(key(), lane)).toBeNull();
      await store.release(lease);
    });
  });
}

/** A template part: priced above zero in every market, so its estimate is seen being counted. */
function sentPart(lane: string): SentPart {
  const suffix = randomBytes(4).toString('hex');
  return {
    wamid: `wamid.S${suffix}`,
    lane,
    turnId: suffix,
    partKey: `t.${suffix}.0`,
    to: lane.split('.')[2],
    mode: 'template',
    category: 'marketing',
    inWindow: false,
  };
}
