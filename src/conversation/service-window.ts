/** WhatsApp's customer service window: 24 h from the patient's last message (docs/window.md). */
export const WINDOW_MS = 24 * 60 * 60 * 1000;

/**
 * How far ahead of our clock a message's own timestamp may be (clock skew between Meta and us).
 * A stamp further ahead (a wrong clock, a forged payload) would hold the window open for days and
 * send free-form messages WhatsApp then refuses, so it counts as written now.
 */
export const FUTURE_SKEW_S = 60;

/** A patient message's timestamp (s) as the window may trust it at business time `now` (ms). */
export function trustedInboundTs(timestampS: number, now: number): number {
  return Math.min(timestampS, Math.floor(now / 1000) + FUTURE_SKEW_S);
}

export interface ServiceWindow {
  open: boolean;
  /** When it closes (or closed), ms since epoch; undefined when the patient never wrote. */
  closesAt?: number;
}

/**
 * The window from the newest inbound message's own timestamp (Meta's `timestamp`, seconds), not
 * from when we received it: a message Meta redelivers a day late does not reopen anything.
 */
export function serviceWindow(lastInboundTs: number | undefined, now: number): ServiceWindow {
  if (!lastInboundTs) return { open: false };
  const closesAt = lastInboundTs * 1000 + WINDOW_MS;
  return { open: now < closesAt, closesAt };
}
