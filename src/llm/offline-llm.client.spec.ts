import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppConfig } from '../config/app-config';
import { validateEnv } from '../config/validate-env';
import { testEnv } from '../../test/utils/test-env';
import { parseActions, toolsOf } from '../actions/action-catalog';
import { MetricsService } from '../metrics/metrics.service';
import { detectLanguage } from './language';
import { LlmError } from './llm.client';
import { buildLlmRequest, type HistoryEntry } from './llm-request.builder';
import { LlmSetupError } from './llm-setup.error';
import { extractName, OfflineLlmClient } from './offline-llm.client';
import { loadReceptionistScript, parseReceptionistScript, TEXT_KEYS } from './receptionist-script';

const SHIPPED = 'config/receptionist.json';
const shipped = (): Record<string, any> => JSON.parse(readFileSync(SHIPPED, 'utf8'));
const script = loadReceptionistScript(SHIPPED);

const clientWith = (env: Record<string, string> = {}): OfflineLlmClient =>
  new OfflineLlmClient(new AppConfig(validateEnv(testEnv({ CLINIC_NAME: 'Al Noor Clinic', ...env }))), script);

/** Plays a conversation turn by turn, feeding the bot's replies back as history, as the worker does. */
async function converse(client: OfflineLlmClient, turns: string[][]): Promise<string[]> {
  const history: HistoryEntry[] = [];
  const replies: string[] = [];
  for (const turn of turns) {
    const request = buildLlmRequest({ systemPrompt: 'system prompt', history, turnMessages: turn });
    const reply = await client.complete(request);
    expect(reply.finishReason).toBe('stop');
    history.push({ role: 'user', text: turn.join('\n') });
    history.push({ role: 'assistant', text: reply.content });
    replies.push(reply.content);
  }
  return replies;
}
const say = (client: OfflineLlmClient, ...messages: string[]): Promise<string[]> =>
  converse(
    client,
    messages.map((m) => [m]),
  );

const GREETING_EN = "Hello, and welcome to Al Noor Clinic! I am the clinic's virtual assistant.";
const GREETING_AR = 'مرحباً بك في Al Noor Clinic! أنا المساعد الافتراضي للعيادة.';
const MENU_EN =
  'How can I help you today? I can book an appointment for you, or tell you our opening hours, location, services and prices.';
const ASK_NAME_EN = 'May I have your full name, please?';
const ASK_NAME_AR = 'هل يمكنني معرفة اسمك الكامل من فضلك؟';
const ASK_TIME_EN = 'When would you like to come in? For example: tomorrow morning, or Sunday after 4 pm.';
const HOURS_EN = 'Al Noor Clinic is open Monday to Friday from 9 am to 5 pm, and closed on Saturday and Sunday.';

