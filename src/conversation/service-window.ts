/** WhatsApp's customer service window: 24 h from the patient's last message (docs/window.md). */
export const WINDOW_MS = 24 * 60 * 60 * 1000;

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
