import http from 'node:http';
import https from 'node:https';
import { Inject, Injectable, type OnApplicationShutdown, Optional } from '@nestjs/common';
import axios, { type AxiosInstance, type AxiosResponse, isAxiosError } from 'axios';
import { type Logger } from 'pino';
import { AppConfig } from '../config/app-config';
import { AppLogger } from '../logging/app-logger';
import { MetricsService } from '../metrics/metrics.service';
import {
  type DeskContact,
  type DeskConversation,
  DeskError,
  type DeskErrorKind,
  type DeskPost,
  EscalationDesk,
} from './escalation-desk';

export const DEFAULT_CHATWOOT_TIMEOUT_MS = 10_000;

/** A wa_id that makes an E.164 number with a '+' in front: what Chatwoot accepts as a phone. */
const E164_DIGITS = /^[1-9]\d{1,14}$/;
/** Optional provider of ChatwootDeskOptions; without it the defaults apply. */
export const CHATWOOT_DESK_OPTIONS = 'CHATWOOT_DESK_OPTIONS';

export interface ChatwootDeskOptions {
  /** Whole-request limit (connect, send, answer). */
  timeoutMs?: number;
}

export type ChatwootOperation =
  | 'contact_search'
  | 'contact_create'
  | 'contact_inbox'
  | 'contact_conversations'
  | 'conversation_create'
  | 'message_create'
  | 'message_list'
  | 'toggle_status';

type Json = Record<string, unknown>;
interface FoundContact {
  id: string;
  /** The contact already has the contact inbox (our inbox, source_id = waId): no need to ask for it. */
  linked: boolean;
}

/** Contacts whose name, email or phone merely contain the digits also match a search: look a little further. */
const MAX_SEARCH_PAGES = 5;
const LIVE_STATUSES = new Set(['open', 'pending']);
/** Routes every Chatwoot has and that name no record of ours: a 404 there is a wrong base URL, account or inbox. */
const CONFIG_404 = new Set<ChatwootOperation>(['contact_search', 'contact_create']);
const AGENT_OPTIONS: http.AgentOptions = { keepAlive: true, timeout: 15_000, maxSockets: 64, maxFreeSockets: 8 };

/**
 * EscalationDesk over Chatwoot's Application API (docs/handover.md §5). Every call is one or more
 * plain requests with no retries of its own; statuses are mapped to DeskError kinds here.
 * Idempotence comes from looking before creating: contacts by identifier `wa:<waId>` (or phone),
 * contact inboxes are find-or-create in Chatwoot, conversations by the contact's open/pending list.
 */
@Injectable()
export class ChatwootEscalationDesk extends EscalationDesk implements OnApplicationShutdown {
  private readonly logger: Logger;
  private readonly client: AxiosInstance;
  private readonly httpAgent = new http.Agent(AGENT_OPTIONS);
  private readonly httpsAgent = new https.Agent(AGENT_OPTIONS);
  private readonly inboxId: number;

  constructor(
    config: AppConfig,
    private readonly metrics: MetricsService,
    appLogger: AppLogger,
    @Optional() @Inject(CHATWOOT_DESK_OPTIONS) options: ChatwootDeskOptions = {},
  ) {
    super();
    const { CHATWOOT_BASE_URL, CHATWOOT_API_TOKEN, CHATWOOT_ACCOUNT_ID, CHATWOOT_INBOX_ID } = config.env;
    if (!CHATWOOT_BASE_URL || !CHATWOOT_API_TOKEN || !CHATWOOT_ACCOUNT_ID || !CHATWOOT_INBOX_ID) {
      throw new Error('ChatwootEscalationDesk needs CHATWOOT_BASE_URL, _API_TOKEN, _ACCOUNT_ID and _INBOX_ID');
    }
    this.logger = appLogger.child('chatwoot');
    this.inboxId = Number(CHATWOOT_INBOX_ID);
    this.client = axios.create({
      baseURL: `${CHATWOOT_BASE_URL.replace(/\/+$/, '')}/api/v1/accounts/${CHATWOOT_ACCOUNT_ID}`,
      timeout: options.timeoutMs ?? DEFAULT_CHATWOOT_TIMEOUT_MS,
      headers: { api_access_token: CHATWOOT_API_TOKEN, accept: 'application/json' },
      adapter: 'http',
      httpAgent: this.httpAgent,
      httpsAgent: this.httpsAgent,
      // A redirect means a wrong base URL (http → https, a login page): report it, never replay a POST.
      maxRedirects: 0,
      proxy: false,
      maxContentLength: 4 * 1024 * 1024,
      validateStatus: () => true,
      transitional: { clarifyTimeoutError: true, silentJSONParsing: true, forcedJSONParsing: true },
    });
  }

