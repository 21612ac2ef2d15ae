import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { sandboxOutboxKey, type SandboxOutboxEntry } from '../../src/bsp/sandbox-bsp.client';
import { detectLanguage } from '../../src/llm/language';
import { clinicNow, isWorkingDay } from '../../src/sandbox/demo-clinic.calendar';
import { waitUntil } from '../utils/spawn-app';
import { startTestApp, type TestApp } from '../utils/test-app';

/**
 * The /sandbox page in a real browser (Debian's Chromium through playwright-core), against the
 * whole app (role `all`, sandbox BSP, offline LLM): what the patient types goes through POST
 * /webhook, the queue and a worker, and the replies come back on the event stream. Screenshots go
 * to test/artifacts/; docs/images/sandbox.png (the README's) is written when missing or with
 * UPDATE_DOCS_SCREENSHOT=1, so a test run does not rewrite a tracked file.
 *
 * Without Chromium the tests skip with a message; with CI_REQUIRE_BROWSER=1 (.ci/run sets it) a
 * missing Chromium fails instead, so CI cannot pass without the browser having run.
 */

// What the functions handed to the page use: they run in Chromium, and the tsconfig has no DOM library.
declare const document: any;
declare const window: any;
declare function getComputedStyle(element: unknown): { direction: string };
declare const performance: { now(): number };
declare const MutationObserver: any;

const ROOT = resolve(__dirname, '..', '..');
const ARTIFACTS = join(ROOT, 'test', 'artifacts');
const DOCS_SCREENSHOT = join(ROOT, 'docs', 'images', 'sandbox.png');
// CHROMIUM_PATH, when set, is the only candidate: pointing it at nothing is how to run without one.
const CHROMIUM = (
  process.env.CHROMIUM_PATH ? [process.env.CHROMIUM_PATH] : ['/usr/bin/chromium', '/usr/bin/chromium-browser']
).find((path) => existsSync(path));
const SKIP_REASON = process.env.CHROMIUM_PATH
  ? `no Chromium at CHROMIUM_PATH=${process.env.CHROMIUM_PATH}`
  : 'no Chromium at /usr/bin/chromium (apt-get install chromium, or set CHROMIUM_PATH)';
const REQUIRED = process.env.CI_REQUIRE_BROWSER === '1';
if (!CHROMIUM && !REQUIRED) console.warn(`sandbox-browser.e2e-spec: skipped: ${SKIP_REASON}`);
const describeInBrowser = CHROMIUM ? describe : describe.skip;

if (!CHROMIUM && REQUIRED) {
  describe('the /sandbox page in Chromium', () => {
    it('has a Chromium to run in (CI_REQUIRE_BROWSER=1)', () => {
      throw new Error(`CI_REQUIRE_BROWSER=1 and ${SKIP_REASON}: the browser test cannot be skipped`);
    });
  });
}

const ME = '971500000001';
const OTHER = '971500000009';
const THIRD = '971500000010';
const MESSAGES = JSON.parse(readFileSync(join(ROOT, 'config', 'messages.json'), 'utf8'));
const ARABIC = /\p{Script=Arabic}/u;
/** The language of a reply, the doctors' Latin names and the clinic's name aside. */
const languageOf = (text: string, clinicName: string): string =>
  detectLanguage(text.replaceAll(clinicName, '').replace(/Dr\. [A-Za-z]+(?: [A-Za-z]+)?/g, ''));

