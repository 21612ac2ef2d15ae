/**
 * Lane ids: the unit of ordering (docs/architecture.md, Glossary). Every id and every parse of one
 * lives here.
 *
 * - chat lanes `c.<phone_number_id>.<sender>`: a patient's conversation with one business number.
 *   The chat lane id is also the chat's name: its state, history, hand-over and desk record are
 *   keyed by it, so wherever the code says "chat" it means this string (type ChatLane);
 * - status lanes `s.<phone_number_id>.<recipient>`, separate so that statuses never wait behind an
 *   LLM call;
 * - desk lanes `d.<phone_number_id>.<sender>`: what a chat owes Chatwoot and the escalation
 *   webhook, so a Chatwoot outage never holds the patient's chat.
 *
 * Lane ids double as BullMQ job ids, which must not contain `:`. A phone_number_id never contains
 * a dot; a sender (a business-scoped id) may.
 */

export type Lane = string;
/** A chat lane id, which names the chat itself. */
export type ChatLane = Lane;

export const chatLane = (phoneNumberId: string, sender: string): ChatLane => `c.${phoneNumberId}.${sender}`;
export const statusLane = (phoneNumberId: string, recipient: string): Lane => `s.${phoneNumberId}.${recipient}`;
export const deskLaneOf = (chat: ChatLane): Lane => `d.${chat.slice(2)}`;
export const chatLaneOfDesk = (desk: Lane): ChatLane => `c.${desk.slice(2)}`;

export type LaneKind = 'chat' | 'status' | 'desk';
export function laneKind(lane: Lane): LaneKind {
  if (lane.startsWith('s.')) return 'status';
  if (lane.startsWith('d.')) return 'desk';
  return 'chat';
}

/** The parts of a chat, status or desk lane id. */
export function laneParts(lane: Lane): { phoneNumberId: string; sender: string } {
  const [, phoneNumberId = '', ...rest] = lane.split('.');
  return { phoneNumberId, sender: rest.join('.') };
}
