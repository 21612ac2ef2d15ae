/**
 * Which figure a ledger entry is: `estimated` when a message is sent (from the pricing table),
 * `billed` when Meta reports its pricing on a status. Kept side by side, never netted: the gap
 * between them is what tells an operator the table is out of date.
 */
export type CostSide = 'estimated' | 'billed';
export const COST_SIDES: readonly CostSide[] = ['estimated', 'billed'];

export interface CostTotals {
  count: number;
  usd: number;
}
/** Totals per category, plus `total` over all of them (so 'total' is not a category name). */
export type CostSideReport = Record<string, CostTotals> & { total: CostTotals };
export interface CostReport {
  from: string;
  to: string;
  currency: 'USD';
  estimated: CostSideReport;
  billed: CostSideReport;
}

/** The ledger keeps days this long; a longer report could only be partly filled. */
export const MAX_REPORT_DAYS = 400;

/** The ledger's day of a moment: its UTC date, YYYY-MM-DD. */
export function costDayOf(at: number): string {
  if (!Number.isFinite(at)) throw new RangeError(`cost ledger: not a time: ${at}`);
  return new Date(at).toISOString().slice(0, 10);
}

/**
 * Message costs per UTC day, side and category (docs/costs.md). Amounts are kept in integer
 * micro-USD, so totals over any range are exact sums of what was recorded (rounded to 6 decimals
 * on the way in).
 */
export abstract class CostLedger {
  /**
   * Counts one message on `side` for `category` on the UTC day of `at`, once per wamid per side:
   * a repeat (Meta repeats pricing on sent and delivered/read; a retried job records again)
   * changes nothing. True when counted now.
   *
   * The once-per-wamid memory lasts 35 days, longer than any status or job retry arrives late.
   * `category` is Meta's pricing category, counted in lower case so that a template's
   * 'MARKETING' and a status's 'marketing' share a row; any non-empty name except 'total' (the
   * report's) and without ':'. `usd` must be finite and ≥ 0. Invalid input throws before anything
   * is written.
   */
  abstract record(side: CostSide, wamid: string, category: string, usd: number, at: number): Promise<boolean>;

  /**
   * Totals per category and overall for the UTC days from..to (YYYY-MM-DD, both inclusive).
   * Both sides list the same categories (every category seen on either side, zeros where a side
   * has none), and `total` is always there. Throws RangeError for a malformed date, from > to, or
   * more than MAX_REPORT_DAYS days.
   */
  abstract report(from: string, to: string): Promise<CostReport>;
}
