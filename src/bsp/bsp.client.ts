import { type BspProvider } from '../config/env.schema';

export interface SendTextInput {
  /** The recipient: a wa_id (digits, a leading + tolerated) or a business-scoped user id ('AE.123…'). */
  to: string;
  /** At most 4096 characters (splitMessage); sent verbatim, URL previews off. */
  body: string;
  /**
   * Our part key, sent as `biz_opaque_callback_data` and echoed in every status webhook of this
   * message, so an `unknown` outcome can be resolved by the status that arrives.
   */
  callbackData?: string;
  /** A wamid to quote (`context.message_id`). */
  replyTo?: string;
}

/** A button's dynamic part: a quick-reply payload or the variable suffix of a URL button. */
export interface TemplateButton {
  subType: 'quick_reply' | 'url';
  /** The button's position in the approved template (0-based). */
  index: number;
  parameter: string;
}

/** An approved template and the values of its variables. */
export interface TemplateContent {
  name: string;
  /** Template language code, e.g. 'en' or 'ar' (must match an approved translation). */
  language: string;
  /** Positional body parameters ({{1}}, {{2}}, …), sent as text parameters in order. */
  bodyParameters?: string[];
  /** Positional text parameters of a text header. */
  headerParameters?: string[];
  buttons?: TemplateButton[];
}

export interface SendTemplateInput extends TemplateContent {
  to: string;
  callbackData?: string;
}

export interface MarkReadInput {
  /** The inbound wamid to mark read (Meta marks earlier messages of the chat read too). */
  messageId: string;
  /** Also show the typing indicator (until the next send, or 25 s). Only when a reply will follow. */
  typing: boolean;
}

/** Meta accepted the message; `wamid` is what status webhooks will refer to. Not a delivery receipt. */
export interface SendReceipt {
  wamid: string;
}

/**
 * Port to the WhatsApp send API (Cloud API via Meta or 360dialog, or the sandbox). Bound by
 * BspModule from BSP_PROVIDER; consumers inject `BspClient`.
 *
 * sendText and sendTemplate resolve with the wamid once the BSP accepted the message, and reject
 * with a BspSendError only: its `kind` says what to do (retry, delay this recipient, closed window,
 * give up, configuration alert) and its `outcome` whether the message may nevertheless have been
 * accepted (`unknown`: resolve through the status webhook carrying `callbackData` before resending).
 * Adapters never retry by themselves: retries, backoff and the no-double-send bookkeeping belong to
 * the caller. Failures are already counted (tawasul_bsp_errors_total, tawasul_config_alert) and
 * logged without message text or phone numbers.
 *
 * markRead is best effort: it never rejects; failures are logged at debug level and counted.
 */
export abstract class BspClient {
  abstract readonly provider: BspProvider;

  abstract sendText(input: SendTextInput): Promise<SendReceipt>;

  abstract sendTemplate(input: SendTemplateInput): Promise<SendReceipt>;

  abstract markRead(input: MarkReadInput): Promise<void>;
}
