import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppConfig } from '../config/app-config';
import { validateEnv } from '../config/validate-env';
import {
  EscalationTriggers,
  interactiveIdsOf,
  normaliseForMatch,
  parseEscalationFile,
  parseKeywordList,
} from './escalation-triggers';

const configWith = (env: Record<string, string> = {}): AppConfig => new AppConfig(validateEnv(env));
const triggersWith = (env: Record<string, string> = {}): EscalationTriggers => new EscalationTriggers(configWith(env));
const shipped = JSON.parse(readFileSync('config/escalation.json', 'utf8')) as Record<string, any>;

describe('normaliseForMatch', () => {
  it.each([
    ['  I want to COMPLAIN!!  ', 'i want to complain'],
    ['talk-to_someone, please?', 'talk to someone please'],
    ['شَكْوَى', 'شكوي'],
    ['شكـــوى', 'شكوي'],
    ['إهمال أو آخر ٱلأمر', 'اهمال او اخر الامر'],
    ['قضية', 'قضيه'],
    ['مؤسسة رئيس', 'موسسه رييس'],
    ['هل يمكن؟ نعم، شكراً؛ حسناً', 'هل يمكن نعم شكرا حسنا'],
    ['ﻻ', 'لا'],
    ['Ｃｏｍｐｌａｉｎｔ ①', 'complaint 1'],
    ['room ٣ 😡 $100', 'room ٣ 100'],
    ['room ٣ 😡 $100 ❤️ 1️⃣ #\u20E3 नमस्ते', 'room ٣ 100 1 नमस्ते'],
    ['شك\u200Cوى \u2066+971\u2069', 'شكوي 971'],
  ])('%j → %j', (input, expected) => {
    expect(normaliseForMatch(input)).toBe(expected);
  });
});

