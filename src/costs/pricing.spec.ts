import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePricingFile, Pricing, PricingFileError, REQUIRED_CATEGORIES } from './pricing';

const dir = mkdtempSync(join(tmpdir(), 'tawasul-pricing-'));
const writeFile = (content: unknown): string => {
  const file = join(dir, `p${Math.random().toString(16).slice(2)}.json`);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
};

const BEFORE_CHANGE = Date.parse('2026-09-30T23:59:00Z');
const AFTER_CHANGE = Date.parse('2026-10-01T00:00:00Z');
const UAE = '971501234567';

/** A small file of round numbers, so expected prices can be read off it. */
function sampleFile(): Record<string, any> {
  const rates = (service: number) => ({
    AE: { marketing: 0.05, utility: 0.02, authentication: 0.018, service },
    SA: { marketing: 0.04, utility: 0.01, authentication: 0.01, service: service / 2 },
    NA: { marketing: 0.025, utility: 0.004, authentication: 0.0135, service },
    OTHER: { marketing: 0.06, utility: 0.008, authentication: 0.02, service },
  });
  return {
    _comment: 'test rates, not real',
    currency: 'USD',
    bspMarkupPercent: { meta: 0, '360dialog': 10, sandbox: 0 },
    // Jamaica shares North America's calling code 1 but is priced as the rest of the world.
    markets: { '971': 'AE', '966': 'SA', '1': 'NA', '1876': 'OTHER' },
    defaultMarket: 'OTHER',
    // Deliberately newest first: the loader sorts.
    tables: [
      { effectiveFrom: '2026-10-01', freeInServiceWindow: [], rates: rates(0.02) },
      { effectiveFrom: '2025-07-01', freeInServiceWindow: ['service', 'utility'], rates: rates(0) },
    ],
  };
}

const pricingOf = (file: Record<string, any>, provider: 'meta' | '360dialog' | 'sandbox' = 'meta') =>
  new Pricing(parsePricingFile(file), provider);

/** The lines of the PricingFileError that validating `file` throws. */
function errorLines(file: unknown): string[] {
  try {
    parsePricingFile(file);
  } catch (err) {
    expect(err).toBeInstanceOf(PricingFileError);
    return (err as PricingFileError).lines;
  }
  throw new Error('expected a PricingFileError');
}

describe('Pricing.market', () => {
  const pricing = pricingOf(sampleFile());

  it('maps the country calling code to its market', () => {
    expect(pricing.market('971501234567')).toBe('AE');
    expect(pricing.market('966512345678')).toBe('SA');
  });

  it('prices an unknown country code as the default market', () => {
    expect(pricing.market('447700900123')).toBe('OTHER');
    expect(pricing.market('')).toBe('OTHER');
  });

  it('tolerates + and formatting', () => {
    expect(pricing.market('+971501234567')).toBe('AE');
    expect(pricing.market('+971 50 123 4567')).toBe('AE');
    expect(pricing.market('(966) 51-234-5678')).toBe('SA');
  });

  it('takes the longest matching prefix', () => {
    expect(pricing.market('14155550100')).toBe('NA');
    expect(pricing.market('+1 876 555 0100')).toBe('OTHER');
    expect(pricing.market('1')).toBe('NA');
    expect(pricing.market('187')).toBe('NA');
  });

  it('reads the market of a business-scoped user id from its country prefix', () => {
    expect(pricing.market('AE.1234567890')).toBe('AE');
    expect(pricing.market('sa.1234567890')).toBe('SA');
    expect(pricing.market('US.1234567890')).toBe('OTHER');
  });
});