describeInBrowser(`the /sandbox page in Chromium${CHROMIUM ? '' : ` (skipped: ${SKIP_REASON})`}`, () => {
  let t: TestApp;
  let browser: Browser;
  let page: Page;
  const dialogs: string[] = [];
  const problems: string[] = [];

  const count = (selector: string): Promise<number> => page.locator(selector).count();
  const replies = (): Promise<number> => count('.bubble.in');
  const waitForReplies = (n: number): Promise<unknown> =>
    page.waitForFunction((want) => document.querySelectorAll('.bubble.in').length >= want, n, { timeout: 20_000 });
  const send = async (text: string): Promise<void> => {
    await page.fill('#text', text);
    await page.press('#text', 'Enter');
  };
  /** Sends a message and waits for the next reply bubble; returns its text. */
  const ask = async (text: string): Promise<string> => {
    const before = await replies();
    await send(text);
    await waitForReplies(before + 1);
    return (await page.locator('.bubble.in .text').nth(before).textContent()) ?? '';
  };
  const lastReply = async (): Promise<string> => (await page.locator('.bubble.in .text').last().textContent()) ?? '';
  const sendsTo = async (to: string): Promise<SandboxOutboxEntry[]> =>
    (await t.redis.lrange(sandboxOutboxKey(t.keys), 0, -1))
      .map((raw) => JSON.parse(raw) as SandboxOutboxEntry)
      .filter((e) => e.operation !== 'read' && e.payload.to === to);
  const duplicates = async (): Promise<number> => {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('tawasul_webhook_items_total{result="duplicate"}'));
    return line ? Number(line.split(' ').pop()) : 0;
  };
  const shot = async (name: string): Promise<void> => {
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, name) });
  };

  beforeAll(async () => {
    t = await startTestApp({
      BSP_PROVIDER: 'sandbox',
      WHATSAPP_APP_SECRET: undefined,
      WHATSAPP_VERIFY_TOKEN: undefined,
      WHATSAPP_PHONE_NUMBER_ID: undefined,
      META_ACCESS_TOKEN: undefined,
      LLM_PROVIDER: 'offline',
      TURN_DEBOUNCE_MS: '0',
    });
    // Root in CI: Chromium's own sandbox needs user namespaces a container may not have.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    const context = await browser.newContext({
      viewport: { width: 1280, height: 800 },
      locale: 'en-US',
      timezoneId: 'Asia/Dubai',
    });
    page = await context.newPage();
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  it('opens with the stream ready, the number and the empty chat state', async () => {
    const res = await page.goto(`${t.url}/sandbox`);
    expect(res?.status()).toBe(200);
    await page.waitForSelector('#text:not([disabled])', { timeout: 15_000 });
    expect(await page.inputValue('#wa-id')).toBe(ME);
    expect(await page.textContent('#clinic-name')).toBe(t.config.env.CLINIC_NAME);
    expect(await page.textContent('#st-window')).toContain('not opened');
    expect(await page.getAttribute('#text', 'dir')).toBe('auto');
  });

  it('a message in English and one in Arabic each get a reply in their language, after the typing dots', async () => {
    // When the dots appear and go, and when the first reply bubble is added, on the page's clock.
    await page.evaluate(() => {
      const seen: Record<string, number[]> = { shown: [], hidden: [], reply: [] };
      window.typingSeen = seen;
      const typing = document.getElementById('typing');
      new MutationObserver(() => seen[typing.hidden ? 'hidden' : 'shown'].push(performance.now())).observe(typing, {
        attributes: true,
        attributeFilter: ['hidden'],
      });
      new MutationObserver((records: any[]) => {
        for (const r of records) {
          for (const node of r.addedNodes) if (node.classList?.contains('in')) seen.reply.push(performance.now());
        }
      }).observe(document.getElementById('messages'), { childList: true });
    });
    await send('Hello, I would like to book an appointment');
    await page.waitForSelector('#typing', { state: 'visible', timeout: 15_000 });
    expect(await page.textContent('#presence')).toBe('typing…');
    await waitForReplies(1);
    await page.waitForSelector('#typing', { state: 'hidden' });
    const seen = await page.evaluate(() => window.typingSeen);
    // The offline responder answers within milliseconds of its mark-read: the page holds the dots.
    expect(seen.reply[0] - seen.shown[0]).toBeGreaterThanOrEqual(650);
    expect(seen.hidden[0]).toBeGreaterThanOrEqual(seen.shown[0] + 650);

    await send('My name is Sara Ali');
    await waitForReplies(2);
    await send('أريد حجز موعد مع طبيب الأسنان غداً، من فضلك');
    await waitForReplies(3);
    expect(await replies()).toBe(3);
    expect(await sendsTo(ME)).toHaveLength(3);
    const [first, second, third] = await page.locator('.bubble.in .text').allTextContents();
    const clinic = t.config.env.CLINIC_NAME;
    expect([languageOf(first, clinic), languageOf(second, clinic)]).toEqual(['en', 'en']);
    expect(first).toContain('May I have your full name');
    expect(second).toContain('Thank you, Sara Ali.');
    // The Arabic reason gets an Arabic reply: Arabic letters, Arabic sentences, the free times.
    expect(third).toMatch(ARABIC);
    expect(languageOf(third, clinic)).toBe('ar');
    expect(third).toContain('أي موعد يناسبك؟');

    const bubbles = page.locator('.bubble.out .text');
    const arabic = bubbles.nth(2);
    expect(await arabic.getAttribute('dir')).toBe('auto');
    expect(await arabic.evaluate((el) => getComputedStyle(el).direction)).toBe('rtl');
    expect(await bubbles.nth(0).evaluate((el) => getComputedStyle(el).direction)).toBe('ltr');
    // Every reply bubble holds the text the sandbox BSP recorded, in order.
    const recorded = (await sendsTo(ME)).reverse().map((e) => (e.payload.text as { body: string }).body);
    expect(await page.locator('.bubble.in .text').allTextContents()).toEqual(recorded);
  });

  it('the Arabic list of free times reads right to left on every line: number, then time, then doctor', async () => {
    const lines = await page
      .locator('.bubble.in .text')
      .nth(2)
      .evaluate((p: any) => {
        const node = p.firstChild;
        const text: string = node.textContent;
        const leftOf = (from: number, to: number): number => {
          const range = document.createRange();
          range.setStart(node, from);
          range.setEnd(node, to);
          return range.getBoundingClientRect().left;
        };
        const found: { number: number; time: number; doctor: number }[] = [];
        for (const m of text.matchAll(
          /^\u200F?\u2066?(\d\))\u2069? \u2066?(\d\d:\d\d)\u2069? — \u2066?(Dr\. [^\u2069\n]+)/gmu,
        )) {
          const at = (part: string, after: number): [number, number] => {
            const start = text.indexOf(part, after);
            return [start, start + part.length];
          };
          const number = at(m[1], m.index);
          const time = at(m[2], number[1]);
          const doctor = at(m[3], time[1]);
          found.push({ number: leftOf(...number), time: leftOf(...time), doctor: leftOf(...doctor) });
        }
        return found;
      });
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const line of lines) {
      expect(line.number).toBeGreaterThan(line.time);
      expect(line.time).toBeGreaterThan(line.doctor);
    }
  });

  it("the bot's read receipts turn the patient's ticks blue, and the page's statuses tick the bot's messages", async () => {
    await page.waitForFunction(() => document.querySelectorAll('.bubble.out .ticks.read').length === 3, null, {
      timeout: 10_000,
    });
    await page.waitForFunction(
      () => [...document.querySelectorAll('.bubble.in')].every((b: any) => b.dataset.status === 'read'),
      null,
      { timeout: 10_000 },
    );
    // The statuses went through the status lanes: every reply's record is read.
    const ids = (await sendsTo(ME)).map((e) => e.id!);
    await waitUntil(
      'the records to be read',
      async () => {
        const statuses = await Promise.all(ids.map((id) => t.redis.hget(t.keys.outbound(id), 'status')));
        return statuses.every((s) => s === 'read');
      },
      10_000,
    );
  });

  it('a duplicate delivery gets no second reply', async () => {
    const before = await duplicates();
    await page.click('#act-duplicate');
    await page.waitForSelector('.chip.duplicate');
    await waitUntil('the duplicate to be counted', async () => (await duplicates()) === before + 1, 10_000);
    await page.waitForTimeout(1500);
    expect(await replies()).toBe(3);
    expect(await sendsTo(ME)).toHaveLength(3);
  });

  it('the side panel shows the open window, the bot in charge, the language, the cost and the turns', async () => {
    await page.click('#refresh');
    await page.waitForFunction(() => document.querySelectorAll('#turns tbody tr').length === 3, null, {
      timeout: 10_000,
    });
    const window = await page.textContent('#st-window');
    expect(window).toMatch(/^open/);
    expect(window).toMatch(/until .*\(2[34] h \d+ min left\)/);
    expect(await page.textContent('#st-handoff')).toBe('bot');
    expect(await page.isHidden('#resolve')).toBe(true);
    expect(await page.textContent('#st-language')).toBe('Arabic (ar)');
    expect(await page.textContent('#st-cost')).toMatch(/^\$\d+\.\d{4}$/);
    expect(await page.locator('#turns tbody td.ms').allTextContents()).toEqual([
      expect.stringMatching(/^\d+ ms$/),
      expect.stringMatching(/^\d+ ms$/),
      expect.stringMatching(/^\d+ ms$/),
    ]);

    await shot('sandbox-desktop-conversation.png');
  });

  it('a time picked by its Arabic-Indic number is booked: the reply gives the booking number, the panel lists it', async () => {
    const list = (await page.locator('.bubble.in .text').nth(2).textContent())!.replace(/[\u200F\u2066\u2069]/g, '');
    const second = /^2\) (\d\d:\d\d) — /m.exec(list)![1];
    const booked = await ask('٢');
    expect(booked).toContain('تم حجز موعدك يا Sara Ali');
    expect(booked.replace(/[\u2066\u2069]/g, '')).toContain(`الساعة ${second} مع`);
    const bookingId = /B-[0-9A-Z]{6}/.exec(booked)?.[0];
    expect(bookingId).toBeDefined();
    await page.locator(`#bookings li[data-booking-id="${bookingId}"]`).waitFor({ timeout: 10_000 });
    expect(await page.locator(`#bookings li[data-booking-id="${bookingId}"] .booking-patient`).textContent()).toBe(
      'Sara Ali',
    );
    await page.waitForFunction(
      () => [...document.querySelectorAll('.bubble.out .ticks')].every((t: any) => t.classList.contains('read')),
      null,
      { timeout: 10_000 },
    );
    await page.waitForFunction(
      () => [...document.querySelectorAll('.bubble.in')].every((b: any) => b.dataset.status === 'read'),
      null,
      { timeout: 10_000 },
    );
    await shot('sandbox-desktop-booking.png');
    if (process.env.UPDATE_DOCS_SCREENSHOT === '1' || !existsSync(DOCS_SCREENSHOT)) {
      mkdirSync(dirname(DOCS_SCREENSHOT), { recursive: true });
      await page.screenshot({ path: DOCS_SCREENSHOT });
    }
    // Thanks after the booking: the booked time and number again, not "the team will confirm".
    const thanks = await ask('شكراً');
    expect(thanks).toContain(bookingId);
    expect(thanks).toMatch(/^عفواً!/);
  });

  it('a message holding <script> shows as text and runs nothing', async () => {
    await ask('<script>alert(1)</script>');
    const texts = await page.locator('.bubble.out .text').allTextContents();
    expect(texts.at(-1)).toBe('<script>alert(1)</script>');
    expect(await count('#messages script')).toBe(0);
    expect(dialogs).toEqual([]);
  });

  it('a photo without a caption gets the "cannot read images" reply; one with a caption and a button reply are answered', async () => {
    expect(await page.inputValue('#text')).toBe('');
    let before = await replies();
    await page.click('#act-image');
    await page.waitForSelector('.bubble.out .photo');
    await waitForReplies(before + 1);
    // The chat is in English since the <script> message: the canned media text, in English.
    expect(await lastReply()).toBe(MESSAGES.unsupported_media.en);
    expect(await page.locator('.bubble.out').last().locator('.text').count()).toBe(0);

    before = await replies();
    await page.fill('#text', 'My prescription');
    await page.click('#act-image');
    await waitForReplies(before + 1);
    expect(await page.locator('.bubble.out .text').last().textContent()).toBe('My prescription');
    expect(await lastReply()).not.toBe(MESSAGES.unsupported_media.en);

    before = await replies();
    await page.click('#act-button');
    await page.click('#quick-replies button[data-id="book_appointment"]');
    await waitForReplies(before + 1);
    expect(await page.locator('.bubble.out .text').last().textContent()).toBe('Book an appointment');
    await shot('sandbox-desktop.png');
  });

  it('on a phone-sized screen the chat fits, and the panel opens over it', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    expect(await page.isVisible('#toggle-panel')).toBe(true);
    await shot('sandbox-phone.png');
    await page.click('#toggle-panel');
    await page.waitForFunction(() => {
      const panel = document.getElementById('panel')!.getBoundingClientRect();
      return panel.left >= 0 && panel.right <= window.innerWidth;
    });
    await page.waitForTimeout(300);
    await shot('sandbox-phone-panel.png');
    await page.click('#close-panel');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it('a message written 25 h ago is handed over without a reply, and Resolve hands the chat back', async () => {
    await page.fill('#wa-id', OTHER);
    await page.press('#wa-id', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('.bubble').length === 0);
    await page.waitForSelector('#text:not([disabled])');
    await page.fill('#text', 'Are you open on Friday?');
    await page.click('#act-late');
    await page.waitForSelector('#resolve:not([hidden])', { timeout: 15_000 });
    expect(await page.textContent('#st-handoff')).toMatch(/^human/);
    expect(await page.textContent('#st-window')).toMatch(/^closed/);
    expect(await replies()).toBe(0);
    expect(await sendsTo(OTHER)).toEqual([]);
    await page.click('#resolve');
    await page.waitForSelector('#resolve', { state: 'hidden' });
    expect(await page.textContent('#st-handoff')).toBe('bot');
    expect(problems).toEqual([]);
  });

  it("the side panel lists the demo clinic's bookings as text, read again when a reply arrives", async () => {
    expect(await page.isVisible('#clinic')).toBe(true);
    expect(await page.textContent('#clinic .clinic-api')).toBe('demo clinic API: /sandbox/clinic');
    const day = Array.from({ length: 7 }, (_, i) => clinicNow(Date.now() + (7 + i) * 24 * 3600_000).date).find(
      isWorkingDay,
    )!;
    const name = '<img src=x onerror=alert(1)> ليلى';
    const res = await fetch(`${t.url}/sandbox/clinic/bookings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ slotId: `${day}T09:30`, patientName: name }),
    });
    expect(res.status).toBe(201);
    const { bookingId } = (await res.json()) as { bookingId: string };
    // No refresh click: the reply to this message makes the page read the state again.
    await send('Thank you');
    await waitForReplies(1);
    const booking = page.locator(`#bookings li[data-booking-id="${bookingId}"]`);
    await booking.waitFor({ timeout: 10_000 });
    expect(await booking.locator('.booking-when').textContent()).toMatch(/ 09:30$/);
    expect(await booking.locator('.booking-id').textContent()).toBe(bookingId);
    expect(await booking.locator('.booking-patient').textContent()).toBe(name);
    expect(await booking.locator('.booking-who').textContent()).toBe(`${name} · Dr. Omar Khalil`);
    expect(await count('#bookings img')).toBe(0);
    expect(await page.isHidden('#bookings-empty')).toBe(true);
    expect(dialogs).toEqual([]);

    await page.setViewportSize({ width: 390, height: 844 });
    await page.click('#toggle-panel');
    await page.waitForTimeout(300);
    const fits = await page.evaluate(() => {
      const card = document.getElementById('clinic')!.getBoundingClientRect();
      return card.left >= 0 && card.right <= window.innerWidth && document.documentElement.scrollWidth <= 390;
    });
    expect(fits).toBe(true);
    await page.locator('#clinic').scrollIntoViewIfNeeded();
    await shot('sandbox-phone-bookings.png');
    await page.click('#close-panel');
    await page.setViewportSize({ width: 1280, height: 800 });
    expect(problems).toEqual([]);
  });

  it("the issue's own sentences: an Arabic FAQ question gets the Arabic answer, an Arabic complaint is handed over in Arabic", async () => {
    await page.fill('#wa-id', THIRD);
    await page.press('#wa-id', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('.bubble').length === 0);
    await page.waitForSelector('#text:not([disabled])');
    const clinic = t.config.env.CLINIC_NAME;

    const hours = await ask('ما هي ساعات العمل؟');
    expect(hours).toMatch(ARABIC);
    expect(languageOf(hours, clinic)).toBe('ar');
    expect(hours).toContain('من الاثنين إلى الجمعة');

    const complaint = await ask('مرحبا، أريد تقديم شكوى');
    expect(complaint).toBe(MESSAGES.handoff.ar.replace('{{clinicName}}', clinic));
    // Not read as a name: no "Thank you, <the message>", no booking question.
    expect(complaint).not.toContain('أريد تقديم شكوى');
    await page.waitForSelector('#resolve:not([hidden])', { timeout: 15_000 });
    expect(await page.textContent('#st-handoff')).toMatch(/^human/);
    expect(await page.textContent('#st-language')).toBe('Arabic (ar)');
    await shot('sandbox-desktop-complaint.png');
    expect(problems).toEqual([]);
  });
});