describe('EscalationTriggers with config/escalation.json', () => {
  const triggers = triggersWith();

  it.each(['complaint', 'lawsuit', 'lawyer', 'refund', 'شكوى', 'محامي', 'قضية'])(
    'keyword "%s" reaches the default threshold alone',
    (word) => {
      expect(triggers.check([`about my ${word} today`])).toEqual({
        trigger: 'keyword',
        matched: [normaliseForMatch(word)],
        score: 3,
      });
    },
  );

  it.each(['human', 'agent', 'representative', 'talk to someone', 'موظف', 'شخص حقيقي', 'خدمة العملاء'])(
    'human request "%s" escalates on its own',
    (phrase) => {
      expect(triggers.check([`please ${phrase}`])).toMatchObject({
        trigger: 'human_request',
        matched: [normaliseForMatch(phrase)],
      });
    },
  );

  it('escalates on an English keyword, with its score', () => {
    expect(triggers.check(['I have a Complaint about the doctor.'])).toEqual({
      trigger: 'keyword',
      matched: ['complaint'],
      score: 3,
    });
  });

  it('does not escalate an ordinary message', () => {
    expect(triggers.check(['Can I book a cleaning on Monday?'])).toBeUndefined();
    expect(triggers.check([])).toBeUndefined();
    expect(triggers.check([''], [])).toBeUndefined();
  });

  it('matches whole words only, never inside another word', () => {
    expect(triggers.check(['I read the complaints policy'])).toBeUndefined();
    expect(triggers.check(['Are your agents available?'])).toBeUndefined();
    expect(triggers.check(['I work in management'])).toBeUndefined();
    expect(triggers.check(['a humanitarian visa'])).toBeUndefined();
    expect(triggers.check(['refunding'])).toBeUndefined();
    expect(triggers.check(['شكوىات'])).toBeUndefined();
  });

  it('sums the weights of distinct keywords in one message', () => {
    expect(triggers.check(['I am angry, this is unacceptable and I am disappointed'])).toEqual({
      trigger: 'keyword',
      matched: ['angry', 'unacceptable', 'disappointed'],
      score: 3,
    });
    expect(triggers.check(['I am angry, this is unacceptable'])).toBeUndefined();
  });

  it('counts each keyword once, however often it appears', () => {
    expect(triggers.check(['angry angry ANGRY! so angry'])).toBeUndefined();
    expect(triggers.check(['غاضب غاضب غاضب'])).toBeUndefined();
  });

  it('scores each message on its own, not the turn as a whole', () => {
    expect(triggers.check(['I am angry', 'this is unacceptable', 'disappointed'])).toBeUndefined();
    expect(triggers.check(['hello', 'angry and unacceptable and disappointed'])).toMatchObject({
      trigger: 'keyword',
      score: 3,
    });
  });

  it('matches Arabic with or without diacritics and tatweel', () => {
    for (const text of ['عندي شكوى', 'عندي شَكْوَى', 'عندي شكـــوى', 'عندي شكوي']) {
      expect(triggers.check([text])).toEqual({ trigger: 'keyword', matched: ['شكوي'], score: 3 });
    }
  });

  it('unifies alef forms and ta marbuta', () => {
    expect(triggers.check(['هذا إهمال'])).toMatchObject({ trigger: 'keyword', matched: ['اهمال'] });
    expect(triggers.check(['هذا اهمال'])).toMatchObject({ trigger: 'keyword', matched: ['اهمال'] });
    expect(triggers.check(['سأرفع قضية'])).toMatchObject({ trigger: 'keyword', matched: ['قضيه'] });
    expect(triggers.check(['سأرفع قضيه'])).toMatchObject({ trigger: 'keyword', matched: ['قضيه'] });
  });

  it('accepts an Arabic keyword after the article or a one-letter clitic', () => {
    for (const text of ['الشكوى', 'والمحامي', 'للمحامي', 'بالقضية', 'فشكوى', 'كالشكوى', 'والإهمال']) {
      expect(triggers.check([text])).toMatchObject({ trigger: 'keyword', score: 3 });
    }
    expect(triggers.check(['أريد التحدث مع الموظف'])).toMatchObject({ trigger: 'human_request', matched: ['موظف'] });
  });

  it('rejects an Arabic keyword after anything that is not one of those clitics', () => {
    // "مشكوى", "اشكوى": not a known clitic; "شكواي"/"محامين": suffixes are not accepted either.
    for (const text of ['مشكوى', 'اشكوى', 'شكواي', 'محامين', 'والالشكوى', 'موظفين']) {
      expect(triggers.check([text])).toBeUndefined();
    }
  });

  it('matches multi-word phrases as consecutive words, in English and Arabic', () => {
    expect(triggers.check(['Can I TALK to   someone?'])).toMatchObject({ matched: ['talk to someone'] });
    expect(triggers.check(['can I talk to the doctor, someone said'])).toBeUndefined();
    expect(triggers.check(['أريد شخص حقيقي من فضلك'])).toMatchObject({ matched: ['شخص حقيقي'] });
    expect(triggers.check(['أريد شخص غير حقيقي'])).toBeUndefined();
    for (const text of ['خدمة العملاء', 'خدمه العملاء', 'أريد خدمةَ العملاءِ', 'وخدمة العملاء']) {
      expect(triggers.check([text])).toMatchObject({ trigger: 'human_request', matched: ['خدمه العملاء'] });
    }
    expect(triggers.check(['I will take legal action'])).toMatchObject({
      trigger: 'keyword',
      matched: ['legal action'],
    });
  });

  it('lets a human request win over keywords, still reporting the keyword score', () => {
    expect(triggers.check(['I have a complaint, let me talk to a human'])).toEqual({
      trigger: 'human_request',
      matched: ['human'],
      score: 3,
    });
    expect(triggers.check(['complaint'], ['talk_to_agent'])).toMatchObject({ trigger: 'human_request' });
  });

  it('escalates on a human request in any message of the turn', () => {
    expect(triggers.check(['hi', 'ok', 'real person please'])).toEqual({
      trigger: 'human_request',
      matched: ['real person'],
      score: 0,
    });
  });

  it.each(['talk_to_agent', 'HUMAN', 'req-human-1', 'menu.operator', 'staff:call', 'طلب_موظف', 'a_person'])(
    'interactive id %s asks for a person',
    (id) => {
      expect(triggers.check([], [id])).toMatchObject({ trigger: 'human_request', score: 0 });
    },
  );

  it.each(['agenda_2', 'book_slot', 'humanitarian', 'agents_list', 'personal-info', 'staffing', ''])(
    'interactive id %j does not',
    (id) => {
      expect(triggers.check([], [id])).toBeUndefined();
    },
  );

  it('reports the matched id word', () => {
    expect(triggers.check(['Book'], ['book_slot', 'talk_to_agent'])?.matched).toEqual(['agent']);
  });
});