describe('OfflineLlmClient: the booking flow', () => {
  it('English: greeting, name, reason, preferred time, then a confirmation that the clinic confirms the slot', async () => {
    const replies = await say(
      clientWith(),
      'Hi, I would like to book an appointment',
      'My name is Sara Ali.',
      'I need a dental check-up',
      'Tomorrow morning if possible',
      'thanks!',
    );
    expect(replies).toEqual([
      `${GREETING_EN} ${ASK_NAME_EN}`,
      'Thank you, Sara Ali. What is the reason for your visit?',
      `Thank you, noted. ${ASK_TIME_EN}`,
      'Thank you, Sara Ali. I have noted your request (reason: I need a dental check-up; preferred time: Tomorrow morning if possible). The Al Noor Clinic team will confirm the exact slot with you here shortly.',
      'You are welcome! Your request is with the Al Noor Clinic team: they will confirm the slot with you shortly.',
    ]);
  });

  it('Arabic: the whole flow in Arabic, a greeting with a request is no name, CLINIC_PHONE kept left-to-right', async () => {
    const replies = await say(
      clientWith({ CLINIC_PHONE: '+971 4 123 4567' }),
      'مرحبا، أريد حجز موعد',
      'السلام عليكم',
      'اسمي أحمد',
      'عندي ألم في الأسنان',
      'غداً صباحاً',
      'شكراً',
    );
    expect(replies[0]).toBe(`${GREETING_AR} ${ASK_NAME_AR}`);
    // A greeting at the name question is asked again, not taken for a name.
    expect(replies[1]).toBe(ASK_NAME_AR);
    expect(replies[2]).toBe('شكراً لك يا أحمد. ما سبب زيارتك؟');
    expect(replies[3]).toBe(
      'شكراً لك، تم تسجيل ذلك. متى تفضّل أن تزورنا؟ مثلاً: غداً صباحاً، أو يوم الأحد بعد الساعة 4 عصراً.',
    );
    expect(replies[4]).toBe(
      'شكراً لك يا أحمد. لقد سجّلت طلبك (السبب: عندي ألم في الأسنان، الوقت المفضّل: غداً صباحاً). سيتواصل معك فريق Al Noor Clinic هنا قريباً لتأكيد الموعد بالضبط. وإذا كان الأمر عاجلاً يمكنك الاتصال بنا على الرقم \u2066+971 4 123 4567\u2069.',
    );
    expect(replies[5]).toBe('عفواً! طلبك لدى فريق Al Noor Clinic، وسيتواصلون معك قريباً لتأكيد الموعد.');
    for (const reply of replies) expect(detectLanguage(reply)).toBe('ar');
  });

  it('never takes a greeting, a question, a request or an "ok" for a name; says when it did not catch one', async () => {
    const replies = await say(
      clientWith(),
      'book an appointment',
      'Good morning, how are you?',
      'What are your opening hours?',
      'I want to book an appointment',
      'ok',
      '12345',
      'Hi, I am Lina Haddad',
    );
    expect(replies[1]).toBe(ASK_NAME_EN);
    expect(replies[2]).toBe(`${HOURS_EN} ${ASK_NAME_EN}`);
    expect(replies[3]).toBe(ASK_NAME_EN);
    expect(replies[4]).toBe(ASK_NAME_EN);
    expect(replies[5]).toBe(`Sorry, I did not catch your name. ${ASK_NAME_EN}`);
    expect(replies[6]).toBe('Thank you, Lina Haddad. What is the reason for your visit?');
  });

  it('answers an FAQ question in the middle of the booking and asks its question again', async () => {
    const replies = await say(clientWith(), 'appointment please', 'Omar', 'كم سعر الاستشارة؟', 'Back pain');
    expect(replies[2]).toMatch(/^تبلغ تكلفة الاستشارة .* ما سبب زيارتك؟$/);
    expect(replies[3]).toBe(`Thank you, noted. ${ASK_TIME_EN}`);
  });

  it('"no" during the booking cancels it; asking again later starts where it stopped', async () => {
    const replies = await say(clientWith(), 'I want to book', 'Huda', 'no, not now', 'book an appointment');
    expect(replies[2]).toBe(`No problem. ${MENU_EN}`);
    expect(replies[3]).toBe('What is the reason for your visit?');
  });

  it('offers a booking after an FAQ answer; "yes" starts it, and a second booking keeps the name', async () => {
    const replies = await say(
      clientWith(),
      'Where are you located?',
      'yes please',
      'Nour',
      'skin rash',
      'Monday 10:00',
      'I need another appointment',
    );
    expect(replies[0]).toMatch(/Al Wasl Road.* Would you like to book an appointment\?$/);
    expect(replies[1]).toBe(ASK_NAME_EN);
    expect(replies[4]).toMatch(/preferred time: Monday 10:00\)/);
    expect(replies[5]).toBe('What is the reason for your visit?');
  });

  it('answers a burst turn (several messages) as one', async () => {
    const replies = await converse(clientWith(), [
      ['Hi', 'is anyone there?', 'I want an appointment'],
      ['Nour', 'Nour Hassan'],
    ]);
    expect(replies[0]).toBe(`${GREETING_EN} ${ASK_NAME_EN}`);
    expect(replies[1]).toBe('Thank you, Nour. What is the reason for your visit?');
  });
});

