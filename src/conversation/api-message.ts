import { type ReplyTemplate } from './turn.types';

/**
 * A business-initiated message accepted by POST /v1/messages, as it travels on the chat's lane
 * (the `raw` of an `api` item). The receiver chose the mode from the window it saw; the worker
 * checks again when the chat's turn comes, since the window may have closed meanwhile.
 */
export interface ApiMessage {
  /** Our id, returned in the 202; also the turn id, so its part keys are stable across retries. */
  id: string;
  to: string;
  mode: 'free_form' | 'template';
  text?: string;
  template?: Omit<ReplyTemplate, 'inWindow' | 'purpose'>;
}
