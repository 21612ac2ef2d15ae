/**
 * Meta's inbound message ids carry the sender: after `wamid.` comes base64 of a small binary
 * record whose first field is the sender's number (`1C 18 <length> <digits>`, then the message's
 * own id). The /sandbox page makes its ids the same way, and that is how a mark-read, which names
 * only the message, is streamed to the page of the number that wrote it.
 */

const PREFIX = 'wamid.';
const WA_ID = /^\d{1,20}$/;

/** The sender's number inside a Meta-shaped wamid; undefined for any other id. */
export function senderOfWamid(id: unknown): string | undefined {
  if (typeof id !== 'string' || !id.startsWith(PREFIX)) return undefined;
  const bytes = Buffer.from(id.slice(PREFIX.length), 'base64');
  if (bytes.length < 4 || bytes[0] !== 0x1c || bytes[1] !== 0x18) return undefined;
  const length = bytes[2];
  if (bytes.length < 3 + length) return undefined;
  const sender = bytes.subarray(3, 3 + length).toString('latin1');
  return WA_ID.test(sender) ? sender : undefined;
}

/** A Meta-shaped wamid for a message from `waId` (the page's own, in JavaScript, makes the same). */
export function wamidFrom(waId: string, messageHex: string): string {
  const record = Buffer.concat([
    Buffer.from([0x1c, 0x18, waId.length]),
    Buffer.from(waId, 'latin1'),
    Buffer.from([0x15, 0x02, 0x00, 0x12, 0x18, messageHex.length]),
    Buffer.from(messageHex, 'latin1'),
    Buffer.from([0x00]),
  ]);
  return `${PREFIX}${record.toString('base64')}`;
}