  async ensureConversation(contact: DeskContact, reason: string): Promise<DeskConversation> {
    const waId = contact.waId;
    if (!/^\d{1,20}$/.test(waId)) throw new DeskError('rejected', 'chatwoot: a wa_id is digits only');
    const found = (await this.findContact(waId)) ?? (await this.createContact(contact));
    if (!found.linked) await this.linkContactInbox(found.id, waId);
    const existing = await this.findLiveConversation(found.id);
    const conversationId = existing ?? (await this.createConversation(found.id, contact, reason));
    this.logger.debug(
      { contactId: found.id, conversationId, reused: existing !== undefined },
      'chatwoot conversation ready',
    );
    return { contactId: found.id, conversationId };
  }

  async postMessage(conversationId: string, post: DeskPost): Promise<string> {
    const body = {
      content: post.content,
      message_type: post.direction,
      private: post.private,
      // Not in Chatwoot's OpenAPI description, but its MessageBuilder stores it (findMessage, echo filter).
      source_id: post.sourceId,
    };
    return this.post('message_create', `${conversationPath(conversationId)}/messages`, body, ownId);
  }

  async findMessage(conversationId: string, sourceId: string): Promise<string | undefined> {
    const messages = await this.get('message_list', `${conversationPath(conversationId)}/messages`, listOf);
    const match = messages.find((m) => m.source_id === sourceId);
    return match ? idOf(match) : undefined;
  }

