// The /sandbox page: plays the patient's phone. It posts what Meta would post to POST /webhook
// (messages, then statuses for each bot message it shows) and listens to the bot's replies and
// mark-reads on a server-sent event stream. Everything it displays goes in through textContent.
'use strict';

(() => {
  const WABA_ID = '200000000000002';
  const DAY_S = 24 * 3600;
  const TYPING_MS = 25000;
  // The offline responder answers a millisecond after its mark-read: without a floor the dots only flash.
  const MIN_TYPING_MS = 700;
  const WA_ID = /^[1-9]\d{6,14}$/;
  const STORE = 'tawasul.sandbox';
  const SVG = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);
  const el = {
    app: $('app'),
    clinic: $('clinic-name'),
    avatar: $('avatar'),
    presence: $('presence'),
    conversation: $('conversation'),
    messages: $('messages'),
    typing: $('typing'),
    composer: $('composer'),
    text: $('text'),
    send: $('send'),
    quickReplies: $('quick-replies'),
    duplicate: $('act-duplicate'),
    late: $('act-late'),
    image: $('act-image'),
    button: $('act-button'),
    waId: $('wa-id'),
    name: $('name'),
    window: $('st-window'),
    handoff: $('st-handoff'),
    resolve: $('resolve'),
    language: $('st-language'),
    cost: $('st-cost'),
    turns: $('turns'),
    turnsEmpty: $('turns-empty'),
    clinicCard: $('clinic'),
    clinicApi: $('clinic-api'),
    bookings: $('bookings'),
    bookingsEmpty: $('bookings-empty'),
    refresh: $('refresh'),
    togglePanel: $('toggle-panel'),
    closePanel: $('close-panel'),
  };

  let config = { phoneNumberId: '', displayPhoneNumber: '', clinicName: '' };
  let waId = '';
  let source;
  let streamReady = false;
  let lastDelivery; // the last message payload posted, for the duplicate button
  let lastBotId; // the context a button reply refers to
  let lastBotAt = 0;
  let lastSide;
  let typingTimer;
  let typingSince = 0;
  // The bot's messages are shown one after another, in stream order, each after the typing floor.
  let shown = Promise.resolve();
  let generation = 0;
  let stateTimer;
  let followUpTimer;
  let lastState;
  // The patient's own messages in order: a mark-read covers every message up to the one it names.
  let sentByPatient = [];

  // ---- Ids and payloads shaped like Meta's ----

  const randomHex = (n) => {
    const bytes = new Uint8Array(Math.ceil(n / 2));
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0'))
      .join('')
      .slice(0, n)
      .toUpperCase();
  };

  /** Meta's wamids carry the sender's number (the server reads it to route mark-reads). */
  const wamidFrom = (from) => {
    const id = randomHex(20);
    const record =
      String.fromCharCode(0x1c, 0x18, from.length) +
      from +
      String.fromCharCode(0x15, 0x02, 0x00, 0x12, 0x18, id.length) +
      id +
      String.fromCharCode(0);
    return `wamid.${btoa(record)}`;
  };

  const nowSeconds = () => Math.floor(Date.now() / 1000);

  const envelope = (value) => ({
    object: 'whatsapp_business_account',
    entry: [
      {
        id: WABA_ID,
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: config.displayPhoneNumber, phone_number_id: config.phoneNumberId },
              ...value,
            },
          },
        ],
      },
    ],
  });

  const messagePayload = (message) =>
    envelope({
      contacts: [{ profile: { name: el.name.value.trim() || 'Patient' }, wa_id: waId }],
      messages: [{ from: waId, id: wamidFrom(waId), timestamp: String(nowSeconds()), ...message }],
    });

  const postWebhook = async (payload) => {
    try {
      const res = await fetch('/webhook', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(payload),
      });
      return res.status;
    } catch {
      return 0;
    }
  };

  // ---- Rendering (textContent only) ----

  const make = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };

  const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

  const TICK_SHAPES = {
    pending: { width: 16, paths: ['M8 1.5a4.5 4.5 0 1 0 0 9 4.5 4.5 0 1 0 0-9zM8 3.5V6l1.8 1.2'] },
    one: { width: 12, paths: ['M1 6l3.2 3.2L11 2.2'] },
    two: { width: 16, paths: ['M1 6l3.2 3.2L11 2.2', 'M6.5 8.3l.9.9L14.2 2.2'] },
  };

  const ticks = (kind) => {
    const shape = TICK_SHAPES[kind];
    const span = make('span', 'ticks');
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', `0 0 ${shape.width} 11`);
    svg.setAttribute('width', String(shape.width));
    svg.setAttribute('height', '11');
    svg.setAttribute('aria-hidden', 'true');
    for (const d of shape.paths) {
      const path = document.createElementNS(SVG, 'path');
      path.setAttribute('d', d);
      path.setAttribute('fill', 'none');
      path.setAttribute('stroke', 'currentColor');
      path.setAttribute('stroke-width', '1.5');
      path.setAttribute('stroke-linecap', 'round');
      path.setAttribute('stroke-linejoin', 'round');
      svg.appendChild(path);
    }
    span.appendChild(svg);
    return span;
  };

  /** Sets a bubble's ticks: pending, sent (one), delivered (two), read (two, blue), failed. */
  const setTicks = (bubble, status) => {
    const old = bubble.querySelector('.ticks');
    let next;
    if (status === 'failed') {
      next = make('span', 'ticks failed', '!');
    } else {
      next = ticks(status === 'pending' ? 'pending' : status === 'sent' ? 'one' : 'two');
      if (status === 'read') next.classList.add('read');
    }
    next.dataset.status = status;
    next.title = status;
    if (old) old.replaceWith(next);
    else bubble.querySelector('.meta').appendChild(next);
    bubble.dataset.status = status;
  };

  const nearBottom = () =>
    el.conversation.scrollHeight - el.conversation.scrollTop - el.conversation.clientHeight < 120;

  const scrollDown = (force) => {
    if (force || nearBottom()) el.conversation.scrollTop = el.conversation.scrollHeight;
  };

  /** A bubble: `side` is 'out' (the patient) or 'in' (the business). */
  const bubble = (side, parts, at, status) => {
    const stick = nearBottom();
    const li = make('li', `bubble ${side}`);
    if (lastSide !== side) li.classList.add('first');
    lastSide = side;
    if (parts.label) li.appendChild(make('span', `label${parts.late ? ' late' : ''}`, parts.label));
    if (parts.photo) {
      const photo = make('div', 'photo');
      photo.appendChild(make('span', '', 'Photo'));
      li.appendChild(photo);
    }
    if (parts.text !== undefined && parts.text !== '') {
      const text = make('p', `text${parts.button ? ' reply-button' : ''}`, parts.text);
      text.dir = 'auto';
      li.appendChild(text);
    }
    const meta = make('div', 'meta');
    meta.dir = 'ltr';
    meta.appendChild(make('time', '', clock(at)));
    li.appendChild(meta);
    if (status) setTicks(li, status);
    el.messages.appendChild(li);
    scrollDown(stick);
    return li;
  };

  const chip = (text, kind) => {
    const stick = nearBottom();
    const li = make('li', `chip${kind ? ` ${kind}` : ''}`, text);
    li.dir = 'auto';
    el.messages.appendChild(li);
    lastSide = undefined;
    scrollDown(stick);
    return li;
  };

  const showTyping = (on) => {
    clearTimeout(typingTimer);
    if (on && el.typing.hidden) typingSince = performance.now();
    el.typing.hidden = !on;
    el.presence.textContent = on ? 'typing…' : streamReady ? 'online' : 'connecting…';
    if (on) {
      scrollDown(true);
      typingTimer = setTimeout(() => showTyping(false), TYPING_MS);
    }
  };

  const enable = (on) => {
    for (const control of [el.text, el.send, el.duplicate, el.late, el.image, el.button]) control.disabled = !on;
    for (const b of el.quickReplies.querySelectorAll('button')) b.disabled = !on;
  };

  // ---- The patient's side ----

  /**
   * Posts one message as Meta would deliver it, with its bubble. `writtenAt` (seconds) backdates
   * it: Meta delivers late what a phone could not send at once.
   */
  const deliver = async (message, parts, writtenAt) => {
    const payload = messagePayload(message);
    const sent = payload.entry[0].changes[0].value.messages[0];
    if (writtenAt !== undefined) sent.timestamp = String(writtenAt);
    const li = bubble('out', parts, Number(sent.timestamp) * 1000, 'pending');
    li.dataset.wamid = sent.id;
    sentByPatient.push({ id: sent.id, li });
    lastDelivery = payload;
    const status = await postWebhook(payload);
    if (status === 200) {
      setTicks(li, li.dataset.status === 'read' ? 'read' : 'delivered');
    } else {
      setTicks(li, 'failed');
      chip(`POST /webhook answered ${status || 'nothing'}: the message was not taken`, 'error');
    }
    followState();
  };

  /** What the patient typed, or `fallback` when the box is empty; the box is cleared. */
  const typed = (fallback) => {
    const text = el.text.value.trim() || fallback;
    el.text.value = '';
    return text;
  };

  const sendText = () => {
    const text = el.text.value.trim();
    if (!text || !streamReady) return;
    el.text.value = '';
    void deliver({ type: 'text', text: { body: text } }, { text });
  };

  /** Written 25 hours ago, delivered now: outside the 24-hour window it would have opened. */
  const sendLate = () => {
    const text = typed('Hello, can I book an appointment?');
    const writtenAt = nowSeconds() - DAY_S - 3600;
    void deliver({ type: 'text', text: { body: text } }, { text, label: 'written 25 h ago', late: true }, writtenAt);
  };

  /** A photo, captioned with what the box holds; with an empty box none, so the bot's media reply shows. */
  const sendImage = () => {
    const caption = typed('');
    const image = {
      id: String(Math.floor(Math.random() * 9e15) + 1e15),
      mime_type: 'image/jpeg',
      sha256: btoa(randomHex(32)),
    };
    if (caption) image.caption = caption;
    void deliver({ type: 'image', image }, { photo: true, text: caption });
  };

  const sendButtonReply = (id, title) => {
    el.quickReplies.hidden = true;
    el.button.setAttribute('aria-expanded', 'false');
    const message = { type: 'interactive', interactive: { type: 'button_reply', button_reply: { id, title } } };
    // A tapped button answers the business message that carried it.
    if (lastBotId) message.context = { from: config.displayPhoneNumber, id: lastBotId };
    void deliver(message, { text: title, button: true });
  };

  const sendDuplicate = async () => {
    if (!lastDelivery) {
      chip('Send a message first: Meta redelivers one it already delivered.', 'info');
      return;
    }
    const id = lastDelivery.entry[0].changes[0].value.messages[0].id;
    const note = chip(`Meta delivered ${id.slice(0, 18)}… again (same wamid)`, 'info');
    note.classList.add('duplicate');
    const status = await postWebhook(lastDelivery);
    if (status !== 200) note.textContent = `The redelivery got ${status || 'no answer'}`;
  };

  // ---- The business's side, from the stream ----

  /** Queues a bot message behind the ones before it; one that beats the typing floor waits for it. */
  const onBotMessage = (event) => {
    lastBotAt = Math.max(lastBotAt, event.at);
    const mine = generation;
    shown = shown.then(async () => {
      const left = el.typing.hidden ? 0 : typingSince + MIN_TYPING_MS - performance.now();
      if (left > 0) await pause(left);
      // Another number since: that phone never gets this message.
      if (mine === generation) void showBotMessage(event);
    });
  };

  const showBotMessage = async (event) => {
    showTyping(false);
    lastBotId = event.id;
    const parts = { text: event.text };
    if (event.kind === 'template') parts.label = `Template ${event.template.name} (${event.template.language})`;
    const li = bubble('in', parts, event.at);
    li.dataset.wamid = event.id;
    // The turn commits right after its reply: its timing and cost are in the state by then.
    refreshState(300);
    // What the business would see of its message: sent, delivered, read, each posted as Meta would.
    for (const status of ['sent', 'delivered', 'read']) {
      if (status === 'read') await whenVisible();
      await pause(status === 'sent' ? 0 : 350);
      if (!li.isConnected) return;
      const answer = await postWebhook(envelope({ statuses: [statusOf(event, status)] }));
      if (answer !== 200) {
        setTicks(li, 'failed');
        return;
      }
      setTicks(li, status);
    }
  };

  const statusOf = (event, status) => {
    const s = { id: event.id, status, timestamp: String(nowSeconds()), recipient_id: waId };
    if (event.callbackData) s.biz_opaque_callback_data = event.callbackData;
    if (status !== 'read') s.pricing = event.pricing;
    return s;
  };

  const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /** The patient reads a message only while the page is in front of them. */
  const whenVisible = () =>
    document.visibilityState === 'visible'
      ? Promise.resolve()
      : new Promise((resolve) => {
          const seen = () => {
            if (document.visibilityState !== 'visible') return;
            document.removeEventListener('visibilitychange', seen);
            resolve();
          };
          document.addEventListener('visibilitychange', seen);
        });

  const onRead = (event) => {
    const upTo = sentByPatient.findIndex((m) => m.id === event.messageId);
    if (upTo >= 0) {
      for (const m of sentByPatient.slice(0, upTo + 1)) if (m.li.dataset.status !== 'failed') setTicks(m.li, 'read');
    }
    // Typing lasts until the next message: a reply recorded after this mark-read ended it already.
    if (event.typing && event.at >= lastBotAt) showTyping(true);
  };

  const connect = () => {
    if (source) source.close();
    streamReady = false;
    enable(false);
    el.presence.textContent = 'connecting…';
    source = new EventSource(`/sandbox/api/events?waId=${encodeURIComponent(waId)}`);
    source.addEventListener('ready', () => {
      streamReady = true;
      enable(true);
      el.presence.textContent = 'online';
    });
    source.addEventListener('message', (e) => onBotMessage(JSON.parse(e.data)));
    source.addEventListener('read', (e) => onRead(JSON.parse(e.data)));
    // The browser reconnects by itself; until the stream says ready again nothing is sent.
    source.addEventListener('error', () => {
      streamReady = false;
      enable(false);
      // A refusal (too many streams, the app stopping) is final for an EventSource.
      el.presence.textContent = source.readyState === EventSource.CLOSED ? 'disconnected: reload' : 'reconnecting…';
    });
  };

  // ---- The side panel ----

  const relative = (ms) => {
    const minutes = Math.round(Math.abs(ms) / 60000);
    if (minutes < 60) return `${minutes} min`;
    const hours = Math.floor(minutes / 60);
    return `${hours} h ${minutes % 60} min`;
  };

  const day = (ms) => {
    const d = new Date(ms);
    const today = new Date();
    const sameDay = d.toDateString() === today.toDateString();
    return sameDay
      ? clock(ms)
      : `${d.toLocaleDateString([], { weekday: 'short', day: 'numeric', month: 'short' })} ${clock(ms)}`;
  };

  const badge = (text, kind) => make('span', `badge${kind ? ` ${kind}` : ''}`, text);

  const renderWindow = () => {
    el.window.replaceChildren();
    const closesAt = lastState && lastState.window.closesAt ? Date.parse(lastState.window.closesAt) : undefined;
    if (closesAt === undefined) {
      el.window.appendChild(badge('not opened'));
      el.window.appendChild(make('span', 'small', 'opens when the patient writes'));
    } else if (closesAt > Date.now()) {
      el.window.appendChild(badge('open', 'ok'));
      el.window.appendChild(make('span', 'small', `until ${day(closesAt)} (${relative(closesAt - Date.now())} left)`));
    } else {
      el.window.appendChild(badge('closed', 'warn'));
      el.window.appendChild(make('span', 'small', `since ${day(closesAt)}: templates only`));
    }
  };

  /** A booking's day and time as the clinic wrote them (its own time zone), not converted to this one. */
  const slotLabel = (booking) => {
    const [y, m, d] = booking.date.split('-').map(Number);
    const date = new Date(Date.UTC(y, m - 1, d)).toLocaleDateString([], {
      weekday: 'short',
      day: 'numeric',
      month: 'short',
      timeZone: 'UTC',
    });
    return `${date} ${booking.time}`;
  };

  /** The demo clinic's upcoming bookings (every patient's: a booking names a patient, not a chat). */
  const renderClinic = (clinic) => {
    el.clinicCard.hidden = !clinic;
    if (!clinic) return;
    el.clinicApi.textContent = clinic.api;
    el.bookings.replaceChildren();
    for (const booking of clinic.bookings) {
      const li = make('li', 'booking');
      li.dataset.bookingId = booking.bookingId;
      li.appendChild(make('span', 'booking-when', slotLabel(booking)));
      li.appendChild(make('span', 'booking-id', booking.bookingId));
      const who = make('span', 'booking-who');
      const name = make('bdi', 'booking-patient', booking.patientName);
      who.appendChild(name);
      who.appendChild(document.createTextNode(` · ${booking.doctor}`));
      li.appendChild(who);
      el.bookings.appendChild(li);
    }
    el.bookings.hidden = clinic.bookings.length === 0;
    el.bookingsEmpty.hidden = clinic.bookings.length > 0;
  };

  const renderState = (state) => {
    lastState = state;
    renderWindow();
    el.handoff.replaceChildren();
    if (state.handoff.state === 'human') {
      el.handoff.appendChild(badge('human', 'warn'));
      if (state.handoff.since)
        el.handoff.appendChild(make('span', 'small', `since ${day(Date.parse(state.handoff.since))}`));
    } else {
      el.handoff.appendChild(badge('bot', 'ok'));
    }
    el.resolve.hidden = state.handoff.state !== 'human';
    el.language.textContent = state.language === 'ar' ? 'Arabic (ar)' : state.language === 'en' ? 'English (en)' : '—';
    el.cost.textContent = `$${state.costUsd.toFixed(4)}`;
    el.cost.title = `${state.costUsd} USD, estimated from the rate table`;
    const body = el.turns.tBodies[0];
    body.replaceChildren();
    for (const turn of state.turns) {
      const row = make('tr');
      row.appendChild(make('td', '', clock(Date.parse(turn.at))));
      row.appendChild(make('td', 'ms', turn.ms < 10000 ? `${turn.ms} ms` : `${(turn.ms / 1000).toFixed(1)} s`));
      row.appendChild(make('td', '', turn.outcome.replace('_', ' ')));
      body.appendChild(row);
    }
    el.turns.hidden = state.turns.length === 0;
    el.turnsEmpty.hidden = state.turns.length > 0;
    renderClinic(state.clinic);
  };

  const fetchState = async () => {
    if (!WA_ID.test(waId)) return undefined;
    try {
      const res = await fetch(`/sandbox/api/state?waId=${encodeURIComponent(waId)}`);
      if (!res.ok) throw new Error(String(res.status));
      return await res.json();
    } catch {
      el.window.textContent = 'state unavailable';
      return undefined;
    }
  };

  const loadState = async () => {
    const asked = waId;
    const state = await fetchState();
    if (state && asked === waId) renderState(state);
    return state;
  };

  /** Coalesces the reads that events ask for into one. */
  const refreshState = (delay) => {
    clearTimeout(stateTimer);
    stateTimer = setTimeout(() => void loadState(), delay);
  };

  /** A turn commits after its reply (or without one, on a hand-over): look again a little later. */
  const followState = () => {
    refreshState(1500);
    clearTimeout(followUpTimer);
    followUpTimer = setTimeout(() => void loadState(), 4000);
  };

  const resolve = async () => {
    el.resolve.disabled = true;
    try {
      const res = await fetch('/sandbox/api/resolve', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ waId }),
      });
      if (res.ok) chip('An agent resolved the chat: the bot answers again.', 'info');
    } finally {
      el.resolve.disabled = false;
      await loadState();
    }
  };

  // ---- The patient's number ----

  const remember = () => {
    try {
      localStorage.setItem(STORE, JSON.stringify({ waId, name: el.name.value }));
    } catch {
      // private mode: nothing remembered
    }
  };

  const recall = () => {
    try {
      return JSON.parse(localStorage.getItem(STORE) || '{}');
    } catch {
      return {};
    }
  };

  /** Another number is another phone: a fresh screen, that chat's history, its own stream. */
  const switchTo = async (number) => {
    waId = number;
    generation++;
    remember();
    el.messages.replaceChildren();
    sentByPatient = [];
    lastDelivery = undefined;
    lastBotId = undefined;
    lastBotAt = 0;
    lastSide = undefined;
    showTyping(false);
    const state = await loadState();
    if (state && state.history.length > 0) {
      chip('Earlier in this chat');
      for (const entry of state.history) {
        bubble(entry.role === 'user' ? 'out' : 'in', { text: entry.text }, Date.parse(entry.at));
      }
      chip('Now');
    }
    scrollDown(true);
    connect();
  };

  const onNumberChange = () => {
    const number = el.waId.value.replace(/[^\d]/g, '');
    const valid = WA_ID.test(number);
    el.waId.setAttribute('aria-invalid', String(!valid));
    if (valid && number !== waId) void switchTo(number);
  };

  let panelTimer;
  const setPanel = (open) => {
    clearTimeout(panelTimer);
    el.app.classList.add('panel-moving');
    el.app.classList.toggle('panel-open', open);
    el.togglePanel.setAttribute('aria-expanded', String(open));
    panelTimer = setTimeout(() => el.app.classList.remove('panel-moving'), 250);
  };

  // ---- Wiring ----

  el.composer.addEventListener('submit', (e) => {
    e.preventDefault();
    sendText();
  });
  el.duplicate.addEventListener('click', () => void sendDuplicate());
  el.late.addEventListener('click', sendLate);
  el.image.addEventListener('click', sendImage);
  el.button.addEventListener('click', () => {
    el.quickReplies.hidden = !el.quickReplies.hidden;
    el.button.setAttribute('aria-expanded', String(!el.quickReplies.hidden));
  });
  for (const b of el.quickReplies.querySelectorAll('button')) {
    b.addEventListener('click', () => sendButtonReply(b.dataset.id, b.textContent));
  }
  el.waId.addEventListener('change', onNumberChange);
  el.name.addEventListener('change', remember);
  el.resolve.addEventListener('click', () => void resolve());
  el.refresh.addEventListener('click', () => void loadState());
  el.togglePanel.addEventListener('click', () => setPanel(!el.app.classList.contains('panel-open')));
  el.closePanel.addEventListener('click', () => setPanel(false));
  // A phone turned, a window resized: whoever was reading the newest message still sees it.
  let pinned = true;
  el.conversation.addEventListener('scroll', () => {
    pinned = nearBottom();
  });
  new ResizeObserver(() => {
    if (pinned) scrollDown(true);
  }).observe(el.conversation);
  // The countdown moves with the clock; the state itself is only read again when something happens.
  setInterval(() => lastState && renderWindow(), 30000);

  const start = async () => {
    try {
      const res = await fetch('/sandbox/api/config');
      config = await res.json();
    } catch {
      chip('The sandbox API did not answer: is the app running?', 'error');
      return;
    }
    el.clinic.textContent = config.clinicName;
    el.avatar.textContent = (config.clinicName.trim()[0] || '·').toUpperCase();
    document.title = `${config.clinicName}: tawasul sandbox`;
    const saved = recall();
    const number = WA_ID.test(saved.waId || '') ? saved.waId : '971500000001';
    el.waId.value = number;
    el.name.value = typeof saved.name === 'string' && saved.name ? saved.name : 'Sara';
    await switchTo(number);
  };

  void start();
})();
