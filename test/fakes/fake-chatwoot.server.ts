import { createHmac, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressInfo, type Socket } from 'node:net';
import { type ChatwootOperation } from '../../src/escalation/chatwoot-escalation.desk';

export type ConversationStatus = 'open' | 'pending' | 'resolved' | 'snoozed';
export type MessageType = 'incoming' | 'outgoing' | 'activity' | 'template';

export interface FakeContact {
  id: number;
  name: string;
  email: string | null;
  phoneNumber: string | null;
  identifier: string | null;
  customAttributes: Record<string, unknown>;
  createdAt: number;
}

export interface FakeContactInbox {
  contactId: number;
  inboxId: number;
  sourceId: string;
}

export interface FakeConversation {
  /** The display id: what URLs and responses call `id`. Counts from 1 per account. */
  id: number;
  accountId: number;
  inboxId: number;
  contactId: number;
  /** The source_id of the contact inbox it belongs to. */
  sourceId: string;
  status: ConversationStatus;
  additionalAttributes: Record<string, unknown>;
  customAttributes: Record<string, unknown>;
  createdAt: number;
  lastActivityAt: number;
}

export interface FakeMessage {
  /** Counts from 1000, in creation order. */
  id: number;
  conversationId: number;
  content: string;
  messageType: MessageType;
  private: boolean;
  sourceId: string | null;
  /** Who Chatwoot records as the sender: the contact for incoming messages, the token's user otherwise. */
  senderType: 'contact' | 'user';
  createdAt: number;
}

export interface RecordedChatwootRequest {
  seq: number;
  method: string;
  /** Without the query string. */
  path: string;
  query: Record<string, string>;
  /** Path and query string, as sent. */
  url: string;
  operation: ChatwootOperation | 'unknown';
  headers: IncomingHttpHeaders;
  rawBody: string;
  /** The parsed JSON body; undefined when there was none (or it was not JSON). */
  body: any;
  /** The status answered; undefined while unanswered (hang) or when the socket was dropped. */
  status?: number;
  /** The injected behaviour that applied, if any. */
  fault?: 'fail' | 'hang' | 'drop' | 'down';
}

export interface FakeChatwootOptions {
  token?: string;
  accountId?: number;
  /** The account's inboxes (all API channels); the first is the bot's. */
  inboxIds?: number[];
}

/** Which requests an injected behaviour applies to, and whether the operation happens first. */
export interface FaultOptions {
  /** Only requests of these operations (default: any routed, authenticated request). */
  on?: ChatwootOperation | ChatwootOperation[];
  /** Perform the operation, then fail anyway: the caller cannot know it happened (unknown outcome). */
  afterEffect?: boolean;
}

export interface WebhookOptions {
  /** Appended as `?token=`; omitted when undefined. */
  token?: string;
  /** Signs like Chatwoot ≥ 4.11.2: X-Chatwoot-Timestamp, X-Chatwoot-Signature, X-Chatwoot-Delivery. */
  secret?: string;
  /** Unix seconds; default now (an old one tests replay windows). */
  timestamp?: number;
  deliveryId?: string;
  /** Chatwoot gives up after 5 s (lib/webhooks/trigger.rb). */
  timeoutMs?: number;
}

type Json = Record<string, any>;
type Answer = { status: number; body: unknown };
type Fault = FaultOptions & { kind: 'fail' | 'hang' | 'drop'; remaining: number; status?: number; body?: unknown };
type Handler = (params: string[], record: RecordedChatwootRequest) => Answer;

