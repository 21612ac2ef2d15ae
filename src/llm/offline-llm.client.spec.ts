import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { AppConfig } from '../config/app-config';
import { validateEnv } from '../config/validate-env';
import { testEnv } from '../../test/utils/test-env';
import { detectLanguage } from './language';
import { LlmError } from './llm.client';
import { LlmMetrics } from './llm.metrics';
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
const HOURS_EN = 'Al Noor Clinic is open Monday to Saturday from 8 am to 10 pm, and on Sunday from 10 am to 6 pm.';

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
    const metrics = LlmMetrics.for(new Registry());
    const client = new OfflineLlmClient(new AppConfig(validateEnv(testEnv())), script, metrics);
    await expect(client.complete({ messages: [{ role: 'system', content: 's' }] })).rejects.toBeInstanceOf(LlmError);
    const errors = (await metrics.failures.get()).values.find((v) => v.labels.kind === 'error');
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
    json.faq[1].keywords.en.push('hours');
    delete json.faq[2].answer.ar;
    json.faq.push('prices');
    json.surprise = true;
    expect(problemsOf(json).sort()).toEqual(
      [
        'surprise: unknown key; known: words, texts, faq',
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
    expect(problemsOf([])).toEqual(['must be a JSON object with words, texts and faq']);
    expect(problemsOf({})).toEqual([
      'words: must be an object with greeting, booking, thanks, yes, no, question',
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
