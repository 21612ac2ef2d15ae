import { readFileSync } from 'node:fs';

/**
 * What the /v1 e2e tests share (docs/http-api.md, docs/costs.md): a caller that keeps every answer
 * readable by an assertion, the rates the tests compute expected costs from, and a template body.
 */

/** config/pricing.json as the app reads it at start, so expected costs follow the file. */
export const PRICING = JSON.parse(readFileSync('config/pricing.json', 'utf8')) as {
  defaultMarket: string;
  tables: { effectiveFrom: string; rates: Record<string, Record<string, number>> }[];
};
/** Rates of the newest table of config/pricing.json (in force from 2026-10-01), by market. */
export const RATES = PRICING.tables[PRICING.tables.length - 1].rates;
/** The app rounds USD to six places: sums of rates compare equal only rounded the same way. */
export const round6 = (n: number): number => Math.round(n * 1e6) / 1e6;

export interface ApiResponse {
  status: number;
  body: any;
  headers: Headers;
}

export interface V1CallOptions {
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as it stands, for bodies JSON.stringify would not write; wins over `body`. */
  raw?: string;
  /** The bearer key instead of the caller's own; null sends no authorization header. */
  key?: string | null;
  headers?: Record<string, string>;
}

export type V1Call = (baseUrl: string, method: string, path: string, options?: V1CallOptions) => Promise<ApiResponse>;

/** A /v1 caller that sends `Bearer <defaultKey>` unless a call says otherwise. */
export function v1Caller(defaultKey: string): V1Call {
  return async (baseUrl, method, path, options = {}) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.key !== null) headers.authorization = `Bearer ${options.key ?? defaultKey}`;
    const raw = options.raw ?? (options.body !== undefined ? JSON.stringify(options.body) : undefined);
    if (raw !== undefined) headers['content-type'] ??= 'application/json';
    const response = await fetch(`${baseUrl}${path}`, { method, headers, body: raw });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: kept as text for the assertion to show
    }
    return { status: response.status, body, headers: response.headers };
  };
}

/** A utility template /v1 accepts; `extra` overrides or adds fields. */
export const template = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  name: 'appointment_reminder',
  language: 'en',
  category: 'utility',
  parameters: ['Ahmed', 'Sun 10:00'],
  ...extra,
});
