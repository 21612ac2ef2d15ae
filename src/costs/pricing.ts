import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { BSP_PROVIDERS, type BspProvider } from '../config/env.schema';

/** One dated rate table: it applies from `effectiveFrom` (UTC) until the next table's date. */
export interface PricingTable {
  effectiveFrom: string;
  /** Categories that cost nothing when sent inside an open customer service window. */
  freeInServiceWindow: string[];
  /** market → category → USD per delivered message, before BSP markup. */
  rates: Record<string, Record<string, number>>;
}

/** PRICING_FILE once validated (parsePricingFile): tables sorted oldest first. */
export interface PricingFile {
  currency: 'USD';
  bspMarkupPercent: Record<BspProvider, number>;
  /** Country calling code (digits) → market code. */
  markets: Record<string, string>;
  defaultMarket: string;
  tables: PricingTable[];
}

export interface PriceQuery {
  to: string;
  category: string;
  /** ms since epoch; picks the table. */
  at: number;
  /** Whether the customer service window is open for this recipient at `at`. */
  inWindow: boolean;
}

/** PRICING_FILE cannot be used; `lines` holds one readable line per problem, for start-up output. */
export class PricingFileError extends Error {
  constructor(
    readonly file: string,
    readonly lines: string[],
  ) {
    super(`PRICING_FILE: ${file}: ${lines.join('; ')}`);
    this.name = 'PricingFileError';
  }
}

/** Every market of every table must price these, so no message the bot sends falls through to 0. */
export const REQUIRED_CATEGORIES = ['marketing', 'utility', 'authentication', 'service'] as const;

/**
 * Meta reports some categories that rate cards often do not list separately: these use their own
 * rate when the market has one, else the base category's.
 */
const FALLBACK_CATEGORY: ReadonlyMap<string, string> = new Map([
  ['authentication-international', 'authentication'],
  ['marketing_lite', 'marketing'],
]);
/** Conversions from free entry points are never charged, whatever the table says. */
const NEVER_CHARGED = new Set(['referral_conversion']);

const TOP_KEYS = ['currency', 'bspMarkupPercent', 'markets', 'defaultMarket', 'tables'];
const TABLE_KEYS = ['effectiveFrom', 'freeInServiceWindow', 'rates'];
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const CALLING_CODE = /^[1-9]\d{0,5}$/;
const MARKET_CODE = /^[A-Z][A-Z0-9_]*$/;
const CATEGORY = /^[a-z][a-z0-9_-]*$/;
/** A business-scoped user id ('AE.1234…') carries the user's country instead of a phone number. */
const SCOPED_ID = /^([A-Za-z]{2})\./;

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isAmount = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value) && value >= 0;
/** Keys starting with '_' are comments. */
const dataKeys = (o: Json): string[] => Object.keys(o).filter((k) => !k.startsWith('_'));

/** ms since epoch of a YYYY-MM-DD UTC date, or undefined when it is not a real date. */
export function utcDateMs(value: unknown): number | undefined {
  const m = typeof value === 'string' ? DATE.exec(value) : null;
  if (!m) return undefined;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  // Date.UTC rolls 2026-02-30 over to March: only a date that survives the round trip is real.
  return new Date(ms).toISOString().slice(0, 10) === value ? ms : undefined;
}

function unknownKeys(o: Json, known: string[], where: (key: string) => string, lines: string[]): void {
  for (const key of dataKeys(o)) {
    if (!known.includes(key)) lines.push(`${where(key)}: unknown key (known: ${known.join(', ')})`);
  }
}

function checkMarkup(raw: unknown, lines: string[]): void {
  if (!isObject(raw)) {
    lines.push(`bspMarkupPercent: expected an object with ${BSP_PROVIDERS.join(', ')}`);
    return;
  }
  // Every BSP is spelled out: a typo ('360Dialog') would otherwise silently mean no markup.
  for (const provider of BSP_PROVIDERS) {
    if (!isAmount(raw[provider])) lines.push(`bspMarkupPercent.${provider}: expected a number ≥ 0`);
  }
  unknownKeys(raw, [...BSP_PROVIDERS], (k) => `bspMarkupPercent.${k}`, lines);
}

function checkMarkets(raw: unknown, lines: string[]): void {
  if (!isObject(raw)) {
    lines.push('markets: expected an object of country calling code → market code');
    return;
  }
  for (const key of dataKeys(raw)) {
    if (!CALLING_CODE.test(key)) lines.push(`markets.${key}: expected a country calling code (digits only, no +)`);
    const code = raw[key];
    if (typeof code !== 'string' || !MARKET_CODE.test(code)) {
      lines.push(`markets.${key}: expected a market code in capitals, like "AE"`);
    }
  }
}