describe('EscalationTriggers with ESCALATION_KEYWORDS and ESCALATION_THRESHOLD', () => {
  it('replaces the file keywords; the humanRequest phrases still apply', () => {
    const triggers = triggersWith({ ESCALATION_KEYWORDS: 'refund:1', ESCALATION_THRESHOLD: '3' });
    expect(triggers.check(['refund'])).toBeUndefined();
    expect(triggers.check(['I have a complaint'])).toBeUndefined();
    expect(triggers.check(['شكوى'])).toBeUndefined();
    expect(triggers.check(['refund, talk to someone'])).toEqual({
      trigger: 'human_request',
      matched: ['talk to someone'],
      score: 1,
    });
  });

  it('uses the listed Arabic and multi-word keywords and the threshold', () => {
    const triggers = triggersWith({
      ESCALATION_KEYWORDS: 'complaint:3,lawyer:3,شكوى:3,bad service:1.5,late:1',
      ESCALATION_THRESHOLD: '2.5',
    });
    expect(triggers.check(['الشكوى'])).toMatchObject({ trigger: 'keyword', score: 3 });
    expect(triggers.check(['bad service and late again'])).toEqual({
      trigger: 'keyword',
      matched: ['bad service', 'late'],
      score: 2.5,
    });
    expect(triggers.check(['bad service'])).toBeUndefined();
  });

  it('adds decimal weights as written', () => {
    const triggers = triggersWith({ ESCALATION_KEYWORDS: 'a:0.7,b:0.2,c:0.1', ESCALATION_THRESHOLD: '1' });
    expect(triggers.check(['a b c'])).toMatchObject({ trigger: 'keyword', score: 1 });
  });

  it('lowers the threshold', () => {
    expect(triggersWith({ ESCALATION_THRESHOLD: '1' }).check(['angry'])).toMatchObject({ trigger: 'keyword' });
  });

  it('fails at construction on a keyword that normalises to nothing, naming the variable', () => {
    expect(() => triggersWith({ ESCALATION_KEYWORDS: 'ok:1,!!!:3' })).toThrow(
      /^ESCALATION_KEYWORDS: keyword "!!!" has no letters or digits to match$/,
    );
  });
});

describe('parseKeywordList', () => {
  it('parses word:weight pairs, trimming around them', () => {
    expect(parseKeywordList('a:3,b c:1.5')).toEqual({ a: 3, 'b c': 1.5 });
    expect(parseKeywordList(' complaint : 3 , شكوى:3')).toEqual({ complaint: 3, شكوى: 3 });
  });

  it.each([
    ['', /^entry 1 "": expected word:weight/],
    ['a', /^entry 1 "a": expected word:weight/],
    ['a:3,', /^entry 2 "": expected word:weight/],
    ['a:3,:2', /^entry 2 ":2": expected word:weight/],
    ['a:x', /^entry 1 "a:x": expected word:weight/],
    ['a:-1', /^entry 1 "a:-1": expected word:weight/],
    ['a:0', /^entry 1 "a:0": expected word:weight with a weight > 0$/],
    ['a:1e3', /^entry 1 "a:1e3"/],
    ['a:1:2', /^entry 1 "a:1:2"/],
    ['?:1', /^keyword "\?" has no letters or digits to match$/],
    ['a:1,A:2', /^keyword "A" duplicates "a" once normalised$/],
    ['شكوى:1,شكوي:2', /^keyword "شكوي" duplicates "شكوى" once normalised$/],
  ])('rejects %j', (value, message) => {
    expect(() => parseKeywordList(value)).toThrow(message);
  });

  it('keeps its errors on one line', () => {
    expect(() => parseKeywordList('a:1,b')).toThrow(/^[^\n]+$/);
  });
});

describe('parseEscalationFile', () => {
  it('accepts the shipped file and ignores _ keys', () => {
    const parsed = parseEscalationFile(shipped);
    expect(shipped._comment).toBeDefined();
    expect(parsed.keywords.complaint).toBe(3);
    expect(parsed.humanRequest).toContain('talk to someone');
    expect(parseEscalationFile({ keywords: { _note: 'x', a: 1 }, humanRequest: [] })).toEqual({
      keywords: { a: 1 },
      humanRequest: [],
    });
  });

  it.each([
    [null, /^must be a JSON object$/],
    [[], /^must be a JSON object$/],
    ['x', /^must be a JSON object$/],
    [{ keywords: {}, humanRequest: [], extra: 1 }, /^unknown key "extra"; known: keywords, humanRequest$/],
    [{ humanRequest: [] }, /^missing key "keywords"$/],
    [{ keywords: {} }, /^missing key "humanRequest"$/],
    [{ keywords: [], humanRequest: [] }, /^keywords: must be an object/],
    [{ keywords: { a: '3' }, humanRequest: [] }, /^keywords\."a": weight must be a number > 0$/],
    [{ keywords: { a: 0 }, humanRequest: [] }, /^keywords\."a": weight must be a number > 0$/],
    [{ keywords: { '...': 1 }, humanRequest: [] }, /^keyword "\.\.\." has no letters/],
    [{ keywords: { إهمال: 1, اهمال: 2 }, humanRequest: [] }, /^keyword "اهمال" duplicates "إهمال"/],
    [{ keywords: {}, humanRequest: 'human' }, /^humanRequest: must be an array of phrases$/],
    [{ keywords: {}, humanRequest: ['human', 3] }, /^humanRequest\[1\]: must be a string$/],
    [{ keywords: {}, humanRequest: [' - '] }, /^humanRequest phrase " - " has no letters/],
    [{ keywords: {}, humanRequest: ['Agent', 'agent!'] }, /^humanRequest phrase "agent!" duplicates "Agent"/],
  ])('rejects %j', (json, message) => {
    expect(() => parseEscalationFile(json)).toThrow(message);
  });
});

