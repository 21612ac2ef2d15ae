import { randomBytes } from 'node:crypto';
import { type IngestItem } from '../../src/dedup/ingest-item';
import { laneParts } from '../../src/queue/lanes';

/**
 * Items as the receiver puts them into a lane's inbox, for tests that drive a store or a turn
 * directly instead of posting webhooks (the middle tier, the store contract).
 */

/** A patient's text message on a chat lane, as Meta sends it. */
export function messageItem(lane: string, text: string, opts: { timestamp?: number; name?: string } = {}): IngestItem {
  const id = `wamid.I${randomBytes(6).toString('hex')}`;
  const from = laneParts(lane).sender;
  return {
    key: `m:${id}`,
    lane,
    kind: 'message',
    receivedAt: Date.now(),
    phoneNumberId: laneParts(lane).phoneNumberId,
    raw: {
      from,
      id,
      timestamp: String(opts.timestamp ?? Math.floor(Date.now() / 1000)),
      type: 'text',
      text: { body: text },
    },
    ...(opts.name && { contact: { name: opts.name, waId: from } }),
  };
}

/** An item of any kind with the given raw payload. */
export function laneItem(lane: string, kind: IngestItem['kind'], raw: unknown = {}): IngestItem {
  return {
    key: `${kind}:${randomBytes(6).toString('hex')}`,
    lane,
    kind,
    receivedAt: Date.now(),
    phoneNumberId: laneParts(lane).phoneNumberId,
    raw,
  };
}
