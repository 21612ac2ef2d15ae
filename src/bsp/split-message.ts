/** Meta's limit on a text message body. */
export const TEXT_BODY_LIMIT = 4096;

// Each pattern marks the end of a piece after which a part may end; the cut goes after the match.
const PARAGRAPH = /\n[^\S\n]*\n/g;
// . ! ? and the Arabic question mark and full stop, optionally closed by quotes or brackets, then
// whitespace; or a line break. "3.5" and "example.com" are not sentence ends.
const SENTENCE = /[.!?\u061F\u06D4\u2026]+["'\u201D\u2019)\]\u00BB]*(?=\s)|\n/g;
const WHITESPACE = /\s/g;
const BOUNDARIES = [PARAGRAPH, SENTENCE, WHITESPACE];

/**
 * Splits a reply into parts of at most `limit` UTF-16 code units (a bound at least as strict as
 * Meta's character count): at the last paragraph break (blank line) that fills at least half a
 * part, else a sentence end, else whitespace; failing those, at any such boundary; failing all, a
 * hard cut that never separates a surrogate pair, a combining mark or a ZWJ sequence. Fewer,
 * fuller parts are preferred: every part is a billed message from 2026-10.
 * Parts are trimmed and never empty; together they hold every word in order.
 */
export function splitMessage(text: string, limit = TEXT_BODY_LIMIT): string[] {
  if (!Number.isInteger(limit) || limit < 2) throw new RangeError('splitMessage: limit must be an integer >= 2');
  const parts: string[] = [];
  let rest = text.trim();
  while (rest.length > limit) {
    const cut = cutPoint(rest, limit);
    const part = rest.slice(0, cut).trim();
    if (part) parts.push(part);
    rest = rest.slice(cut).trimStart();
  }
  if (rest) parts.push(rest);
  return parts;
}

/** Where to end the next part of `text` (longer than `limit`): an index in 1..limit. */
function cutPoint(text: string, limit: number): number {
  const window = text.slice(0, limit);
  // Ending a part at index `limit` must not cut through a character: the boundary searches below
  // consider only what fits, and whitespace boundaries are never inside one.
  for (const minimum of [Math.floor(limit / 2), 1]) {
    for (const pattern of BOUNDARIES) {
      const end = lastBoundary(window, pattern, minimum);
      if (end !== undefined) return end;
    }
  }
  return hardCut(text, limit);
}

function lastBoundary(window: string, pattern: RegExp, minimum: number): number | undefined {
  let found: number | undefined;
  pattern.lastIndex = 0;
  for (let m = pattern.exec(window); m; m = pattern.exec(window)) {
    const end = m.index + m[0].length;
    if (end >= minimum && end <= window.length) found = end;
    if (m[0].length === 0) pattern.lastIndex++;
  }
  return found;
}

/** The last index <= limit that does not split a character or glue sequence. */
function hardCut(text: string, limit: number): number {
  let cut = limit;
  while (cut > 1 && !safeCut(text, cut)) cut--;
  return safeCut(text, cut) ? cut : limit;
}

function safeCut(text: string, at: number): boolean {
  const before = text.charCodeAt(at - 1);
  if (before >= 0xd800 && before <= 0xdbff) return false; // high surrogate: its pair follows
  if (before === 0x200d) return false; // zero-width joiner binds to the next character
  const next = text.codePointAt(at);
  if (next === undefined) return true;
  // Combining marks (Arabic harakat, variation selectors) and a ZWJ belong to what precedes them.
  return next !== 0x200d && !/\p{M}/u.test(String.fromCodePoint(next));
}
