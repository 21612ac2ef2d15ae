import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chatLane, statusLane } from '../../src/queue/lanes';
import { freshWamid, nowSeconds } from '../utils/meta-payloads';
import { inboxItems, startTestApp, type TestApp } from '../utils/test-app';
import { TEST_PHONE_NUMBER_ID } from '../utils/test-env';

/*
 * Conformance against another project's real-world-shaped payloads (pywa, MIT; see the README in
 * the fixtures folder): every case is answered 200, never a 5xx; messages and statuses land in
 * their lanes; other webhook fields are ignored.
 */

type Json = Record<string, any>;

const DIR = join(__dirname, '../fixtures/peer-payloads/pywa');
const FILES = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();

/** Changes of field `messages`, the only ones that carry work. */
const messageChanges = (body: Json): Json[] =>
  (body.entry ?? []).flatMap((e: Json) => (e.changes ?? []) as Json[]).filter((c: Json) => c.field === 'messages');

const fieldsOf = (body: Json): string =>
  [...new Set((body.entry ?? []).flatMap((e: Json) => (e.changes ?? []).map((c: Json) => String(c.field))))].join(',');

/** [case name, what the receiver must do with it, body] */
const CASES: [string, string, Json][] = FILES.flatMap((file) =>
  Object.entries(JSON.parse(readFileSync(join(DIR, file), 'utf8')) as Record<string, Json>).map(
    ([name, body]): [string, string, Json] => [
      `${file.replace(/\.json$/, '')}/${name}`,
      messageChanges(body).length > 0 ? 'every message and status in its lane' : `ignored (field ${fieldsOf(body)})`,
      body,
    ],
  ),
);

/** The number every non-placeholder pywa sender uses; stands in for `<WHATSAPP_USER_PHONE_NUMBER>`. */
const PEER_SENDER = '972987654321';
const PLACEHOLDER = /^<[A-Z_]+>$/;

/**
 * The case as it would reach this deployment now: our phone_number_id, ids no other case or run
 * uses (several pywa cases share `wamid.xyzxyz`), current timestamps, real senders for placeholders.
 */
function forThisDeployment(body: Json): Json {
  const copy = structuredClone(body);
  for (const entry of copy.entry ?? []) {
    for (const change of entry.changes ?? []) {
      const value = change.value;
      if (typeof value !== 'object' || value === null) continue;
      if (value.metadata?.phone_number_id) value.metadata.phone_number_id = TEST_PHONE_NUMBER_ID;
      for (const item of [...(value.messages ?? []), ...(value.statuses ?? [])] as Json[]) {
        item.id = freshWamid();
        item.timestamp = nowSeconds();
        for (const field of ['from', 'recipient_id']) {
          if (PLACEHOLDER.test(item[field] ?? '')) item[field] = PEER_SENDER;
        }
      }
    }
  }
  return copy;
}

/** Everything the receiver stores, by key: inbox lengths, unhandled length, dedup key count. */
async function storedState(t: TestApp): Promise<Record<string, number>> {
  const root = t.config.redisKeyRoot;
  const pattern = `${root.replace(/[{}[\]*?]/g, (c) => `\\${c}`)}*`;
  const state: Record<string, number> = { seen: 0 };
  let cursor = '0';
  do {
    const [next, batch] = await t.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    cursor = next;
    for (const key of batch) {
      if (key.startsWith(`${root}:seen:`)) state.seen++;
      else if (key.startsWith(`${root}:inbox:`) || key === t.keys.unhandled) state[key] = await t.redis.llen(key);
    }
  } while (cursor !== '0');
  return state;
}

describe('pywa peer payloads', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ APP_ROLE: 'receiver' });
  });
  afterAll(() => t.close());

  it('has the copied cases (one or more per file, LICENSE beside them)', () => {
    expect(FILES.length).toBeGreaterThanOrEqual(19);
    expect(readFileSync(join(DIR, 'LICENSE'), 'utf8')).toContain('MIT License');
    for (const file of FILES)
      expect(CASES.some(([name]) => name.startsWith(`${file.replace(/\.json$/, '')}/`))).toBe(true);
    const fields = new Set(CASES.flatMap(([, , body]) => fieldsOf(body).split(',')));
    for (const field of ['calls', 'account_update', 'user_preferences', 'smb_message_echoes', 'messages']) {
      expect(fields).toContain(field);
    }
    expect([...fields].filter((f) => f.includes('template'))).not.toHaveLength(0);
  });

  it.each(CASES)('%s: 200, %s', async (_name, _expectation, original) => {
    const body = forThisDeployment(original);
    const before = await storedState(t);
    const res = await t.postSigned(body);
    expect(res.status).toBe(200);

    const changes = messageChanges(body);
    if (changes.length === 0) {
      // calls, account_update, templates, user_preferences, smb_message_echoes: deliberately ignored.
      expect(await storedState(t)).toEqual(before);
      return;
    }
    let expected = 0;
    for (const { value } of changes) {
      for (const message of (value.messages ?? []) as Json[]) {
        const lane = chatLane(TEST_PHONE_NUMBER_ID, message.from ?? message.from_user_id);
        const item = (await inboxItems(t, lane)).find((i) => i.key === `m:${message.id}`);
        expect(item).toMatchObject({ kind: 'message', lane, raw: message });
        expected++;
      }
      for (const status of (value.statuses ?? []) as Json[]) {
        const lane = statusLane(TEST_PHONE_NUMBER_ID, status.recipient_id ?? status.recipient_user_id);
        const item = (await inboxItems(t, lane)).find((i) => i.key === `s:${status.id}:${status.status}`);
        expect(item).toMatchObject({ kind: 'status', lane, raw: status });
        expected++;
      }
    }
    // Nothing else was enqueued: one dedup key per item, and only value-level errors kept raw.
    const after = await storedState(t);
    expect(after.seen - before.seen).toBe(expected);
    const errors = changes.flatMap((c) => (c.value.errors ?? []) as Json[]);
    const unhandled = (after[t.keys.unhandled] ?? 0) - (before[t.keys.unhandled] ?? 0);
    expect(unhandled).toBe(errors.length);
    if (errors.length > 0) {
      const kept = (await t.redis.lrange(t.keys.unhandled, 0, errors.length - 1)).map((r) =>
        JSON.parse((JSON.parse(r) as { raw: string }).raw),
      );
      expect(kept).toEqual(expect.arrayContaining(errors));
    }
  });
});