describe('Pricing.estimate', () => {
  const pricing = pricingOf(sampleFile());
  const at = (category: string, when: number, inWindow = false) =>
    pricing.estimate({ to: UAE, category, at: when, inWindow });

  it('switches tables at the start of 2026-10-01 UTC', () => {
    expect(at('service', BEFORE_CHANGE, false)).toBe(0);
    expect(at('service', AFTER_CHANGE, false)).toBe(0.02);
  });

  it('makes freeInServiceWindow categories free only inside the window, per table', () => {
    expect(at('utility', BEFORE_CHANGE, true)).toBe(0);
    expect(at('utility', BEFORE_CHANGE, false)).toBe(0.02);
    expect(at('marketing', BEFORE_CHANGE, true)).toBe(0.05);
    // From 2026-10-01 nothing is free in the window.
    expect(at('utility', AFTER_CHANGE, true)).toBe(0.02);
    expect(at('service', AFTER_CHANGE, true)).toBe(0.02);
  });

  it('prices by the recipient market', () => {
    expect(pricing.estimate({ to: '966512345678', category: 'marketing', at: AFTER_CHANGE, inWindow: false })).toBe(
      0.04,
    );
    expect(pricing.estimate({ to: '14155550100', category: 'marketing', at: AFTER_CHANGE, inWindow: false })).toBe(
      0.025,
    );
    expect(pricing.estimate({ to: '447700900123', category: 'marketing', at: AFTER_CHANGE, inWindow: false })).toBe(
      0.06,
    );
  });

  it('uses the oldest table before its date, and the newest far in the future', () => {
    expect(at('service', Date.parse('2020-01-01T00:00:00Z'))).toBe(0);
    expect(at('service', Date.parse('2040-01-01T00:00:00Z'))).toBe(0.02);
  });

  it('accepts upper-case template categories and prices unknown ones at 0', () => {
    expect(at('MARKETING', AFTER_CHANGE)).toBe(0.05);
    expect(at('UTILITY', BEFORE_CHANGE, true)).toBe(0);
    expect(at('carrier_pigeon', AFTER_CHANGE)).toBe(0);
    expect(at('constructor', AFTER_CHANGE)).toBe(0);
  });

  it('adds the BSP markup of the configured provider, rounded to 6 decimals', () => {
    const d360 = pricingOf(sampleFile(), '360dialog');
    const q = { to: UAE, category: 'utility', at: AFTER_CHANGE, inWindow: false };
    expect(d360.markupPercent).toBe(10);
    expect(d360.estimate(q)).toBe(0.022);
    expect(d360.estimate({ ...q, category: 'authentication' })).toBe(0.0198);
    expect(pricingOf(sampleFile(), 'meta').estimate(q)).toBe(0.02);
    const odd = sampleFile();
    odd.bspMarkupPercent['360dialog'] = 3.3333;
    expect(pricingOf(odd, '360dialog').estimate(q)).toBe(0.020667);
    // Free stays free whatever the markup.
    expect(d360.estimate({ ...q, at: BEFORE_CHANGE, inWindow: true })).toBe(0);
  });
});

describe('Pricing.billed', () => {
  const pricing = pricingOf(sampleFile(), '360dialog');
  const billed = (category: string, type = 'regular', to = UAE) =>
    pricing.billed({ to, category, type, at: AFTER_CHANGE });

  it('charges regular messages at the rate with markup, free types at 0', () => {
    expect(billed('marketing')).toBe(0.055);
    expect(billed('service')).toBe(0.022);
    expect(billed('service', 'free_customer_service')).toBe(0);
    expect(billed('marketing', 'free_entry_point')).toBe(0);
    expect(billed('marketing', 'REGULAR')).toBe(0.055);
  });

  it('uses the table of the status time', () => {
    expect(pricing.billed({ to: UAE, category: 'service', type: 'regular', at: BEFORE_CHANGE })).toBe(0);
    expect(pricing.billed({ to: UAE, category: 'service', type: 'regular', at: AFTER_CHANGE })).toBe(0.022);
  });

  it('prices aliases at their own rate when the market has one, else the base category', () => {
    const file = sampleFile();
    file.tables[0].rates.AE['authentication-international'] = 0.03;
    file.tables[0].rates.AE.marketing_lite = 0.04;
    const own = pricingOf(file, 'meta');
    const at = AFTER_CHANGE;
    expect(own.billed({ to: UAE, category: 'authentication-international', type: 'regular', at })).toBe(0.03);
    expect(own.billed({ to: UAE, category: 'marketing_lite', type: 'regular', at })).toBe(0.04);
    expect(billed('authentication-international')).toBe(0.0198);
    expect(billed('marketing_lite')).toBe(0.055);
    expect(billed('authentication-international', 'regular', '966512345678')).toBe(0.011);
  });

  it('never charges referral conversions, and unknown categories at 0', () => {
    expect(billed('referral_conversion')).toBe(0);
    expect(billed('something_new')).toBe(0);
  });
});