describe('EscalationTriggers start-up errors', () => {
  const root = mkdtempSync(join(tmpdir(), 'tawasul-escalation-'));
  const inDirWith = (content?: string): string => {
    const dir = mkdtempSync(join(root, 'cwd-'));
    if (content !== undefined) {
      mkdirSync(join(dir, 'config'));
      writeFileSync(join(dir, 'config', 'escalation.json'), content);
    }
    return dir;
  };
  const loadIn = (dir: string) => () => {
    const cwd = jest.spyOn(process, 'cwd').mockReturnValue(dir);
    try {
      return triggersWith();
    } finally {
      cwd.mockRestore();
    }
  };

  it('reads config/escalation.json from the working directory', () => {
    const dir = inDirWith(JSON.stringify({ keywords: { zebra: 3 }, humanRequest: ['giraffe'] }));
    const triggers = loadIn(dir)();
    expect(triggers.check(['a zebra'])).toMatchObject({ trigger: 'keyword' });
    expect(triggers.check(['a giraffe'])).toMatchObject({ trigger: 'human_request' });
    expect(triggers.check(['complaint, human'])).toBeUndefined();
  });

  it('fails on a missing file, naming it and the path', () => {
    expect(loadIn(inDirWith())).toThrow(/^config\/escalation\.json: cannot read .*escalation\.json\): ENOENT$/);
  });

  it('fails on invalid JSON', () => {
    expect(loadIn(inDirWith('{ "keywords": '))).toThrow(/^config\/escalation\.json: cannot read .*JSON/);
  });

  it('fails on an invalid shape, naming the problem', () => {
    expect(loadIn(inDirWith('{ "keywords": {}, "humanRequest": [1] }'))).toThrow(
      /^config\/escalation\.json: humanRequest\[0\]: must be a string$/,
    );
  });
});

describe('interactiveIdsOf', () => {
  it('reads button and list reply ids', () => {
    const button = {
      from: '971500000001',
      id: 'wamid.A',
      timestamp: '1700000000',
      type: 'interactive',
      interactive: { type: 'button_reply', button_reply: { id: 'talk_to_agent', title: 'Talk to staff' } },
    };
    const list = {
      type: 'interactive',
      interactive: { type: 'list_reply', list_reply: { id: 'slot_9am', title: '9:00', description: 'Mon' } },
    };
    expect(interactiveIdsOf(button)).toEqual(['talk_to_agent']);
    expect(interactiveIdsOf(list)).toEqual(['slot_9am']);
  });

  it('reads a template quick-reply payload', () => {
    const quickReply = {
      context: { from: '15550000000', id: 'wamid.T' },
      from: '971500000001',
      id: 'wamid.B',
      type: 'button',
      button: { payload: 'REQ-HUMAN-1', text: 'Speak to us' },
    };
    expect(interactiveIdsOf(quickReply)).toEqual(['REQ-HUMAN-1']);
    expect(interactiveIdsOf({ type: 'text', button: { payload: 'x' } })).toEqual([]);
  });

  it.each([
    null,
    undefined,
    42,
    'talk_to_agent',
    [],
    {},
    { type: 'text', text: { body: 'agent' } },
    { type: 'interactive' },
    { type: 'interactive', interactive: null },
    { type: 'interactive', interactive: { button_reply: null, list_reply: 7 } },
    { type: 'interactive', interactive: { button_reply: { id: 5 }, list_reply: { id: '  ' } } },
    { type: 'interactive', interactive: { nfm_reply: { response_json: '{}' } } },
    { type: 'button', button: 'x' },
    { type: 'button', button: { payload: ['a'] } },
  ])('ignores %j', (raw) => {
    expect(interactiveIdsOf(raw)).toEqual([]);
  });
});
