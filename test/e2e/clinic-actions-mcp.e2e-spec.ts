import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IDEMPOTENCY_META_KEY } from '../../src/actions/mcp-tools';
import { UNKNOWN_OUTCOME_TEXT } from '../../src/actions/tool-result';
import { AppConfig } from '../../src/config/app-config';
import { validateEnv } from '../../src/config/validate-env';
import { createApp } from '../../src/http/create-app';
import { FakeMcpServer } from '../fakes/fake-mcp.server';
import { type RecordedLlmRequest } from '../fakes/fake-llm.server';
import { BotCluster } from '../utils/bot-cluster';
import {
  bookingScript,
  bookSlotScript,
  expectArgumentsRefused,
  expectStoredResultReused,
  onceAtResults,
  privateNotes,
  refusedArgumentsScript,
  toolResultsOf,
  toolScript,
} from '../utils/clinic-tools';
import { textPayload } from '../utils/meta-payloads';
import { freePort, waitUntil } from '../utils/spawn-app';
import { startTestApp } from '../utils/test-app';
import { testEnv, uniquePrefix } from '../utils/test-env';

/*
 * Clinic actions from an MCP server (docs/actions.md, "MCP source") end to end: a real MCP server
 * (the SDK's server side over Streamable HTTP) on loopback, the fake LLM answering with tool calls,
 * and the app in role `all` in this process. The calls are counted per idempotency key.
 */

const PATIENT = 'Zaynab Qx7-Private';

const toolNames = (r: RecordedLlmRequest): string[] =>
  ((r.body.tools as { function: { name: string } }[] | undefined) ?? []).map((t) => t.function.name);

