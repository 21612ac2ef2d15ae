import { type ChatState, type Handoff } from './turn.types';

/**
 * A chat's state (`chat:<lane>:state`) and hand-over record (`chat:<lane>:handoff`) as hash fields
 * (docs/architecture.md). Every ConversationStore adapter writes and reads them through these, so
 * that what one adapter stores the other would read the same.
 */

/** The fields of the state given; booleans as '1' / '0', fields left undefined are not written. */
export function chatStateFields(state: Partial<ChatState>): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const [key, value] of Object.entries(state)) {
    if (value === undefined) continue;
    fields[key] = typeof value === 'boolean' ? (value ? '1' : '0') : String(value);
  }
  return fields;
}

/** A stored state; a field missing, empty or of an unknown value is left out, not guessed. */
export function parseChatState(fields: Record<string, string>): ChatState {
  const state: ChatState = {};
  if (fields.lastInboundTs) state.lastInboundTs = Number(fields.lastInboundTs);
  if (fields.language === 'ar' || fields.language === 'en') state.language = fields.language;
  if (fields.holding) state.holding = fields.holding === '1';
  if (fields.windowClosed) state.windowClosed = fields.windowClosed === '1';
  if (fields.name) state.name = fields.name;
  if (fields.reengagedFor) state.reengagedFor = Number(fields.reengagedFor);
  return state;
}

/** The fields of a hand-over record; one without `since` starts now. */
export function handoffFields(handoff: Handoff): Record<string, string> {
  return {
    state: handoff.state,
    since: String(handoff.since ?? Date.now()),
    ...(handoff.conversationId && { conversationId: handoff.conversationId }),
  };
}

/** A stored hand-over record: anything but state `human` (none at all, when expired) is the bot's. */
export function parseHandoff(fields: Record<string, string>): Handoff {
  return fields.state === 'human'
    ? { state: 'human', conversationId: fields.conversationId, since: Number(fields.since) || undefined }
    : { state: 'bot' };
}