describe('pricing file validation', () => {
  it('accepts the sample and sorts its tables', () => {
    expect(parsePricingFile(sampleFile()).tables.map((t) => t.effectiveFrom)).toEqual(['2025-07-01', '2026-10-01']);
  });

  it('names a bad date', () => {
    const file = sampleFile();
    file.tables[0].effectiveFrom = '2026-13-01';
    file.tables[1].effectiveFrom = '1 Oct 2026';
    expect(errorLines(file)).toEqual([
      'tables[0].effectiveFrom: expected YYYY-MM-DD',
      'tables[1].effectiveFrom: expected YYYY-MM-DD',
    ]);
  });

  it('names a negative or non-numeric rate', () => {
    const file = sampleFile();
    file.tables[1].rates.AE.utility = -0.01;
    file.tables[0].rates.SA.marketing = '0.04';
    expect(errorLines(file)).toEqual([
      'tables[0].rates.SA.marketing: expected a number ≥ 0',
      'tables[1].rates.AE.utility: expected a number ≥ 0',
    ]);
  });

  it('names a missing category', () => {
    const file = sampleFile();
    delete file.tables[0].rates.OTHER.service;
    expect(errorLines(file)).toEqual([
      `tables[0].rates.OTHER.service: missing (every market needs ${REQUIRED_CATEGORIES.join(', ')})`,
    ]);
  });

  it('names a market of the markets map that a table does not price', () => {
    const file = sampleFile();
    file.markets['974'] = 'QA';
    delete file.tables[1].rates.OTHER;
    expect(errorLines(file)).toEqual([
      "markets.974: market 'QA' has no rates in tables[0]",
      "markets.974: market 'QA' has no rates in tables[1]",
      "markets.1876: market 'OTHER' has no rates in tables[1]",
      "defaultMarket: market 'OTHER' has no rates in tables[1]",
    ]);
  });

  it('names malformed markets, markups, free categories, duplicates and stray keys', () => {
    const file = sampleFile();
    file.markets['+973'] = 'BH';
    file.markets['20'] = 'eg';
    delete file.bspMarkupPercent.sandbox;
    file.bspMarkupPercent['360Dialog'] = 5;
    file.tables[1].freeInServiceWindow = ['service', 'utlity'];
    file.tables[1].effectiveFrom = '2026-10-01';
    file.tables[0].rates.QA = file.tables[0].rates.AE;
    file.currency = 'AED';
    file.tabels = [];
    const lines = errorLines(file);
    expect(lines).toEqual(
      expect.arrayContaining([
        'tabels: unknown key (known: currency, bspMarkupPercent, markets, defaultMarket, tables)',
        'currency: expected "USD" (the cost ledger counts USD)',
        'bspMarkupPercent.sandbox: expected a number ≥ 0',
        'bspMarkupPercent.360Dialog: unknown key (known: meta, 360dialog, sandbox)',
        'markets.+973: expected a country calling code (digits only, no +)',
        'markets.20: expected a market code in capitals, like "AE"',
        "tables[0].rates.QA: no entry of markets maps to 'QA' and it is not defaultMarket",
        'tables[1].freeInServiceWindow[1]: unknown category "utlity"',
        "tables[1].effectiveFrom: 2026-10-01 is also tables[0]'s date",
      ]),
    );
  });

  it('rejects a file that is not an object, or has no tables', () => {
    expect(errorLines([])).toEqual(['expected a JSON object']);
    const file = sampleFile();
    file.tables = [];
    expect(errorLines(file)).toEqual(['tables: expected a non-empty array of dated rate tables']);
  });

  it('puts the variable, the file and every line in one message, without a stack in it', () => {
    const file = sampleFile();
    file.tables[0].rates.AE.utility = -1;
    file.tables[0].effectiveFrom = 'soon';
    const path = writeFile(file);
    expect(() => Pricing.fromFile(path, 'meta')).toThrow(
      `PRICING_FILE: ${path}: tables[0].effectiveFrom: expected YYYY-MM-DD; tables[0].rates.AE.utility: expected a number ≥ 0`,
    );
  });
});