function checkTable(raw: unknown, where: string, markets: Set<string>, lines: string[]): void {
  if (!isObject(raw)) {
    lines.push(`${where}: expected an object with ${TABLE_KEYS.join(', ')}`);
    return;
  }
  unknownKeys(raw, TABLE_KEYS, (k) => `${where}.${k}`, lines);
  if (utcDateMs(raw.effectiveFrom) === undefined) lines.push(`${where}.effectiveFrom: expected YYYY-MM-DD`);

  const priced = new Set<string>(REQUIRED_CATEGORIES);
  if (!isObject(raw.rates)) {
    lines.push(`${where}.rates: expected an object of market → category → USD`);
  } else {
    for (const market of dataKeys(raw.rates)) {
      const at = `${where}.rates.${market}`;
      if (!markets.has(market)) {
        lines.push(`${at}: no entry of markets maps to '${market}' and it is not defaultMarket`);
      }
      const rates = raw.rates[market];
      if (!isObject(rates)) {
        lines.push(`${at}: expected an object of category → USD`);
        continue;
      }
      for (const category of dataKeys(rates)) {
        priced.add(category);
        if (!CATEGORY.test(category)) lines.push(`${at}.${category}: expected a lower-case category name`);
        else if (!isAmount(rates[category])) lines.push(`${at}.${category}: expected a number ≥ 0`);
      }
      for (const category of REQUIRED_CATEGORIES) {
        if (!Object.hasOwn(rates, category)) {
          lines.push(`${at}.${category}: missing (every market needs ${REQUIRED_CATEGORIES.join(', ')})`);
        }
      }
    }
  }

  const free = raw.freeInServiceWindow;
  if (!Array.isArray(free)) {
    lines.push(`${where}.freeInServiceWindow: expected an array of categories (may be empty)`);
  } else {
    free.forEach((category, i) => {
      if (typeof category !== 'string' || !priced.has(category)) {
        lines.push(`${where}.freeInServiceWindow[${i}]: unknown category ${JSON.stringify(category)}`);
      }
    });
  }
}

/**
 * Validates a parsed PRICING_FILE and returns it with its tables sorted oldest first. Throws a
 * PricingFileError listing every problem found, one line each; `source` names the file in it.
 */
export function parsePricingFile(json: unknown, source = 'pricing'): PricingFile {
  if (!isObject(json)) throw new PricingFileError(source, ['expected a JSON object']);
  const lines: string[] = [];
  unknownKeys(json, TOP_KEYS, (k) => k, lines);
  if (json.currency !== 'USD') lines.push('currency: expected "USD" (the cost ledger counts USD)');
  checkMarkup(json.bspMarkupPercent, lines);
  checkMarkets(json.markets, lines);
  const defaultMarket = json.defaultMarket;
  const defaultOk = typeof defaultMarket === 'string' && MARKET_CODE.test(defaultMarket);
  if (!defaultOk) lines.push('defaultMarket: expected a market code in capitals, like "OTHER"');

  const mapped = isObject(json.markets) ? Object.entries(json.markets).filter(([k]) => !k.startsWith('_')) : [];
  const markets = new Set(mapped.map(([, code]) => String(code)));
  if (defaultOk) markets.add(defaultMarket);

  const tables = json.tables;
  if (!Array.isArray(tables) || tables.length === 0) {
    lines.push('tables: expected a non-empty array of dated rate tables');
  } else {
    const seen = new Map<string, number>();
    tables.forEach((table: unknown, i) => {
      const where = `tables[${i}]`;
      checkTable(table, where, markets, lines);
      if (!isObject(table)) return;
      const date = table.effectiveFrom;
      if (typeof date === 'string' && seen.has(date)) {
        lines.push(`${where}.effectiveFrom: ${date} is also tables[${seen.get(date)}]'s date`);
      } else if (typeof date === 'string') seen.set(date, i);
      // Every market a recipient can land in must be priced by every table, whatever the date.
      const rates = isObject(table.rates) ? table.rates : {};
      for (const [key, code] of mapped) {
        if (typeof code === 'string' && MARKET_CODE.test(code) && !isObject(rates[code])) {
          lines.push(`markets.${key}: market '${code}' has no rates in ${where}`);
        }
      }
      if (defaultOk && !isObject(rates[defaultMarket])) {
        lines.push(`defaultMarket: market '${defaultMarket}' has no rates in ${where}`);
      }
    });
  }
  if (lines.length > 0) throw new PricingFileError(source, lines);

  const file = json as unknown as PricingFile;
  return {
    currency: 'USD',
    bspMarkupPercent: file.bspMarkupPercent,
    markets: Object.fromEntries(mapped) as Record<string, string>,
    defaultMarket: file.defaultMarket,
    tables: [...file.tables].sort((a, b) => a.effectiveFrom.localeCompare(b.effectiveFrom)),
  };
}

interface CompiledTable {
  fromMs: number;
  free: Set<string>;
  rates: Map<string, Map<string, number>>;
}