describe('OfflineLlmClient: FAQ, greetings, not understanding, languages', () => {
  it('answers an FAQ question in English, then offers to book', async () => {
    const [reply] = await say(clientWith(), 'What are your opening hours?');
    expect(reply).toBe(`${GREETING_EN} ${HOURS_EN} Would you like to book an appointment?`);
  });

  it('answers an FAQ question in Arabic, matching after normalisation and with a clitic (بالأسعار)', async () => {
    const replies = await say(clientWith(), 'السلام عليكم', 'ممكن تعطيني فكرة بالأسعار؟', 'وين موقعكم');
    expect(replies[1]).toBe(
      'تبلغ تكلفة الاستشارة لدى الطبيب العام 250 درهماً، ولدى الأخصائي 400 درهم، وفحص الأسنان مع التنظيف 350 درهماً. نقبل معظم بطاقات التأمين، يرجى إحضار بطاقتك عند الزيارة. هل تودّ حجز موعد؟',
    );
    expect(replies[2]).toMatch(/^تقع Al Noor Clinic في شارع الوصل.* هل تودّ حجز موعد؟$/);
  });

  it('matches whole words only: "reopened" and "shopping" are no FAQ keywords', async () => {
    const [reply] = await say(clientWith(), 'shopping reopened');
    expect(reply).toBe(`${GREETING_EN} Sorry, I did not understand that. ${MENU_EN}`);
  });

  it('greets once and says what it can do; a later greeting only gets the menu', async () => {
    expect(await say(clientWith(), 'Hello', 'hi')).toEqual([`${GREETING_EN} ${MENU_EN}`, MENU_EN]);
    expect(await say(clientWith(), 'السلام عليكم')).toEqual([
      `${GREETING_AR} كيف يمكنني مساعدتك اليوم؟ يمكنني حجز موعد لك، أو إخبارك بمواعيد العمل والموقع والخدمات والأسعار.`,
    ]);
  });

  it('"what?" gets a plain "did not understand" with what it can do, in either language', async () => {
    expect(await say(clientWith(), 'hello', 'what?')).toEqual([
      `${GREETING_EN} ${MENU_EN}`,
      `Sorry, I did not understand that. ${MENU_EN}`,
    ]);
    const [arabic] = await say(clientWith(), 'شو؟');
    expect(arabic).toBe(
      `${GREETING_AR} عذراً، لم أفهم رسالتك. كيف يمكنني مساعدتك اليوم؟ يمكنني حجز موعد لك، أو إخبارك بمواعيد العمل والموقع والخدمات والأسعار.`,
    );
  });

  it('mixed Arabic and English: keywords of both languages match; the reply follows the main language', async () => {
    // Mostly Arabic letters, booking asked in Arabic: Arabic; a Latin-script name keeps it Arabic.
    const arabic = await say(clientWith(), 'Hi, أريد حجز موعد please', 'Sara Smith');
    expect(arabic).toEqual([`${GREETING_AR} ${ASK_NAME_AR}`, 'شكراً لك يا Sara Smith. ما سبب زيارتك؟']);
    // Mostly English, FAQ keyword in Arabic: the English answer.
    const [english] = await say(clientWith(), 'Hello, what are the أسعار for a consultation?');
    expect(english).toMatch(/^Hello, and welcome .* A consultation with a general practitioner costs AED 250/);
  });

  it('follows the language of the latest message', async () => {
    const replies = await say(clientWith(), 'مرحبا', 'What are your opening hours?');
    expect(detectLanguage(replies[0])).toBe('ar');
    expect(replies[1]).toBe(`${HOURS_EN} Would you like to book an appointment?`);
  });

  it('reads its state from the request only: a human reply in between ends the question it asked', async () => {
    const client = clientWith();
    const request = buildLlmRequest({
      systemPrompt: 's',
      history: [
        { role: 'user', text: 'I want to book' },
        { role: 'assistant', text: `${GREETING_EN} ${ASK_NAME_EN}` },
        { role: 'user', text: 'Rania' },
        { role: 'assistant', text: 'Hi Rania, this is Dana from the front desk. How can I help?' },
      ],
      turnMessages: ['Zaid'],
    });
    expect((await client.complete(request)).content).toBe(`Sorry, I did not understand that. ${MENU_EN}`);
  });

  it('is deterministic: the same messages give the same reply (a retried turn repeats itself)', async () => {
    const client = clientWith({ CLINIC_PHONE: '+971 4 000 0000' });
    const request = buildLlmRequest({
      systemPrompt: 's',
      history: [
        { role: 'user', text: 'hi, appointment' },
        { role: 'assistant', text: `Hello! ${ASK_NAME_EN}` },
      ],
      turnMessages: ['Mona'],
    });
    const first = await client.complete(request);
    expect(first.content).toBe('Thank you, Mona. What is the reason for your visit?');
    expect(await client.complete(JSON.parse(JSON.stringify(request)))).toEqual(first);
    expect(await clientWith({ CLINIC_PHONE: '+971 4 000 0000' }).complete(request)).toEqual(first);
  });

  it('rejects a request without a user message with an LlmError and counts it', async () => {
    const metrics = new MetricsService();
    const client = new OfflineLlmClient(new AppConfig(validateEnv(testEnv())), script, metrics);
    await expect(client.complete({ messages: [{ role: 'system', content: 's' }] })).rejects.toBeInstanceOf(LlmError);
    const errors = (await metrics.llmFailures.get()).values.find((v) => v.labels.kind === 'error');
    expect(errors?.value).toBe(1);
  });
});

