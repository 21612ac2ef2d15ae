import { readJsonConfigFile } from '../config/json-config-file';
import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { isolateLtr, type Language, LANGUAGES } from './language';
import { LlmSetupError } from './llm-setup.error';
import { fillPlaceholders, placeholdersOf } from './placeholders';

/** The canned texts of MESSAGES_FILE; every one exists in every language of LANGUAGES. */
export const CANNED_KEYS = [
  'holding',
  'handoff',
  'apology',
  'unsupported_media',
  'resend_as_text',
  'window_closed',
] as const;
export type CannedKey = (typeof CANNED_KEYS)[number];

type Texts = Record<Language, string>;
interface CannedEntry {
  plain: Texts;
  withPhone?: Texts;
}
export type CannedTable = Record<CannedKey, CannedEntry>;

const KNOWN_PLACEHOLDERS = ['clinicName', 'clinicPhone'];

function readTexts(value: unknown, where: string): Texts {
  if (typeof value !== 'object' || value === null) throw new Error(`${where}: must be an object with en and ar`);
  const texts = {} as Texts;
  for (const language of LANGUAGES) {
    const text = (value as Record<string, unknown>)[language];
    if (typeof text !== 'string' || text.trim() === '') throw new Error(`${where}.${language}: missing or empty`);
    const unknown = placeholdersOf(text).filter((p) => !KNOWN_PLACEHOLDERS.includes(p));
    if (unknown.length > 0) throw new Error(`${where}.${language}: unknown placeholder {{${unknown[0]}}}`);
    texts[language] = text;
  }
  return texts;
}

/** Validates the parsed MESSAGES_FILE; throws a one-line Error naming the first problem. */
export function parseCannedMessages(json: unknown): CannedTable {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('must be a JSON object');
  const raw = json as Record<string, unknown>;
  const extra = Object.keys(raw).filter((k) => !k.startsWith('_') && !(CANNED_KEYS as readonly string[]).includes(k));
  if (extra.length > 0) throw new Error(`unknown key "${extra[0]}"; known: ${CANNED_KEYS.join(', ')}`);
  const table = {} as CannedTable;
  for (const key of CANNED_KEYS) {
    const entry = raw[key];
    if (entry === undefined) throw new Error(`missing key "${key}"`);
    const plain = readTexts(entry, key);
    for (const language of LANGUAGES) {
      if (placeholdersOf(plain[language]).includes('clinicPhone')) {
        throw new Error(
          `${key}.${language}: {{clinicPhone}} belongs in the withPhone variant (CLINIC_PHONE may be unset)`,
        );
      }
    }
    const phoneRaw = (entry as Record<string, unknown>).withPhone;
    table[key] = phoneRaw === undefined ? { plain } : { plain, withPhone: readTexts(phoneRaw, `${key}.withPhone`) };
  }
  return table;
}

/**
 * The canned messages (holding, handoff, apology, …) in the patient's language, read once at
 * start-up from MESSAGES_FILE (relative to the working directory). A missing file, key or
 * language stops start-up: these are the texts patients get exactly when something went wrong.
 */
@Injectable()
export class CannedMessages {
  private readonly table: CannedTable;

  constructor(private readonly config: AppConfig) {
    const file = config.env.MESSAGES_FILE;
    const json = readJsonConfigFile('MESSAGES_FILE', file, (message) => new LlmSetupError(message));
    try {
      this.table = parseCannedMessages(json);
    } catch (err) {
      throw new LlmSetupError(`MESSAGES_FILE: ${file}: ${(err as Error).message}`);
    }
  }

  /**
   * The text for `key` in `language`, placeholders filled. The withPhone variant (when the file
   * has one) is used exactly when CLINIC_PHONE is set. `vars` override the values from config.
   */
  text(key: CannedKey, language: Language, vars: Readonly<Record<string, string>> = {}): string {
    const entry = this.table[key];
    const phone = vars.clinicPhone ?? this.config.env.CLINIC_PHONE;
    const template = phone && entry.withPhone ? entry.withPhone[language] : entry.plain[language];
    return fillPlaceholders(template, {
      clinicName: this.config.env.CLINIC_NAME,
      ...vars,
      clinicPhone: phone && language === 'ar' ? isolateLtr(phone) : phone,
    });
  }
}