const round6 = (usd: number): number => Math.round(usd * 1e6) / 1e6;

/**
 * WhatsApp per-message prices from PRICING_FILE, for the cost ledger. Estimates are what a
 * message should cost when it is sent; billed amounts follow the `pricing` Meta reports on its
 * statuses. Both include the BSP's markup, both are USD per delivered message.
 */
export class Pricing {
  readonly markupPercent: number;
  readonly defaultMarket: string;
  private readonly tables: CompiledTable[];
  private readonly prefixes: Map<string, string>;
  private readonly longestPrefix: number;
  private readonly knownMarkets: Set<string>;

  /** Reads and validates the file (relative to the working directory); throws PricingFileError. */
  static fromFile(path: string, provider: BspProvider): Pricing {
    const absolute = resolve(path);
    let text: string;
    try {
      text = readFileSync(absolute, 'utf8');
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new PricingFileError(path, [`cannot read ${absolute} (${reason})`]);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new PricingFileError(path, [`invalid JSON: ${(err as Error).message.replace(/\s+/g, ' ')}`]);
    }
    return new Pricing(parsePricingFile(json, path), provider);
  }

  /** `file` must come from parsePricingFile: nothing is checked again here. */
  constructor(file: PricingFile, provider: BspProvider) {
    this.markupPercent = file.bspMarkupPercent[provider] ?? 0;
    this.defaultMarket = file.defaultMarket;
    this.prefixes = new Map(Object.entries(file.markets));
    this.longestPrefix = Math.max(0, ...[...this.prefixes.keys()].map((k) => k.length));
    this.knownMarkets = new Set([...this.prefixes.values(), file.defaultMarket]);
    this.tables = [...file.tables]
      .sort((a, b) => a.effectiveFrom.localeCompare(b.effectiveFrom))
      .map((t) => ({
        fromMs: utcDateMs(t.effectiveFrom) ?? 0,
        free: new Set(t.freeInServiceWindow),
        rates: new Map(Object.entries(t.rates).map(([market, r]) => [market, new Map(Object.entries(r))])),
      }));
  }

  /**
   * Market code from the recipient's country calling code (longest prefix of `markets` keys; else
   * defaultMarket). '+' and non-digits tolerated; a business-scoped id like 'AE.123' → its
   * 2-letter prefix if that market exists, else default.
   */
  market(to: string): string {
    const scoped = SCOPED_ID.exec(to.trim());
    if (scoped) {
      const code = scoped[1].toUpperCase();
      return this.knownMarkets.has(code) ? code : this.defaultMarket;
    }
    const digits = to.replace(/\D/g, '');
    for (let length = Math.min(digits.length, this.longestPrefix); length > 0; length--) {
      const market = this.prefixes.get(digits.slice(0, length));
      if (market) return market;
    }
    return this.defaultMarket;
  }

  /**
   * Estimated USD of ONE message at `at` (the table whose effectiveFrom ≤ that UTC date, newest
   * wins), BSP markup added, 0 when the category is in the table's freeInServiceWindow and
   * inWindow is true. Rounded to 6 decimals. Categories are case-insensitive (template categories
   * come upper-case from the Graph API); an unknown category is 0.
   */
  estimate(q: PriceQuery): number {
    const table = this.tableAt(q.at);
    const category = q.category.trim().toLowerCase();
    const base = FALLBACK_CATEGORY.get(category);
    if (q.inWindow && (table.free.has(category) || (base !== undefined && table.free.has(base)))) return 0;
    return this.charge(table, this.market(q.to), category);
  }

  /**
   * Billed USD of one delivered message from a status's `pricing`: type 'regular' → rate (with
   * markup), any other type (free_customer_service, free_entry_point) → 0. Categories fall back as
   * FALLBACK_CATEGORY and NEVER_CHARGED say; an unknown category → 0.
   */
  billed(q: { to: string; category: string; type: string; at: number }): number {
    if (q.type.trim().toLowerCase() !== 'regular') return 0;
    return this.charge(this.tableAt(q.at), this.market(q.to), q.category.trim().toLowerCase());
  }

  /**
   * The newest table already in force at `at`. Before the first table's date the first table
   * applies: a price from the oldest known card beats pricing a message at nothing.
   */
  private tableAt(at: number): CompiledTable {
    let found = this.tables[0];
    for (const table of this.tables) {
      if (table.fromMs <= at) found = table;
      else break;
    }
    return found;
  }

  private charge(table: CompiledTable, market: string, category: string): number {
    if (NEVER_CHARGED.has(category)) return 0;
    const rates = table.rates.get(market);
    const base = FALLBACK_CATEGORY.get(category);
    const rate = rates?.get(category) ?? (base !== undefined ? rates?.get(base) : undefined);
    return rate === undefined ? 0 : round6(rate * (1 + this.markupPercent / 100));
  }
}