describe('extractName', () => {
  it.each([
    ['Sara', 'Sara'],
    ['My name is Sara Ali.', 'Sara Ali'],
    ["I'm John", 'John'],
    ['Hi, I’m John', 'John'],
    ['Imran', 'Imran'],
    ['Name: Huda', 'Huda'],
    ['انس', 'انس'],
    ['اسمي أحمد', 'أحمد'],
    ['انا اسمي أحمد', 'أحمد'],
    ['السلام عليكم، اسمي فاطمة.', 'فاطمة'],
    ['\nMaryam\nsecond line', 'Maryam'],
    ['👍', undefined],
    ['what?', undefined],
    ['what', undefined],
    ['Hello', undefined],
    ['مرحبا، أريد حجز موعد', undefined],
    ['ما هي المواعيد؟', undefined],
    ['I need a dentist', undefined],
    ['room 12', undefined],
    ['Thank you', undefined],
    ['one two three four five six', undefined],
  ])('%j -> %j', (text, name) => {
    expect(extractName(text, script)).toBe(name);
  });
});

describe('RECEPTIONIST_FILE validation', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tawasul-receptionist-'));
  const write = (content: unknown): string => {
    const file = join(dir, `r${Math.random().toString(16).slice(2)}.json`);
    writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
    return file;
  };
  const problemsOf = (json: unknown): string[] => parseReceptionistScript(json).problems;

  it('the shipped file is valid: every text in both languages, FAQ on hours, location, services and prices', () => {
    expect(problemsOf(shipped())).toEqual([]);
    for (const key of TEXT_KEYS) {
      expect(detectLanguage(script.texts[key].en.replace(/\{\{\w+\}\}/g, ''))).toBe('en');
      expect(detectLanguage(script.texts[key].ar.replace(/\{\{\w+\}\}/g, ''))).toBe('ar');
    }
    expect(script.faq.map((f) => f.topic)).toEqual(['opening hours', 'location', 'services', 'prices']);
  });

  it('reports every problem, one line each, naming where it is', () => {
    const json = shipped();
    delete json.texts.askTime;
    json.texts.menu.ar = '';
    json.texts.greeting.en = 'Welcome to {{clinic}}!';
    json.texts.askName.en = 'May I have your name, {{name}}?';
    json.texts.notAName.en = 'Sorry. What is the reason for your visit?';
    json.texts.welcome.ar = 'You are welcome!';
    json.texts.urgent.en = 'Call us.';
    json.texts.extra = { en: 'x', ar: 'س' };
    json.words.thanks.ar = [];
    json.words.yes.en.push('ok');
    json.words.no.ar.push('no');
    json.words.pick.en.push('not');
    delete json.days.friday;
    json.days.someday = { en: ['someday'], ar: ['يوما'] };
    json.faq[1].keywords.en.push('hours');
    delete json.faq[2].answer.ar;
    json.faq.push('prices');
    json.surprise = true;
    expect(problemsOf(json).sort()).toEqual(
      [
        'surprise: unknown key; known: words, days, texts, faq',
        'words.pick: "not" is also a negation word',
        'days.friday: missing',
        'days.someday: unknown day',
        'words.thanks.ar: must be a non-empty list of words',
        'words.yes.en[11]: "ok" repeats "ok" of words.yes.en once normalised',
        'words.no.ar[6]: "no" is not Arabic',
        'texts.extra: unknown text',
        'texts.greeting.en: unknown placeholder {{clinic}} (allowed here: {{clinicName}})',
        'texts.menu.ar: missing or empty',
        'texts.notAName.en: contains the askReason question; the receptionist could no longer tell what it asked',
        'texts.askName.en: unknown placeholder {{name}} (none allowed here)',
        'texts.askTime: missing',
        'texts.urgent.en: must mention {{clinicPhone}} (it is only added when CLINIC_PHONE is set)',
        'texts.welcome.ar: is not written in Arabic',
        'faq[1].keywords.en[8]: "hours" repeats "hours" of faq[0].keywords.en once normalised',
        'faq[2].answer.ar: missing or empty',
        'faq[4]: must be an object with topic, keywords and answer',
      ].sort(),
    );
  });

  it('a file that is not the right shape says so', () => {
    expect(problemsOf([])).toEqual(['must be a JSON object with words, days, texts and faq']);
    expect(problemsOf({})).toEqual([
      'words: must be an object with greeting, booking, thanks, yes, no, question, pick, negation, morning, afternoon',
      'days: must be an object with today, tomorrow, sunday, monday, tuesday, wednesday, thursday, friday, saturday',
      `texts: must be an object with ${TEXT_KEYS.join(', ')}`,
      'faq: must be a non-empty list of { topic, keywords, answer }',
    ]);
  });

  it('at start-up: an unreadable file is one line; a broken one is one line per problem, each naming the variable', () => {
    expect(() => loadReceptionistScript(join(dir, 'nope.json'))).toThrow(
      /^RECEPTIONIST_FILE: cannot read .*nope\.json .*ENOENT$/,
    );
    expect(() => loadReceptionistScript(write('{ not json'))).toThrow(/^RECEPTIONIST_FILE: cannot read .*JSON/);
    const json = shipped();
    json.texts.menu.en = '';
    delete json.faq[0].answer;
    const file = write(json);
    let error: unknown;
    try {
      loadReceptionistScript(file);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(LlmSetupError);
    expect((error as Error).message.split('\n')).toEqual([
      `RECEPTIONIST_FILE: ${file}: texts.menu.en: missing or empty`,
      `RECEPTIONIST_FILE: ${file}: faq[0].answer: must be an object with en and ar texts`,
    ]);
  });
});