const PREFIX = '/api/v1/accounts/(\\d+)';
const ROUTES: { method: string; pattern: RegExp; operation: ChatwootOperation }[] = [
  { method: 'GET', pattern: new RegExp(`^${PREFIX}/contacts/search$`), operation: 'contact_search' },
  { method: 'POST', pattern: new RegExp(`^${PREFIX}/contacts$`), operation: 'contact_create' },
  { method: 'POST', pattern: new RegExp(`^${PREFIX}/contacts/(\\d+)/contact_inboxes$`), operation: 'contact_inbox' },
  {
    method: 'GET',
    pattern: new RegExp(`^${PREFIX}/contacts/(\\d+)/conversations$`),
    operation: 'contact_conversations',
  },
  { method: 'POST', pattern: new RegExp(`^${PREFIX}/conversations$`), operation: 'conversation_create' },
  { method: 'POST', pattern: new RegExp(`^${PREFIX}/conversations/(\\d+)/messages$`), operation: 'message_create' },
  { method: 'GET', pattern: new RegExp(`^${PREFIX}/conversations/(\\d+)/messages$`), operation: 'message_list' },
  { method: 'POST', pattern: new RegExp(`^${PREFIX}/conversations/(\\d+)/toggle_status$`), operation: 'toggle_status' },
];
const STATUSES: ConversationStatus[] = ['open', 'pending', 'resolved', 'snoozed'];
const MESSAGE_TYPES: MessageType[] = ['incoming', 'outgoing', 'activity', 'template'];
/** Chatwoot validates phone numbers as E.164 with the '+' (Contact model). */
const E164 = /^\+[1-9]\d{1,14}$/;
const SEARCH_PAGE_SIZE = 15;
const MESSAGES_PAGE_SIZE = 20;
const AGENT = { id: 3, name: 'Sara Agent', available_name: 'Sara Agent', type: 'user' };
const NOT_FOUND: Answer = { status: 404, body: { error: 'Resource could not be found' } };

const now = (): number => Math.floor(Date.now() / 1000);

/**
 * A fake of Chatwoot's Application API for hand-overs: a real HTTP server on 127.0.0.1 (random
 * port), stateful, answering with the shapes and rules of real Chatwoot (docs/handover.md §5):
 * unique identifier/phone per account (422), find-or-create contact inboxes, per-account display
 * ids, `{ meta, payload }` message pages of the newest 20, integer message_type in API answers.
 * Like Rails it accepts "5" for 5; test/utils/openapi-contract.ts holds requests to the contract.
 * Contact ids count from 101 so that a contact id used as a conversation id (from 1) fails.
 */
export class FakeChatwootServer {
  readonly requests: RecordedChatwootRequest[] = [];
  /** While true every request answers 503 (Chatwoot down behind its proxy). */
  down = false;
  private readonly options: Required<FakeChatwootOptions>;
  private readonly server: http.Server;
  private readonly sockets = new Set<Socket>();
  private readonly events = new EventEmitter();
  private faults: Fault[] = [];
  private state = emptyState();
  private seq = 0;
  private listeningPort = 0;