  async openConversation(conversationId: string): Promise<void> {
    const url = `${conversationPath(conversationId)}/toggle_status`;
    const status = await this.post('toggle_status', url, { status: 'open' }, currentStatus);
    this.logger.debug({ conversationId, status }, 'chatwoot conversation opened');
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  onApplicationShutdown(): void {
    this.close();
  }

  /** Search matches substrings of name, email, phone and identifier: only an exact identifier or phone counts. */
  private async findContact(waId: string): Promise<FoundContact | undefined> {
    let byPhone: FoundContact | undefined;
    let seen = 0;
    for (let page = 1; page <= MAX_SEARCH_PAGES; page++) {
      const query = new URLSearchParams({ q: waId });
      if (page > 1) query.set('page', String(page));
      const { contacts, count } = await this.get('contact_search', `/contacts/search?${query.toString()}`, searchPage);
      for (const contact of contacts) {
        if (contact.identifier === `wa:${waId}`) return this.foundContact(contact, waId);
        if (!byPhone && contact.phone_number === `+${waId}`) byPhone = this.foundContact(contact, waId);
      }
      seen += contacts.length;
      if (contacts.length === 0 || seen >= count) break;
    }
    return byPhone;
  }

  private foundContact(contact: Json, waId: string): FoundContact | undefined {
    const id = idOf(contact);
    if (!id) return undefined;
    const inboxes = Array.isArray(contact.contact_inboxes) ? contact.contact_inboxes : [];
    const linked = inboxes.some((ci) => {
      const record = asRecord(ci);
      return record?.source_id === waId && Number(asRecord(record.inbox)?.id) === this.inboxId;
    });
    return { id, linked };
  }

  private async createContact(contact: DeskContact): Promise<FoundContact> {
    const { waId } = contact;
    const body = {
      inbox_id: this.inboxId,
      ...(contact.name ? { name: contact.name } : {}),
      // Chatwoot refuses (422) a phone number that is not E.164; a sender known only by its
      // business-scoped id, or an odd one, is still a contact, found again by its identifier.
      ...(E164_DIGITS.test(waId) ? { phone_number: `+${waId}` } : {}),
      identifier: `wa:${waId}`,
      custom_attributes: { wa_id: waId },
    };
    try {
      const id = await this.post('contact_create', '/contacts', body, createdContactId);
      this.logger.debug({ contactId: id }, 'chatwoot contact created');
      // The contact inbox Chatwoot made here has a random source_id; ours (the wa_id) comes next.
      return { id, linked: false };
    } catch (err) {
      // identifier and phone are unique per account: someone created the contact since our search.
      if (!(err instanceof DeskError) || err.status !== 422) throw err;
      const existing = await this.findContact(waId);
      if (existing) return existing;
      throw err;
    }
  }

  /** Find-or-create in Chatwoot (contact, inbox, source_id): repeating it creates nothing. */
  private async linkContactInbox(contactId: string, waId: string): Promise<void> {
    const body = { inbox_id: this.inboxId, source_id: waId };
    await this.post('contact_inbox', `/contacts/${contactId}/contact_inboxes`, body, asRecord);
  }

  /** The newest open or pending conversation of the contact in our inbox: what makes a retry safe. */
  private async findLiveConversation(contactId: string): Promise<string | undefined> {
    const all = await this.get('contact_conversations', `/contacts/${contactId}/conversations`, listOf);
    const live = all
      .filter((c) => Number(c.inbox_id) === this.inboxId && LIVE_STATUSES.has(String(c.status)))
      .sort((a, b) => activityOf(b) - activityOf(a) || Number(b.id) - Number(a.id));
    return live.length > 0 ? idOf(live[0]) : undefined;
  }

  private async createConversation(contactId: string, contact: DeskContact, reason: string): Promise<string> {
    // Chatwoot's OpenAPI declares inbox_id and contact_id of this operation as strings.
    const body = {
      source_id: contact.waId,
      inbox_id: String(this.inboxId),
      contact_id: contactId,
      status: 'open',
      additional_attributes: { wa_phone_number_id: contact.phoneNumberId },
      custom_attributes: { handover_reason: reason },
    };
    const id = await this.post('conversation_create', '/conversations', body, ownId);
    this.logger.debug({ contactId, conversationId: id }, 'chatwoot conversation created');
    return id;
  }

  private get<T>(operation: ChatwootOperation, url: string, read: (data: unknown) => T | undefined): Promise<T> {
    return this.call(operation, 'GET', url, undefined, read);
  }

  private post<T>(
    operation: ChatwootOperation,
    url: string,
    body: object,
    read: (data: unknown) => T | undefined,
  ): Promise<T> {
    return this.call(operation, 'POST', url, body, read);
  }

  /** One request: counted, mapped to a DeskError unless 2xx, and read by `read` (undefined = malformed). */
  private async call<T>(
    operation: ChatwootOperation,
    method: 'GET' | 'POST',
    url: string,
    body: unknown,
    read: (data: unknown) => T | undefined,
  ): Promise<T> {
    let response: AxiosResponse<unknown>;
    try {
      response = await this.client.request({
        method,
        url,
        data: body === undefined ? undefined : JSON.stringify(body),
        headers: body === undefined ? undefined : { 'content-type': 'application/json' },
      });
    } catch (err) {
      throw this.failed(operation, 'unavailable', transportCode(err));
    }
    const kind = response.status === 404 && CONFIG_404.has(operation) ? 'config' : kindOf(response.status);
    if (kind) throw this.failed(operation, kind, `HTTP ${response.status}`, response.status, response.data);
    const value = read(response.data);
    if (value === undefined) throw this.failed(operation, 'unavailable', 'malformed answer', response.status);
    this.metrics.chatwootRequests.inc({ operation, outcome: 'ok' });
    return value;
  }

  /** Counts and logs a failure. The message names the operation and status only: no content, phone or token. */
  private failed(
    operation: ChatwootOperation,
    kind: DeskErrorKind,
    why: string,
    status?: number,
    data?: unknown,
  ): DeskError {
    this.metrics.chatwootRequests.inc({ operation, outcome: kind });
    const fields = { operation, kind, status, why, attributes: attributesOf(data) };
    // A wrong token or a rejected request needs a human; outages are the desk lane's to retry.
    if (kind === 'config' || kind === 'rejected') this.logger.warn(fields, 'chatwoot request failed');
    else this.logger.debug(fields, 'chatwoot request failed');
    return new DeskError(kind, `chatwoot ${operation}: ${why}`, status);
  }
}

/** Conversation URLs take the display id; anything else cannot exist there. */
function conversationPath(conversationId: string): string {
  if (!/^\d{1,18}$/.test(conversationId)) {
    throw new DeskError('not_found', 'chatwoot: a conversation id is a numeric display id');
  }
  return `/conversations/${conversationId}`;
}

function kindOf(status: number): DeskErrorKind | undefined {
  if (status >= 200 && status < 300) return undefined;
  if (status === 401 || status === 403) return 'config';
  if (status === 404) return 'not_found';
  if (status === 429 || status >= 500) return 'unavailable';
  if (status >= 400) return 'rejected';
  // 1xx/3xx: not Chatwoot answering (a redirecting proxy, a wrong base URL).
  return 'config';
}

function transportCode(err: unknown): string {
  const code = isAxiosError(err) ? err.code : undefined;
  return code && /^[A-Z_]+$/.test(code) ? code : 'network error';
}

function asRecord(value: unknown): Json | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : undefined;
}