describe('clinic actions from an MCP server', () => {
  let bot: BotCluster;
  let mcp: FakeMcpServer;

  beforeAll(async () => {
    mcp = await FakeMcpServer.start();
    bot = await BotCluster.start({
      workers: 0,
      chatwoot: true,
      env: { MCP_SERVER_URL: mcp.url, MCP_TIMEOUT_MS: '1500' },
    });
  }, 60_000);

  afterAll(async () => {
    // BotCluster.close disconnects its queue's connection: a second disconnect would leave
    // ioredis' 2 s destroy timer behind, and jest waiting for it.
    await bot?.close();
    await mcp?.close();
  });

  beforeEach(async () => {
    bot.llm.reset();
    bot.graph.reset();
    mcp.reset();
    await bot.waitQuiet();
  });

  const converse = async (from: string, text: string, sends = 1): Promise<void> => {
    expect((await bot.post(textPayload({ from, text }))).status).toBe(200);
    await bot.graph.waitForSends(sends, 20_000);
    await bot.waitQuiet();
  };

  it('books through MCP tools: the read-only lookup without a key, the booking with its key in _meta', async () => {
    const from = '971500008001';
    bot.llm.behaviourFor = bookingScript(PATIENT, (r) => `Booked ${r.result.booking.id} at ${r.result.slot.time}.`);
    await converse(from, 'I would like an appointment on 6 January');

    expect(bot.sentTexts(from)).toEqual(['Booked bk-1 at 09:00.']);
    expect(mcp.bookings).toEqual([{ id: 'bk-1', slotId: 'slot-0900', patientName: PATIENT }]);
    // Tools whose schema does not compile, or whose name no LLM accepts, are never offered.
    expect(bot.llm.requests.map(toolNames)).toEqual(Array(3).fill(['find_free_slots', 'book_appointment']));
    const [find, book] = mcp.calls;
    expect(find).toMatchObject({ name: 'find_free_slots', arguments: { date: '2030-01-06' } });
    expect(find.meta?.[IDEMPOTENCY_META_KEY]).toBeUndefined();
    expect(book).toMatchObject({ name: 'book_appointment', arguments: { slotId: 'slot-0900', patientName: PATIENT } });
    expect(book.idempotencyKey).toMatch(/^[0-9a-f-]{36}\.1\.0$/);
    expect(mcp.calls).toHaveLength(2);
    // The results have the HTTP path's shape, without a status.
    const results = toolResultsOf(bot.llm.requests[2].body);
    expect(results[0]).toEqual({ ok: true, result: { slots: expect.any(Array) } });
    expect(results[1]).toMatchObject({ ok: true, result: { booking: { id: 'bk-1' } } });
    expect(
      await bot.metrics([
        'tawasul_actions_total{action="find_free_slots",outcome="ok"}',
        'tawasul_actions_total{action="book_appointment",outcome="ok"}',
        'tawasul_action_seconds_count{action="book_appointment"}',
      ]),
    ).toEqual({
      'tawasul_actions_total{action="find_free_slots",outcome="ok"}': 1,
      'tawasul_actions_total{action="book_appointment",outcome="ok"}': 1,
      'tawasul_action_seconds_count{action="book_appointment"}': 1,
    });
  }, 30_000);

  it('invalid arguments get an error result the LLM can correct, and no MCP call', async () => {
    const from = '971500008002';
    bot.llm.behaviourFor = refusedArgumentsScript('Which day would suit you?');
    await converse(from, 'book something');
    expect(mcp.calls).toEqual([]);
    expectArgumentsRefused(bot);
    expect(bot.sentTexts(from)).toEqual(['Which day would suit you?']);
  }, 30_000);

  it('a tool answering isError: an error result the LLM explains', async () => {
    const from = '971500008003';
    bot.llm.behaviourFor = bookSlotScript('slot-nope', PATIENT, (r) => `Sorry: ${r.error.error}.`);
    await converse(from, 'book slot-nope');
    expect(bot.sentTexts(from)).toEqual(['Sorry: no such slot.']);
    expect(await bot.metric('tawasul_actions_total', 'action="book_appointment",outcome="error"')).toBe(1);
  }, 30_000);

  it('a booking hanging past MCP_TIMEOUT_MS is not repeated: the chat is handed over', async () => {
    const from = '971500008004';
    mcp.hang('book_appointment');
    bot.llm.behaviourFor = bookSlotScript('slot-1030', PATIENT, () => 'A colleague will confirm your booking.');
    await converse(from, 'book 10:30 for me');

    expect(mcp.callsTo('book_appointment')).toHaveLength(1);
    expect([...mcp.idempotencyKeys().values()]).toEqual([1]);
    expect(toolResultsOf(bot.llm.requests[1].body)).toEqual([{ ok: false, outcome: UNKNOWN_OUTCOME_TEXT }]);
    expect(bot.sentTexts(from)[0]).toContain('A colleague will confirm your booking.');
    expect(await bot.metric('tawasul_escalations_total', 'trigger="action_unknown"')).toBe(1);
    expect(await bot.metric('tawasul_actions_total', 'action="book_appointment",outcome="unknown"')).toBe(1);
    // The agents' private note names the call and the key the MCP server got.
    const key = mcp.calls[0].idempotencyKey!;
    const notes = await privateNotes(bot.chatwoot);
    expect(notes.join('\n')).toContain(`Idempotency-Key ${key}`);
  }, 30_000);

  it('the LLM failing after a tool result: the stored result is reused, the MCP server not called again', async () => {
    const from = '971500008005';
    const script = bookingScript(PATIENT, (r) => `Booked ${r.result.booking.id}, thank you.`);
    bot.llm.behaviourFor = onceAtResults(2, script, () => ({ mode: 'error500' }));
    await converse(from, 'please book the first free slot', 2);
    await expectStoredResultReused(bot, from, 'Booked bk-1, thank you.');
    expect(mcp.callsTo('book_appointment')).toHaveLength(1);
    expect(mcp.callsTo('find_free_slots')).toHaveLength(1);
    expect([...mcp.idempotencyKeys().values()]).toEqual([1]);
  }, 30_000);

  it('an MCP server down at start-up does not stop the app; its tools are offered once listed', async () => {
    const port = await freePort();
    const app = await startTestApp({
      ...bot.env,
      APP_ROLE: 'all',
      REDIS_PREFIX: uniquePrefix(),
      MCP_SERVER_URL: `http://127.0.0.1:${port}/mcp`,
    });
    let late: FakeMcpServer | undefined;
    try {
      late = await FakeMcpServer.start(port);
      const server = late;
      await waitUntil('the MCP tools to be listed in the background', () => server.listings > 0, 10_000);
      const from = '971500008006';
      bot.llm.behaviourFor = toolScript(
        [{ name: 'find_free_slots', arguments: { date: '2030-01-06' } }],
        (results) => `${results[0].result.slots.length} slots free.`,
      );
      expect((await app.postSigned(textPayload({ from, text: 'any slots?' }))).status).toBe(200);
      await bot.graph.waitForSends(1, 20_000);
      expect(bot.sentTexts(from)).toEqual(['2 slots free.']);
      expect(toolNames(bot.llm.requests[0])).toEqual(['find_free_slots', 'book_appointment']);
      expect(server.callsTo('find_free_slots')).toHaveLength(1);
    } finally {
      await app.close();
      await late?.close();
    }
  }, 30_000);

  it('an MCP tool named like a declared action refuses the start, in one line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tawasul-mcp-'));
    const file = join(dir, 'actions.json');
    const parameters = { type: 'object', properties: {}, additionalProperties: false };
    const declared = { name: 'book_appointment', description: 'Books.', parameters, method: 'POST', path: '/b' };
    writeFileSync(file, JSON.stringify({ actions: [{ ...declared, sideEffects: true }] }));
    const config = new AppConfig(
      validateEnv(
        testEnv({
          META_GRAPH_URL: bot.env.META_GRAPH_URL,
          ACTIONS_FILE: file,
          CLINIC_API_BASE_URL: 'http://127.0.0.1:9/api',
          MCP_SERVER_URL: mcp.url,
        }),
      ),
    );
    const app = await createApp(config);
    try {
      await expect(app.listen({ port: 0, host: '127.0.0.1' })).rejects.toThrow(
        `MCP_SERVER_URL: "book_appointment" is both an MCP tool and an action declared in ACTIONS_FILE (${file}); rename one of them`,
      );
    } finally {
      await app.close();
    }
  }, 30_000);
});
