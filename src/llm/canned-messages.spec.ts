import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppConfig } from '../config/app-config';
import { validateEnv } from '../config/validate-env';
import { testEnv } from '../../test/utils/test-env';
import { CANNED_KEYS, CannedMessages, parseCannedMessages } from './canned-messages';
import { detectLanguage, LANGUAGES } from './language';

const configWith = (env: Record<string, string> = {}): AppConfig =>
  new AppConfig(validateEnv(testEnv({ CLINIC_NAME: 'Al Noor Clinic', ...env })));
const shipped = JSON.parse(readFileSync('config/messages.json', 'utf8')) as Record<string, any>;
const dir = mkdtempSync(join(tmpdir(), 'tawasul-canned-'));
const writeMessages = (content: unknown): string => {
  const file = join(dir, `m${Math.random().toString(16).slice(2)}.json`);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
};

describe('CannedMessages (config/messages.json)', () => {
  const plain = new CannedMessages(configWith());
  const withPhone = new CannedMessages(configWith({ CLINIC_PHONE: '+971 4 123 4567' }));

  it.each(CANNED_KEYS.flatMap((key) => LANGUAGES.map((language) => [key, language] as const)))(
    '%s exists in %s, in that language, placeholders filled',
    (key, language) => {
      for (const messages of [plain, withPhone]) {
        const text = messages.text(key, language);
        expect(detectLanguage(text)).toBe(language);
        expect(text).not.toMatch(/\{\{|\}\}/);
      }
    },
  );

  it('fills the clinic name', () => {
    expect(plain.text('handoff', 'en')).toContain('Al Noor Clinic');
    expect(plain.text('handoff', 'ar')).toContain('Al Noor Clinic');
  });

  it('uses the phone variant exactly when CLINIC_PHONE is set', () => {
    for (const key of ['handoff', 'apology'] as const) {
      expect(plain.text(key, 'en')).not.toMatch(/\d/);
      expect(withPhone.text(key, 'en')).toContain('+971 4 123 4567');
      // Inside Arabic text the number is isolated so it is not laid out right to left.
      expect(withPhone.text(key, 'ar')).toContain('\u2066+971 4 123 4567\u2069');
    }
    expect(withPhone.text('holding', 'en')).toBe(plain.text('holding', 'en'));
  });

  it('lets vars override config values', () => {
    expect(plain.text('handoff', 'en', { clinicName: 'Other Clinic' })).toContain('Other Clinic');
    expect(plain.text('apology', 'en', { clinicPhone: '800 1234' })).toContain('800 1234');
  });
});

describe('CannedMessages start-up errors', () => {
  const load = (file: string) => () => new CannedMessages(configWith({ MESSAGES_FILE: file }));

  it('fails on a missing file, naming the variable and the path', () => {
    expect(load(join(dir, 'missing.json'))).toThrow(/^MESSAGES_FILE: cannot read .*missing\.json .*ENOENT/);
  });

  it('fails on invalid JSON', () => {
    expect(load(writeMessages('{ "holding": '))).toThrow(/^MESSAGES_FILE: cannot read .*JSON/);
  });

  it('fails on a missing key', () => {
    const { window_closed: _omit, ...rest } = shipped;
    expect(load(writeMessages(rest))).toThrow(/missing key "window_closed"/);
  });

  it('fails on a missing or empty language', () => {
    expect(load(writeMessages({ ...shipped, holding: { en: 'One moment' } }))).toThrow(/holding\.ar: missing or empty/);
    expect(load(writeMessages({ ...shipped, holding: { en: ' ', ar: 'لحظة' } }))).toThrow(
      /holding\.en: missing or empty/,
    );
    const handoff = { ...shipped.handoff, withPhone: { en: 'call {{clinicPhone}}' } };
    expect(load(writeMessages({ ...shipped, handoff }))).toThrow(/handoff\.withPhone\.ar: missing or empty/);
  });

  it('fails on an unknown key, an unknown placeholder, or a phone in the plain variant', () => {
    expect(load(writeMessages({ ...shipped, holdng: shipped.holding }))).toThrow(/unknown key "holdng"/);
    expect(load(writeMessages({ ...shipped, holding: { en: 'Hi {{clinicNmae}}', ar: 'لحظة' } }))).toThrow(
      /holding\.en: unknown placeholder \{\{clinicNmae\}\}/,
    );
    expect(load(writeMessages({ ...shipped, holding: { en: 'Call {{clinicPhone}}', ar: 'لحظة' } }))).toThrow(
      /holding\.en: \{\{clinicPhone\}\} belongs in the withPhone variant/,
    );
  });

  it('accepts the shipped file and ignores _comment keys', () => {
    expect(() => parseCannedMessages(shipped)).not.toThrow();
    expect(shipped._comment).toBeDefined();
  });
});