describe('Pricing.fromFile', () => {
  it('fails on an unreadable file with one line', () => {
    const missing = join(dir, 'missing.json');
    try {
      Pricing.fromFile(missing, 'meta');
      throw new Error('expected a PricingFileError');
    } catch (err) {
      expect(err).toBeInstanceOf(PricingFileError);
      expect((err as PricingFileError).lines).toEqual([`cannot read ${missing} (ENOENT)`]);
      expect((err as Error).message).toBe(`PRICING_FILE: ${missing}: cannot read ${missing} (ENOENT)`);
    }
  });

  it('fails on invalid JSON with one line', () => {
    const path = writeFile('{ "currency": "USD", }');
    try {
      Pricing.fromFile(path, 'meta');
      throw new Error('expected a PricingFileError');
    } catch (err) {
      expect(err).toBeInstanceOf(PricingFileError);
      expect((err as PricingFileError).lines).toHaveLength(1);
      expect((err as PricingFileError).lines[0]).toMatch(/^invalid JSON: /);
      expect((err as Error).message).not.toMatch(/\n/);
    }
  });

  it('loads a valid file', () => {
    const pricing = Pricing.fromFile(writeFile(sampleFile()), '360dialog');
    expect(pricing.estimate({ to: UAE, category: 'marketing', at: AFTER_CHANGE, inWindow: false })).toBe(0.055);
  });
});

describe('config/pricing.json (shipped)', () => {
  const pricing = Pricing.fromFile('config/pricing.json', 'meta');
  const shipped = JSON.parse(readFileSync('config/pricing.json', 'utf8')) as Record<string, any>;

  it('says its figures are approximate', () => {
    expect(shipped._comment.join(' ')).toMatch(/APPROXIMATE/);
    expect(shipped._comment.join(' ')).toMatch(/rate card/);
  });

  it('prices the UAE at the documented approximate figures', () => {
    const q = { to: '+971501234567', at: AFTER_CHANGE, inWindow: false };
    expect(pricing.estimate({ ...q, category: 'marketing' })).toBe(0.0499);
    expect(pricing.estimate({ ...q, category: 'utility' })).toBe(0.0157);
    expect(pricing.estimate({ ...q, category: 'authentication' })).toBe(0.0178);
  });

  it('charges service messages at the utility rate from 2026-10-01, free in the window before', () => {
    for (const to of ['971501234567', '966512345678', '201001234567']) {
      const service = (at: number, inWindow: boolean) => pricing.estimate({ to, category: 'service', at, inWindow });
      const utility = (at: number, inWindow: boolean) => pricing.estimate({ to, category: 'utility', at, inWindow });
      expect(service(BEFORE_CHANGE, true)).toBe(0);
      expect(utility(BEFORE_CHANGE, true)).toBe(0);
      expect(service(AFTER_CHANGE, true)).toBe(utility(AFTER_CHANGE, false));
      expect(utility(AFTER_CHANGE, true)).toBeGreaterThan(0);
    }
  });

  it('has no markup for any BSP until a contract sets one', () => {
    expect(shipped.bspMarkupPercent).toEqual({ meta: 0, '360dialog': 0, sandbox: 0 });
  });
});