describe('OfflineLlmClient: booking through the clinic actions when they are offered', () => {
  const tools = toolsOf(parseActions(JSON.parse(readFileSync('config/examples/actions.clinic.json', 'utf8'))).actions);
  type ClinicAnswer = { ok: boolean; status: number; result?: unknown };
  type Clinic = (name: string, args: Record<string, any>) => ClinicAnswer;
  const free = (date: string, times: string[]): ClinicAnswer => ({
    ok: true,
    status: 200,
    result: {
      date,
      open: true,
      slots: times.map((time, i) => ({ id: `${date}T${time}`, date, time, doctor: i % 2 ? 'Dr. Omar' : 'Dr. Sara' })),
    },
  });
  const booked = (args: Record<string, any>): ClinicAnswer => ({
    ok: true,
    status: 201,
    result: {
      bookingId: 'B-7K2M9Q',
      slotId: args.slotId,
      date: args.slotId.slice(0, 10),
      time: args.slotId.slice(11),
      doctor: 'Dr. Omar',
    },
  });
  const TOMORROW = new Date(Date.now() + 4 * 3600_000 + 86_400_000).toISOString().slice(0, 10);

  /**
   * Plays turns as the worker's tool loop does: calls go to `clinic`, their results come back as
   * tool messages within the turn, and only the texts enter the history.
   */
  async function book(turns: string[], clinic: Clinic): Promise<{ replies: string[]; calls: [string, any][] }> {
    const client = clientWith();
    const history: HistoryEntry[] = [];
    const replies: string[] = [];
    const calls: [string, any][] = [];
    for (const turn of turns) {
      const request = { ...buildLlmRequest({ systemPrompt: 'system prompt', history, turnMessages: [turn] }), tools };
      let reply = await client.complete(request);
      for (let round = 0; reply.toolCalls && round < 4; round++) {
        expect(reply.finishReason).toBe('tool_calls');
        request.messages.push({ role: 'assistant', content: reply.content, toolCalls: reply.toolCalls });
        for (const call of reply.toolCalls) {
          const args = JSON.parse(call.arguments);
          calls.push([call.name, args]);
          request.messages.push({
            role: 'tool',
            toolCallId: call.id,
            content: JSON.stringify(clinic(call.name, args)),
          });
        }
        reply = await client.complete(request);
      }
      expect(reply.toolCalls).toBeUndefined();
      history.push({ role: 'user', text: turn }, { role: 'assistant', text: reply.content });
      replies.push(reply.content);
    }
    return { replies, calls };
  }

  const happyClinic: Clinic = (name, args) =>
    name === 'find_free_slots' ? free(args.date, ['09:00', '09:30', '10:30']) : booked(args);

  it('English: lists tomorrow’s free times instead of asking for one, and books the one picked by its number', async () => {
    const { replies, calls } = await book(
      ['I would like to book an appointment', 'Sara Ali', 'a dental check-up', '2'],
      happyClinic,
    );
    expect(calls).toEqual([
      ['find_free_slots', { date: TOMORROW }],
      ['book_appointment', { slotId: `${TOMORROW}T09:30`, patientName: 'Sara Ali', reason: 'a dental check-up' }],
    ]);
    expect(replies[2]).toContain(`Thank you, noted. These times are free on `);
    expect(replies[2]).toContain(`${TOMORROW}:`);
    expect(replies[2]).toContain('\n1) 09:00 — Dr. Sara\n2) 09:30 — Dr. Omar\n3) 10:30 — Dr. Sara\n');
    expect(replies[2].endsWith('Which time suits you? Reply with its number.')).toBe(true);
    expect(replies[3]).toBe(
      `Your appointment is booked, Sara Ali: ${TOMORROW} at 09:30 with Dr. Omar. Your booking number is B-7K2M9Q.`,
    );
  });

  it('Arabic: the same booking, the slot picked with an Arabic-Indic digit, every reply in Arabic', async () => {
    const { replies, calls } = await book(['أريد حجز موعد', 'اسمي أحمد', 'ألم في الأسنان', '٣'], happyClinic);
    expect(calls.at(-1)).toEqual([
      'book_appointment',
      { slotId: `${TOMORROW}T10:30`, patientName: 'أحمد', reason: 'ألم في الأسنان' },
    ]);
    for (const reply of replies) expect(detectLanguage(reply.replace(/Dr\. \w+/g, ''))).toBe('ar');
    expect(replies[2]).toContain('أي موعد يناسبك؟ أرسل رقمه.');
    expect(replies[3]).toContain('تم حجز موعدك يا أحمد');
    expect(replies[3]).toContain('B-7K2M9Q');
  });

  it('a time typed instead of a number picks that slot; an answer that names no listed slot lists them again', async () => {
    const { replies, calls } = await book(
      ['book please', 'Sara Ali', 'check-up', 'whenever', 'the 10:30 one'],
      happyClinic,
    );
    expect(replies[3]).toMatch(
      /^Sorry, I could not tell which time you chose\. .* These times are free on .*\n1\) 09:00/s,
    );
    expect(calls.filter(([name]) => name === 'find_free_slots')).toHaveLength(2);
    expect(calls.at(-1)).toEqual(['book_appointment', expect.objectContaining({ slotId: `${TOMORROW}T10:30` })]);
    expect(replies[4]).toContain('at 10:30');
  });

  it('a slot taken meanwhile: says so, lists the free times again, and books the next pick with the same name and reason', async () => {
    let taken = false;
    const clinic: Clinic = (name, args) => {
      if (name === 'find_free_slots') return free(args.date, taken ? ['10:30', '11:00'] : ['09:00', '10:30']);
      if (args.slotId.endsWith('09:00')) {
        taken = true;
        return { ok: false, status: 409, result: undefined };
      }
      return booked(args);
    };
    const { replies, calls } = await book(['appointment', 'Sara Ali', 'check-up', '1', '2'], clinic);
    expect(replies[3]).toMatch(
      /^Sorry, that time has just been taken\. These times are free on .*\n1\) 10:30.*\n2\) 11:00/s,
    );
    expect(calls.at(-1)).toEqual([
      'book_appointment',
      { slotId: `${TOMORROW}T11:00`, patientName: 'Sara Ali', reason: 'check-up' },
    ]);
    expect(replies[4]).toContain('Your appointment is booked, Sara Ali');
  });

  it('a closed day moves to the next open one; no free time at all falls back to a preferred time the team confirms', async () => {
    const closed: Clinic = (name, args) =>
      args.date === TOMORROW
        ? { ok: true, status: 200, result: { date: TOMORROW, open: false, slots: [], nextOpenDate: '2030-01-07' } }
        : free(args.date, ['08:00']);
    const open = await book(['appointment', 'Sara Ali', 'check-up'], closed);
    expect(open.calls).toEqual([
      ['find_free_slots', { date: TOMORROW }],
      ['find_free_slots', { date: '2030-01-07' }],
    ]);
    expect(open.replies[2]).toContain('Monday 2030-01-07:\n1) 08:00');

    const none = await book(['appointment', 'Sara Ali', 'check-up', 'Sunday evening'], (_n, args) =>
      free(args.date, []),
    );
    expect(none.replies[2]).toContain(`I could not find a free time on `);
    expect(none.replies[2]).toContain(ASK_TIME_EN);
    expect(none.replies[3]).toContain('The Al Noor Clinic team will confirm the exact slot with you here shortly.');
    expect(none.calls.map(([name]) => name)).toEqual(['find_free_slots']);
  });

  it('a booking the clinic did not confirm (an error, an unknown outcome) is left to the team, never asked again', async () => {
    const failing: Clinic = (name, args) =>
      name === 'find_free_slots' ? free(args.date, ['09:00']) : { ok: false, status: 500 };
    const { replies, calls } = await book(['appointment', 'Sara Ali', 'check-up', '1'], failing);
    expect(calls.filter(([name]) => name === 'book_appointment')).toHaveLength(1);
    expect(replies[3]).toBe(
      'I could not complete the booking in our system just now. The Al Noor Clinic team will confirm your appointment here shortly.',
    );
  });

  const LISTED = ['appointment', 'Sara Ali', 'check-up'];
  const LISTED_AR = ['أريد حجز موعد', 'اسمي أحمد', 'ألم في الأسنان'];
  const NOT_A_PICK_EN = 'Sorry, I could not tell which time you chose.';
  const NOT_A_PICK_AR = 'عذراً، لم أفهم أي موعد اخترت.';
  const bookings = (calls: [string, any][]): string[] =>
    calls.filter(([name]) => name === 'book_appointment').map(([, args]) => args.slotId);

  it.each([
    ['2'],
    ['٢'],
    ['option 2'],
    ['Number 2, please'],
    ['the 2nd one'],
    ['ok 2'],
    ['slot #2'],
    ['09:30'],
    ['at 9.30am please'],
    ['٠٩:٣٠'],
    ['الخيار ٢'],
    ['رقم ٢ من فضلك'],
    ['الساعة ٩:٣٠'],
    ['تمام، ٢'],
  ])('%j is a choice of the second time (09:30) and books it', async (pick) => {
    const { replies, calls } = await book([...LISTED, pick], happyClinic);
    expect(bookings(calls)).toEqual([`${TOMORROW}T09:30`]);
    expect(replies[3]).toMatch(/^(Your appointment is booked|تم حجز موعدك)/);
  });

  it.each([
    ['not 2, something later', 'en'],
    ['<script>alert(1)</script>', 'en'],
    ['2 or 3', 'en'],
    ["I don't want 2", 'en'],
    ['no 2', 'en'],
    ['2 is too early', 'en'],
    ['11:00', 'en'],
    ['5', 'en'],
    ['لا ٢، بعدين', 'ar'],
    ['مش ٢', 'ar'],
    ['ليس ٢', 'ar'],
    ['غير ٢', 'ar'],
    ['لا أريد رقم ٢', 'ar'],
  ])('%j is no choice: nothing is booked, it says so and lists the same times again', async (text, language) => {
    const { replies, calls } = await book([...(language === 'ar' ? LISTED_AR : LISTED), text], happyClinic);
    expect(bookings(calls)).toEqual([]);
    expect(calls.filter(([name]) => name === 'find_free_slots').map(([, args]) => args.date)).toEqual([
      TOMORROW,
      TOMORROW,
    ]);
    expect(replies[3].startsWith(language === 'ar' ? NOT_A_PICK_AR : NOT_A_PICK_EN)).toBe(true);
    expect(replies[3].replace(/[\u200F\u2066\u2069]/g, '')).toContain('1) 09:00 — Dr. Sara\n2) 09:30 — Dr. Omar\n');
    expect(detectLanguage(replies[3].replace(/Dr\. \w+/g, ''))).toBe(language);
  });

  it('English: after refusals the patient still books the time they then choose, and only that one', async () => {
    const { replies, calls } = await book(
      [...LISTED, 'not 2, something later', '<script>alert(1)</script>', 'option 3 please'],
      happyClinic,
    );
    expect(replies[3]).toMatch(/^Sorry, I could not tell which time you chose\. For another day, just name it/);
    expect(replies[3].endsWith('Which time suits you? Reply with its number.')).toBe(true);
    expect(replies[4].startsWith(NOT_A_PICK_EN)).toBe(true);
    expect(bookings(calls)).toEqual([`${TOMORROW}T10:30`]);
    expect(replies[5]).toContain('at 10:30');
  });

  /** The clinic's next `weekday` (0 Sunday … 6 Saturday) after today, in its own calendar (UTC+4). */
  const next = (weekday: number): string => {
    const today = new Date(Date.now() + 4 * 3600_000).getUTCDay();
    const ahead = (weekday - today + 7) % 7 || 7;
    return new Date(Date.now() + 4 * 3600_000 + ahead * 86_400_000).toISOString().slice(0, 10);
  };
  const dayClinic: Clinic = (name, args) =>
    name === 'find_free_slots' ? free(args.date, ['09:00', '09:30', '13:00', '14:30', '16:00']) : booked(args);
  const finds = (calls: [string, any][]): string[] =>
    calls.filter(([name]) => name === 'find_free_slots').map(([, args]) => args.date);

  it.each([
    ['Can I come on Thursday afternoon instead?', next(4), ['13:00', '14:30', '16:00'], 'en'],
    ['thursday', next(4), ['09:00', '09:30', '13:00', '14:30'], 'en'],
    ['not Thursday, Friday morning', next(5), ['09:00', '09:30'], 'en'],
    ['tomorrow afternoon please', TOMORROW, ['13:00', '14:30', '16:00'], 'en'],
    ['any time in the afternoon?', TOMORROW, ['13:00', '14:30', '16:00'], 'en'],
    ['الخميس', next(4), ['09:00', '09:30', '13:00', '14:30'], 'ar'],
    ['ممكن يوم الخميس العصر بدل بكرة؟', next(4), ['13:00', '14:30', '16:00'], 'ar'],
    ['بكرة', TOMORROW, ['09:00', '09:30', '13:00', '14:30'], 'ar'],
    ['غداً مساءً', TOMORROW, ['13:00', '14:30', '16:00'], 'ar'],
    ['مش الخميس، الاثنين', next(1), ['09:00', '09:30', '13:00', '14:30'], 'ar'],
  ])(
    '%j while choosing lists that day’s free times; a pick from that list books it',
    async (text, date, times, language) => {
      const { replies, calls } = await book([...(language === 'ar' ? LISTED_AR : LISTED), text, '1'], dayClinic);
      expect(finds(calls)).toEqual([TOMORROW, date]);
      const listed = replies[3].replace(/[\u200F\u2066\u2069]/g, '');
      expect(listed).toContain(`${date}:\n`);
      expect([...listed.matchAll(/^\d\) (\d{2}:\d{2})/gm)].map((m) => m[1])).toEqual(times);
      expect(replies[3]).not.toContain(language === 'ar' ? NOT_A_PICK_AR : NOT_A_PICK_EN);
      expect(detectLanguage(replies[3].replace(/Dr\. \w+/g, ''))).toBe(language);
      expect(bookings(calls)).toEqual([`${date}T${times[0]}`]);
    },
  );

  it('a weekday the clinic is closed on lists the next day it works', async () => {
    const weekend: Clinic = (name, args) =>
      name === 'find_free_slots' && args.date === next(6)
        ? { ok: true, status: 200, result: { date: args.date, open: false, slots: [], nextOpenDate: next(1) } }
        : happyClinic(name, args);
    const { replies, calls } = await book([...LISTED, 'Saturday?'], weekend);
    expect(finds(calls)).toEqual([TOMORROW, next(6), next(1)]);
    expect(replies[3]).toContain(`Monday ${next(1)}:\n1) 09:00`);
  });

  it('Arabic: the list’s numbers, times and names are isolated left to right, after a right-to-left mark; English has none', async () => {
    const arabic = await book(LISTED_AR, happyClinic);
    expect(arabic.replies[2]).toContain(
      ':\n\u200F\u20661)\u2069 \u206609:00\u2069 — \u2066Dr. Sara\u2069\n\u200F\u20662)\u2069 \u206609:30\u2069 — \u2066Dr. Omar\u2069\n',
    );
    const english = await book(LISTED, happyClinic);
    expect(english.replies[2]).not.toMatch(/[\u200F\u2066\u2069]/);
    // The booking's time, doctor and number stay whole in the Arabic confirmation.
    const booking = await book([...LISTED_AR, '١'], happyClinic);
    expect(booking.replies[3]).toBe(
      `تم حجز موعدك يا أحمد: يوم \u2066${TOMORROW}\u2069 الساعة \u206609:00\u2069 مع \u2066Dr. Omar\u2069. رقم الحجز \u2066B-7K2M9Q\u2069.`,
    );
  });

  it('thanks after a booked slot: welcome, and the booked time and booking number again, in either language', async () => {
    const english = await book([...LISTED, '2', 'Thanks!'], happyClinic);
    expect(english.replies[4]).toBe(
      `You are welcome! Your appointment is on ${TOMORROW} at 09:30 with Dr. Omar; your booking number is B-7K2M9Q. See you then!`,
    );
    const arabic = await book([...LISTED_AR, '٢', 'شكراً'], happyClinic);
    expect(arabic.replies[4]).toBe(
      `عفواً! موعدك يوم \u2066${TOMORROW}\u2069 الساعة \u206609:30\u2069 مع \u2066Dr. Omar\u2069، ورقم الحجز \u2066B-7K2M9Q\u2069. نراك قريباً!`,
    );
    // Not booked by the clinic (left to the team): thanks still says the team will confirm.
    const pending = await book([...LISTED, '1', 'thanks'], (name, args) =>
      name === 'find_free_slots' ? free(args.date, ['09:00']) : { ok: false, status: 500 },
    );
    expect(pending.replies[4]).toBe(
      'You are welcome! Your request is with the Al Noor Clinic team: they will confirm the slot with you shortly.',
    );
    // A new booking forgets the old slot: thanks in the middle of it is no reminder.
    const again = await book([...LISTED, '2', 'I need another appointment', 'ok'], happyClinic);
    expect(again.replies[5]).not.toContain('B-7K2M9Q');
  });
});
