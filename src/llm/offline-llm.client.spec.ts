import { Registry } from 'prom-client';
import { AppConfig } from '../config/app-config';
import { validateEnv } from '../config/validate-env';
import { testEnv } from '../../test/utils/test-env';
import { LlmError } from './llm.client';
import { LlmMetrics } from './llm.metrics';
import { buildLlmRequest, type HistoryEntry } from './llm-request.builder';
import { extractName, OfflineLlmClient } from './offline-llm.client';

const clientWith = (env: Record<string, string> = {}): OfflineLlmClient =>
  new OfflineLlmClient(new AppConfig(validateEnv(testEnv({ CLINIC_NAME: 'Al Noor Clinic', ...env }))));

/** Plays a conversation turn by turn, feeding the bot's replies back as history. */
async function converse(client: OfflineLlmClient, turns: string[][]): Promise<string[]> {
  const history: HistoryEntry[] = [];
  const replies: string[] = [];
  for (const turn of turns) {
    const request = buildLlmRequest({ systemPrompt: 'system prompt', history, turnMessages: turn });
    const reply = await client.complete(request);
    expect(reply.finishReason).toBe('stop');
    for (const text of turn) history.push({ role: 'user', text });
    history.push({ role: 'assistant', text: reply.content });
    replies.push(reply.content);
  }
  return replies;
}

describe('OfflineLlmClient', () => {
  it('greets, asks for the name, then the reason, then promises a call back (English)', async () => {
    const replies = await converse(clientWith(), [['Hi'], ['My name is Sara Ali.'], ['I need a dental check-up']]);
    expect(replies[0]).toBe(
      "Hello, and welcome to Al Noor Clinic! I am the clinic's virtual assistant. May I have your full name, please?",
    );
    expect(replies[1]).toBe('Thank you, Sara Ali. What is the reason for your visit?');
    expect(replies[2]).toBe(
      'Thank you, Sara Ali. We have noted your request, and the Al Noor Clinic team will call you back shortly to arrange your appointment.',
    );
  });

  it('speaks Arabic when the patient writes Arabic, and mentions CLINIC_PHONE when set', async () => {
    const replies = await converse(clientWith({ CLINIC_PHONE: '+971 4 123 4567' }), [
      ['السلام عليكم'],
      ['اسمي أحمد'],
      ['عندي ألم في الأسنان'],
      ['شكراً'],
    ]);
    expect(replies[0]).toBe(
      'مرحباً بك في Al Noor Clinic! أنا المساعد الافتراضي للعيادة. هل يمكنني معرفة اسمك الكامل من فضلك؟',
    );
    expect(replies[1]).toBe('شكراً لك يا أحمد. ما سبب زيارتك؟');
    expect(replies[2]).toContain('سيتصل بك فريق Al Noor Clinic قريباً');
    expect(replies[2]).toContain('\u2066+971 4 123 4567\u2069');
    expect(replies[3]).toBe(
      'شكراً لرسالتك. سيتصل بك فريق Al Noor Clinic قريباً. وإذا كان الأمر عاجلاً يمكنك الاتصال بنا على الرقم \u2066+971 4 123 4567\u2069.',
    );
  });

  it('mentions no phone when CLINIC_PHONE is unset', async () => {
    const replies = await converse(clientWith(), [['Hi'], ['Omar'], ['Back pain'], ['ok thanks']]);
    expect(replies.join(' ')).not.toMatch(/call us on|\d{3}/);
    expect(replies[3]).toBe('Thank you for your message. The Al Noor Clinic team will call you back shortly.');
  });

  it('follows the language of the latest message, but not a name typed in another script', async () => {
    const replies = await converse(clientWith(), [['مرحبا'], ['Ahmed Khan'], ['I need a blood test']]);
    expect(replies[1]).toBe('شكراً لك يا Ahmed Khan. ما سبب زيارتك؟');
    expect(replies[2]).toMatch(/^Thank you, Ahmed Khan\. We have noted your request/);
  });

  it('asks again when the answer to the name question is not a name', async () => {
    const replies = await converse(clientWith(), [['Hello'], ['What are your opening hours?'], ['👍'], ['Lina']]);
    expect(replies[1]).toBe('May I have your full name, please?');
    expect(replies[2]).toBe('May I have your full name, please?');
    expect(replies[3]).toBe('Thank you, Lina. What is the reason for your visit?');
  });

  it('answers a burst turn (several messages) as one', async () => {
    const replies = await converse(clientWith(), [
      ['Hi', 'is anyone there?'],
      ['Nour', 'Nour Hassan'],
    ]);
    expect(replies[1]).toBe('Thank you, Nour. What is the reason for your visit?');
  });

  it('is deterministic: the same messages give the same reply', async () => {
    const client = clientWith({ CLINIC_PHONE: '+971 4 000 0000' });
    const request = buildLlmRequest({
      systemPrompt: 's',
      history: [
        { role: 'user', text: 'hi' },
        { role: 'assistant', text: 'Hello! May I have your full name, please?' },
      ],
      turnMessages: ['Mona'],
    });
    const first = await client.complete(request);
    const second = await client.complete(JSON.parse(JSON.stringify(request)));
    expect(second).toEqual(first);
    expect(await clientWith({ CLINIC_PHONE: '+971 4 000 0000' }).complete(request)).toEqual(first);
  });

  it('rejects a request without a user message with an LlmError and counts it', async () => {
    const metrics = LlmMetrics.for(new Registry());
    const client = new OfflineLlmClient(new AppConfig(validateEnv(testEnv())), metrics);
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
    ['Imran', 'Imran'],
    ['Name: Huda', 'Huda'],
    ['انس', 'انس'],
    ['اسمي أحمد', 'أحمد'],
    ['أنا فاطمة.', 'فاطمة'],
    ['\nMaryam\nsecond line', 'Maryam'],
    ['👍', undefined],
    ['what?', undefined],
    ['ما هي المواعيد؟', undefined],
  ])('%j -> %j', (text, name) => {
    expect(extractName(text)).toBe(name);
  });
});