/** The `id` of an answer that is the created record itself (conversation, message). */
function ownId(data: unknown): string | undefined {
  return idOf(asRecord(data));
}

/** Contact create answers `{ payload: { contact: { id, … }, contact_inbox } }`. */
function createdContactId(data: unknown): string | undefined {
  return idOf(asRecord(asRecord(asRecord(data)?.payload)?.contact));
}

function currentStatus(data: unknown): string | undefined {
  const payload = asRecord(asRecord(data)?.payload);
  return payload ? String(payload.current_status) : undefined;
}

function idOf(record: Json | undefined): string | undefined {
  const id = record?.id;
  if (typeof id === 'number' && Number.isSafeInteger(id) && id > 0) return String(id);
  return typeof id === 'string' && /^\d+$/.test(id) ? id : undefined;
}

/** Real Chatwoot wraps lists in `{ payload: […] }`; its OpenAPI description shows bare arrays. */
function listOf(data: unknown): Json[] | undefined {
  const list = Array.isArray(data) ? data : asRecord(data)?.payload;
  if (!Array.isArray(list)) return undefined;
  return list.map(asRecord).filter((item): item is Json => item !== undefined);
}

function searchPage(data: unknown): { contacts: Json[]; count: number } | undefined {
  const contacts = listOf(data);
  if (!contacts) return undefined;
  const count = Number(asRecord(asRecord(data)?.meta)?.count);
  return { contacts, count: Number.isFinite(count) ? count : contacts.length };
}

function activityOf(conversation: Json): number {
  const at = Number(conversation.last_activity_at ?? conversation.created_at);
  return Number.isFinite(at) ? at : 0;
}

/** The field names of a Rails validation error (`{ message, attributes }`): safe to log, unlike its values. */
function attributesOf(data: unknown): string[] | undefined {
  const attributes = asRecord(data)?.attributes;
  if (!Array.isArray(attributes)) return undefined;
  return attributes.filter((a): a is string => typeof a === 'string' && /^[a-z_]{1,40}$/.test(a));
}