  private constructor(options: FakeChatwootOptions) {
    this.options = {
      token: options.token ?? 'test-chatwoot-token',
      accountId: options.accountId ?? 1,
      inboxIds: options.inboxIds ?? [5],
    };
    this.events.setMaxListeners(100);
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  static async start(options: FakeChatwootOptions = {}): Promise<FakeChatwootServer> {
    const fake = new FakeChatwootServer(options);
    await new Promise<void>((resolve, reject) => {
      fake.server.once('error', reject);
      fake.server.listen(0, '127.0.0.1', () => resolve());
    });
    fake.listeningPort = (fake.server.address() as AddressInfo).port;
    return fake;
  }

  /** Base URL, for CHATWOOT_BASE_URL. */
  get url(): string {
    return `http://127.0.0.1:${this.listeningPort}`;
  }

  get token(): string {
    return this.options.token;
  }

  get accountId(): number {
    return this.options.accountId;
  }

  /** The bot's inbox (the first of `inboxIds`). */
  get inboxId(): number {
    return this.options.inboxIds[0];
  }

  // ---- failure injection: a FIFO queue, each entry used by the next `times` matching requests ----

  /** Answers `status` (and `body`, default a Chatwoot-like error) instead of, or after, the operation. */
  fail(times: number, fault: FaultOptions & { status: number; body?: unknown }): void {
    this.faults.push({ ...fault, kind: 'fail', remaining: times });
  }

  /** Reads the request and never answers: the caller times out. */
  hang(times: number, fault: FaultOptions = {}): void {
    this.faults.push({ ...fault, kind: 'hang', remaining: times });
  }

  /** Reads the request, then destroys the socket (a connection reset). */
  drop(times: number, fault: FaultOptions = {}): void {
    this.faults.push({ ...fault, kind: 'drop', remaining: times });
  }

  /** Injected behaviours not yet used up. */
  pendingFaults(): number {
    return this.faults.reduce((sum, f) => sum + f.remaining, 0);
  }

  clearFaults(): void {
    this.faults = [];
  }

  // ---- state, as the tests see it ----

  contacts(): FakeContact[] {
    return this.state.contacts.map((c) => ({ ...c }));
  }

  contactInboxes(): FakeContactInbox[] {
    return this.state.contactInboxes.map((ci) => ({ ...ci }));
  }

  conversations(): FakeConversation[] {
    return this.state.conversations.map((c) => ({ ...c }));
  }

  conversation(id: number | string): FakeConversation | undefined {
    const found = this.findConversation(Number(id));
    return found ? { ...found } : undefined;
  }

  messagesOf(conversationId: number | string): FakeMessage[] {
    return this.state.messages.filter((m) => m.conversationId === Number(conversationId)).map((m) => ({ ...m }));
  }

  requestsOf(operation: ChatwootOperation): RecordedChatwootRequest[] {
    return this.requests.filter((r) => r.operation === operation);
  }

  /** A contact made in Chatwoot's UI or by an import (no request recorded). */
  seedContact(contact: Partial<Omit<FakeContact, 'id' | 'createdAt'>> = {}): FakeContact {
    const created: FakeContact = {
      id: this.state.nextContactId++,
      name: contact.name ?? 'Seeded Contact',
      email: contact.email ?? null,
      phoneNumber: contact.phoneNumber ?? null,
      identifier: contact.identifier ?? null,
      customAttributes: contact.customAttributes ?? {},
      createdAt: now(),
    };
    this.state.contacts.push(created);
    this.changed();
    return { ...created };
  }

  /** A conversation made earlier (no request recorded); links the contact inbox when missing. */
  seedConversation(seed: {
    contactId: number;
    inboxId?: number;
    status?: ConversationStatus;
    sourceId?: string;
    lastActivityAt?: number;
    additionalAttributes?: Record<string, unknown>;
  }): FakeConversation {
    const inboxId = seed.inboxId ?? this.inboxId;
    const sourceId = seed.sourceId ?? randomUUID();
    if (!this.contactInbox(inboxId, sourceId))
      this.state.contactInboxes.push({ contactId: seed.contactId, inboxId, sourceId });
    const conversation = this.addConversation(seed.contactId, inboxId, sourceId, seed.status ?? 'open', {
      additional_attributes: seed.additionalAttributes,
    });
    if (seed.lastActivityAt !== undefined) conversation.lastActivityAt = seed.lastActivityAt;
    this.changed();
    return { ...conversation };
  }

  /** A message written in Chatwoot's UI (an agent's reply by default); no request recorded. */
  seedMessage(
    conversationId: number,
    message: { content: string; messageType?: MessageType; private?: boolean; sourceId?: string },
  ): FakeMessage {
    const conversation = this.findConversation(conversationId);
    if (!conversation) throw new Error(`fake chatwoot: no conversation ${conversationId}`);
    const type = message.messageType ?? 'outgoing';
    return {
      ...this.addMessage(conversation, message.content, type, message.private ?? false, message.sourceId ?? null),
    };
  }

  /** An agent changes the status in the UI (no request recorded). */
  setStatus(conversationId: number, status: ConversationStatus): void {
    const conversation = this.findConversation(conversationId);
    if (!conversation) throw new Error(`fake chatwoot: no conversation ${conversationId}`);
    conversation.status = status;
    this.changed();
  }

  /** Forgets state, requests and faults; ids and seq start again (contacts 101, conversations 1, messages 1000). */
  reset(): void {
    this.state = emptyState();
    this.requests.length = 0;
    this.seq = 0;
    this.faults = [];
    this.down = false;
  }

  // ---- waiting, on events (no polling, no fixed sleeps) ----

  /** Resolves once `predicate()` holds, checked now and after every request and state change. */
  async waitFor(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    if (predicate()) return;
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (!predicate()) return;
        done();
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`fake chatwoot: ${what} not met after ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.events.off('change', check);
      };
      this.events.on('change', check);
    });
  }

  /** Resolves with the conversation's messages once it has at least `n`. */
  async waitForMessages(conversationId: number | string, n: number, timeoutMs = 5000): Promise<FakeMessage[]> {
    const what = `${n} messages in conversation ${conversationId} (has ${this.messagesOf(conversationId).length})`;
    await this.waitFor(() => this.messagesOf(conversationId).length >= n, timeoutMs, what);
    return this.messagesOf(conversationId);
  }

  /** Resolves with the recorded requests (of `operation`, if given) once there are at least `n`. */
  async waitForRequests(
    n: number,
    operation?: ChatwootOperation,
    timeoutMs = 5000,
  ): Promise<RecordedChatwootRequest[]> {
    const matching = (): RecordedChatwootRequest[] => (operation ? this.requestsOf(operation) : this.requests);
    await this.waitFor(() => matching().length >= n, timeoutMs, `${n} ${operation ?? ''} requests`);
    return matching();
  }

  /** Plays Chatwoot calling our webhook: see postChatwootWebhook. */
  postWebhook(targetUrl: string, payload: unknown, options: WebhookOptions = {}): Promise<Response> {
    return postChatwootWebhook(targetUrl, payload, options);
  }

  /** Stops listening and destroys every open socket, hanging ones included. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  // ---- HTTP ----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const record = await this.record(req);
    const route = ROUTES.find((r) => r.method === record.method && r.pattern.test(record.path));
    if (route) record.operation = route.operation;
    const params = route ? route.pattern.exec(record.path)!.slice(1) : [];
    if (this.down) return this.answer(res, record, { status: 503, body: '503 Service Unavailable' }, 'down');
    if (!route) return this.answer(res, record, NOT_FOUND);
    const denied = this.authorize(record, Number(params[0]));
    if (denied) return this.answer(res, record, denied);
    const perform = (): Answer => this.handlers[route.operation](params.slice(1), record);
    const fault = this.takeFault(route.operation);
    if (!fault) return this.answer(res, record, perform());
    if (fault.afterEffect) perform();
    this.applyFault(fault, req, res, record);
  }

  private async record(req: IncomingMessage): Promise<RecordedChatwootRequest> {
    const rawBody = await readBody(req);
    const url = req.url ?? '/';
    const [path, search = ''] = url.split('?', 2);
    const json = /json/i.test(String(req.headers['content-type'] ?? '')) ? parseJson(rawBody) : undefined;
    const record: RecordedChatwootRequest = {
      seq: ++this.seq,
      method: req.method ?? 'GET',
      path,
      query: Object.fromEntries(new URLSearchParams(search)),
      url,
      operation: 'unknown',
      headers: req.headers,
      rawBody,
      body: rawBody === '' ? undefined : json,
    };
    this.requests.push(record);
    return record;
  }

  private authorize(record: RecordedChatwootRequest, accountId: number): Answer | undefined {
    if (record.headers.api_access_token !== this.options.token) {
      return { status: 401, body: { error: 'Invalid Access Token' } };
    }
    if (accountId !== this.options.accountId) {
      return { status: 401, body: { error: 'You are not authorized to access this account' } };
    }
    return undefined;
  }

  private takeFault(operation: ChatwootOperation): Fault | undefined {
    const fault = this.faults.find((f) => f.on === undefined || [f.on].flat().includes(operation));
    if (!fault) return undefined;
    fault.remaining -= 1;
    if (fault.remaining <= 0) this.faults = this.faults.filter((f) => f !== fault);
    return fault;
  }

  private applyFault(fault: Fault, req: IncomingMessage, res: ServerResponse, record: RecordedChatwootRequest): void {
    switch (fault.kind) {
      case 'fail': {
        const body = fault.body ?? { error: http.STATUS_CODES[fault.status!] ?? 'error' };
        return this.answer(res, record, { status: fault.status!, body }, 'fail');
      }
      case 'hang':
        record.fault = 'hang';
        return this.changed();
      case 'drop':
        record.fault = 'drop';
        req.socket.destroy();
        return this.changed();
    }
  }

  private answer(res: ServerResponse, record: RecordedChatwootRequest, answer: Answer, fault?: 'fail' | 'down'): void {
    record.status = answer.status;
    record.fault = fault;
    const text = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
    const type = typeof answer.body === 'string' ? 'text/plain' : 'application/json; charset=utf-8';
    res.writeHead(answer.status, { 'content-type': type });
    res.end(text);
    this.changed();
  }

  private changed(): void {
    this.events.emit('change');
  }

  // ---- the operations, as Chatwoot performs them ----

  private readonly handlers: Record<ChatwootOperation, Handler> = {
    contact_search: (_p, r) => this.searchContacts(r.query),
    contact_create: (_p, r) => this.createContact(body(r)),
    contact_inbox: ([id], r) => this.createContactInbox(Number(id), body(r)),
    contact_conversations: ([id]) => this.contactConversations(Number(id)),
    conversation_create: (_p, r) => this.createConversation(body(r)),
    message_create: ([id], r) => this.createMessage(Number(id), body(r)),
    message_list: ([id]) => this.listMessages(Number(id)),
    toggle_status: ([id], r) => this.toggleStatus(Number(id), body(r)),
  };

  /** ILIKE '%q%' on name, email and phone, LIKE on identifier; only contacts with one of those. */
  private searchContacts(query: Record<string, string>): Answer {
    const q = (query.q ?? '').trim();
    if (q === '') return { status: 422, body: { error: 'Specify search string with parameter q' } };
    const needle = q.toLowerCase();
    const matches = this.state.contacts.filter(
      (c) =>
        (c.email || c.phoneNumber || c.identifier) &&
        ([c.name, c.email, c.phoneNumber].some((v) => v?.toLowerCase().includes(needle)) || c.identifier?.includes(q)),
    );
    const page = Math.max(1, Number(query.page ?? 1) || 1);
    const payload = matches
      .slice((page - 1) * SEARCH_PAGE_SIZE, page * SEARCH_PAGE_SIZE)
      .map((c) => this.contactJson(c));
    return { status: 200, body: { meta: { count: matches.length, current_page: query.page ?? 1 }, payload } };
  }

  private createContact(params: Json): Answer {
    const inboxId = params.inbox_id === undefined || params.inbox_id === '' ? undefined : Number(params.inbox_id);
    if (inboxId !== undefined && !this.options.inboxIds.includes(inboxId)) return NOT_FOUND;
    const invalid = this.contactErrors(params);
    if (invalid) return invalid;
    const contact = this.seedContact({
      name: typeof params.name === 'string' ? params.name : '',
      email: blankToNull(params.email),
      phoneNumber: blankToNull(params.phone_number),
      identifier: blankToNull(params.identifier),
      customAttributes: (params.custom_attributes as Record<string, unknown>) ?? {},
    });
    // With inbox_id Chatwoot also links the contact to that inbox, under a generated source_id.
    const link = inboxId === undefined ? undefined : this.linkContact(contact.id, inboxId, randomUUID());
    const contactInbox = { inbox: link ? inboxJson(link.inboxId) : null, source_id: link?.sourceId ?? null };
    return { status: 200, body: { payload: { contact: this.contactJson(contact), contact_inbox: contactInbox } } };
  }

  /** Rails validation errors: `{ message, attributes }` with HTTP 422. */
  private contactErrors(params: Json): Answer | undefined {
    const errors: [string, string][] = [];
    const phone = blankToNull(params.phone_number);
    if (phone && !E164.test(phone)) errors.push(['phone_number', 'Phone number should be in e164 format']);
    for (const [attr, field, label] of [
      ['identifier', 'identifier', 'Identifier'],
      ['phone_number', 'phoneNumber', 'Phone number'],
      ['email', 'email', 'Email'],
    ] as const) {
      const value = blankToNull(params[attr]);
      if (value && this.state.contacts.some((c) => c[field] === value))
        errors.push([attr, `${label} has already been taken`]);
    }
    if (errors.length === 0) return undefined;
    return { status: 422, body: { message: errors.map((e) => e[1]).join(', '), attributes: errors.map((e) => e[0]) } };
  }

  private createContactInbox(contactId: number, params: Json): Answer {
    if (!this.findContact(contactId)) return NOT_FOUND;
    const inboxId = Number(params.inbox_id);
    if (!this.options.inboxIds.includes(inboxId)) return { status: 404, body: { error: 'Inbox not found' } };
    const sourceId = blankToNull(params.source_id) ?? randomUUID();
    const link = this.linkContact(contactId, inboxId, sourceId);
    if (!link) return sourceTaken();
    return { status: 200, body: { source_id: link.sourceId, inbox: inboxJson(inboxId) } };
  }

  /** ContactInboxBuilder: find-or-create; the same source_id in the inbox for another contact is taken. */
  private linkContact(contactId: number, inboxId: number, sourceId: string): FakeContactInbox | undefined {
    const existing = this.contactInbox(inboxId, sourceId);
    if (existing) return existing.contactId === contactId ? existing : undefined;
    const created = { contactId, inboxId, sourceId };
    this.state.contactInboxes.push(created);
    this.changed();
    return created;
  }

  /** The newest 20 by last activity, like ContactsController#conversations. */
  private contactConversations(contactId: number): Answer {
    if (!this.findContact(contactId)) return NOT_FOUND;
    const payload = this.state.conversations
      .filter((c) => c.contactId === contactId)
      .sort((a, b) => b.lastActivityAt - a.lastActivityAt || b.id - a.id)
      .slice(0, 20)
      .map((c) => this.conversationJson(c));
    return { status: 200, body: { payload } };
  }

  /** With contact_id and inbox_id the contact inbox is found or made; else source_id alone must find it. */
  private createConversation(params: Json): Answer {
    const sourceId = blankToNull(params.source_id) ?? undefined;
    let link: FakeContactInbox | undefined;
    if (params.contact_id !== undefined && params.inbox_id !== undefined) {
      const contactId = Number(params.contact_id);
      const inboxId = Number(params.inbox_id);
      if (!this.findContact(contactId) || !this.options.inboxIds.includes(inboxId)) return NOT_FOUND;
      link = this.linkContact(contactId, inboxId, sourceId ?? randomUUID());
      if (!link) return sourceTaken();
    } else {
      link = this.state.contactInboxes.find((ci) => ci.sourceId === sourceId);
      if (!link) return NOT_FOUND;
    }
    const status = params.status ?? 'open';
    if (!STATUSES.includes(status)) return { status: 422, body: { message: `'${status}' is not a valid status` } };
    const conversation = this.addConversation(link.contactId, link.inboxId, link.sourceId, status, params);
    this.changed();
    return { status: 200, body: this.conversationJson(conversation) };
  }

  /** MessageBuilder: message_type defaults to outgoing; private is `to_s == 'true'`; source_id kept. */
  private createMessage(conversationId: number, params: Json): Answer {
    const conversation = this.findConversation(conversationId);
    if (!conversation) return NOT_FOUND;
    const type = params.message_type ?? 'outgoing';
    if (!MESSAGE_TYPES.includes(type))
      return { status: 422, body: { message: `'${type}' is not a valid message_type` } };
    if (typeof params.content !== 'string' || params.content === '') {
      return { status: 422, body: { message: "Content can't be blank", attributes: ['content'] } };
    }
    const message = this.addMessage(
      conversation,
      params.content,
      type,
      String(params.private) === 'true',
      blankToNull(params.source_id),
    );
    return { status: 200, body: this.messageJson(message) };
  }

  /** MessageFinder without before/after: the newest 20, oldest first, wrapped in `{ meta, payload }`. */
  private listMessages(conversationId: number): Answer {
    const conversation = this.findConversation(conversationId);
    if (!conversation) return NOT_FOUND;
    const payload = this.state.messages
      .filter((m) => m.conversationId === conversationId)
      .slice(-MESSAGES_PAGE_SIZE)
      .map((m) => this.messageJson(m));
    const meta = {
      labels: [],
      additional_attributes: conversation.additionalAttributes,
      contact: this.contactPushData(conversation.contactId),
      assignee: null,
      agent_last_seen_at: null,
      assignee_last_seen_at: null,
    };
    return { status: 200, body: { meta, payload } };
  }

  /** With a status, sets it; without, toggles open ↔ resolved. */
  private toggleStatus(conversationId: number, params: Json): Answer {
    const conversation = this.findConversation(conversationId);
    if (!conversation) return NOT_FOUND;
    const next = params.status ?? (conversation.status === 'open' ? 'resolved' : 'open');
    if (!STATUSES.includes(next)) return { status: 422, body: { message: `'${next}' is not a valid status` } };
    conversation.status = next;
    this.changed();
    const payload = { success: true, current_status: next, conversation_id: conversation.id };
    return { status: 200, body: { meta: {}, payload } };
  }

  // ---- state helpers ----

  private findContact(id: number): FakeContact | undefined {
    return this.state.contacts.find((c) => c.id === id);
  }

  private findConversation(id: number): FakeConversation | undefined {
    return this.state.conversations.find((c) => c.id === id);
  }

  private contactInbox(inboxId: number, sourceId: string): FakeContactInbox | undefined {
    return this.state.contactInboxes.find((ci) => ci.inboxId === inboxId && ci.sourceId === sourceId);
  }

  private addConversation(
    contactId: number,
    inboxId: number,
    sourceId: string,
    status: ConversationStatus,
    params: Json,
  ): FakeConversation {
    const conversation: FakeConversation = {
      id: this.state.nextConversationId++,
      accountId: this.options.accountId,
      inboxId,
      contactId,
      sourceId,
      status,
      additionalAttributes: (params.additional_attributes as Record<string, unknown>) ?? {},
      customAttributes: (params.custom_attributes as Record<string, unknown>) ?? {},
      createdAt: now(),
      lastActivityAt: now(),
    };
    this.state.conversations.push(conversation);
    return conversation;
  }

  /** An incoming message reopens a resolved or snoozed conversation (Message#reopen_conversation). */
  private addMessage(
    conversation: FakeConversation,
    content: string,
    messageType: MessageType,
    isPrivate: boolean,
    sourceId: string | null,
  ): FakeMessage {
    const message: FakeMessage = {
      id: this.state.nextMessageId++,
      conversationId: conversation.id,
      content,
      messageType,
      private: isPrivate,
      sourceId,
      senderType: messageType === 'incoming' ? 'contact' : 'user',
      createdAt: now(),
    };
    this.state.messages.push(message);
    conversation.lastActivityAt = message.createdAt;
    if (messageType === 'incoming' && (conversation.status === 'resolved' || conversation.status === 'snoozed')) {
      conversation.status = 'open';
    }
    this.changed();
    return message;
  }

  // ---- JSON as Chatwoot renders it (jbuilder partials) ----

  private contactJson(contact: FakeContact): Json {
    return {
      id: contact.id,
      name: contact.name,
      email: contact.email,
      phone_number: contact.phoneNumber,
      identifier: contact.identifier,
      thumbnail: '',
      availability_status: 'offline',
      blocked: false,
      additional_attributes: {},
      custom_attributes: contact.customAttributes,
      created_at: contact.createdAt,
      last_activity_at: null,
      contact_inboxes: this.state.contactInboxes
        .filter((ci) => ci.contactId === contact.id)
        .map((ci) => ({ source_id: ci.sourceId, inbox: inboxJson(ci.inboxId) })),
    };
  }

  private contactPushData(contactId: number): Json {
    const contact = this.findContact(contactId);
    return {
      id: contactId,
      name: contact?.name ?? '',
      email: contact?.email ?? null,
      phone_number: contact?.phoneNumber ?? null,
      identifier: contact?.identifier ?? null,
      thumbnail: '',
      additional_attributes: {},
      custom_attributes: contact?.customAttributes ?? {},
      type: 'contact',
    };
  }

  private conversationJson(conversation: FakeConversation): Json {
    const last = this.state.messages.filter((m) => m.conversationId === conversation.id).slice(-1);
    return {
      id: conversation.id,
      account_id: conversation.accountId,
      inbox_id: conversation.inboxId,
      uuid: `00000000-0000-4000-8000-${String(conversation.id).padStart(12, '0')}`,
      status: conversation.status,
      meta: {
        sender: this.contactPushData(conversation.contactId),
        channel: 'Channel::Api',
        assignee: null,
        hmac_verified: false,
      },
      messages: last.map((m) => this.messageJson(m)),
      additional_attributes: conversation.additionalAttributes,
      custom_attributes: conversation.customAttributes,
      labels: [],
      muted: false,
      can_reply: true,
      snoozed_until: null,
      unread_count: 0,
      priority: null,
      agent_last_seen_at: 0,
      contact_last_seen_at: 0,
      timestamp: conversation.lastActivityAt,
      last_activity_at: conversation.lastActivityAt,
      created_at: conversation.createdAt,
      updated_at: conversation.lastActivityAt + 0.5,
    };
  }

  /** API answers carry message_type as the enum's integer (message_type_before_type_cast). */
  private messageJson(message: FakeMessage): Json {
    const conversation = this.findConversation(message.conversationId)!;
    const sender = message.senderType === 'contact' ? this.contactPushData(conversation.contactId) : AGENT;
    return {
      id: message.id,
      content: message.content,
      inbox_id: conversation.inboxId,
      conversation_id: conversation.id,
      message_type: MESSAGE_TYPES.indexOf(message.messageType),
      content_type: 'text',
      status: 'sent',
      content_attributes: {},
      created_at: message.createdAt,
      private: message.private,
      source_id: message.sourceId,
      sender,
    };
  }
}

/**
 * POSTs a webhook the way Chatwoot does: JSON to `targetUrl?token=…`, and with a `secret` the
 * signature headers of newer versions, HMAC-SHA256(secret, `${timestamp}.${rawBody}`). A string
 * payload is sent as is (malformed bodies). Resolves with the fetch Response.
 */
export async function postChatwootWebhook(
  targetUrl: string,
  payload: unknown,
  options: WebhookOptions = {},
): Promise<Response> {
  const raw = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const separator = targetUrl.includes('?') ? '&' : '?';
  const url =
    options.token === undefined ? targetUrl : `${targetUrl}${separator}token=${encodeURIComponent(options.token)}`;
  const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'rest-client/2.1.0' };
  if (options.secret !== undefined) {
    const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000));
    headers['x-chatwoot-timestamp'] = timestamp;
    headers['x-chatwoot-signature'] =
      `sha256=${createHmac('sha256', options.secret).update(`${timestamp}.${raw}`).digest('hex')}`;
    headers['x-chatwoot-delivery'] = options.deliveryId ?? randomUUID();
  }
  return fetch(url, { method: 'POST', headers, body: raw, signal: AbortSignal.timeout(options.timeoutMs ?? 5000) });
}

function emptyState() {
  return {
    contacts: [] as FakeContact[],
    contactInboxes: [] as FakeContactInbox[],
    conversations: [] as FakeConversation[],
    messages: [] as FakeMessage[],
    nextContactId: 101,
    nextConversationId: 1,
    nextMessageId: 1000,
  };
}

function inboxJson(inboxId: number): Json {
  return { id: inboxId, name: `API inbox ${inboxId}`, channel_type: 'Channel::Api', channel_id: inboxId };
}

function body(record: RecordedChatwootRequest): Json {
  return typeof record.body === 'object' && record.body !== null ? (record.body as Json) : {};
}

function blankToNull(value: unknown): string | null {
  if (typeof value !== 'string' && typeof value !== 'number') return null;
  const text = String(value);
  return text.trim() === '' ? null : text;
}

function sourceTaken(): Answer {
  return { status: 422, body: { message: 'Source has already been taken', attributes: ['source_id'] } };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}
