// Terminal output of the CLI: aligned tables and money, and names made safe to print.

export type Align = 'left' | 'right';

/**
 * Characters a terminal acts on or that reorder text: C0 and C1 controls, DEL (ESC starts an OSC 52
 * clipboard write, a title change, cursor moves), line separators and bidi overrides.
 */
const UNSAFE = /[\p{Cc}\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;
/** What JSON.stringify leaves raw of those: it escapes only C0. */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** A name as visible escapes (`\x1b`, `\u{202e}`) where it has characters a terminal would act on. */
export function printable(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const code = c.codePointAt(0)!;
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}

/** JSON for a terminal or a script: the same value, with every unsafe character as a `\u` escape. */
export function safeJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(UNSAFE_IN_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Columns padded to their widest cell, two spaces apart; numbers right-aligned. Cells are printable(). */
export function formatTable(headers: string[], rawRows: string[][], align: Align[] = []): string {
  const rows = rawRows.map((r) => r.map((c) => printable(c ?? '')));
  const widths = headers.map((h, i) => Math.max(displayWidth(h), ...rows.map((r) => displayWidth(r[i] ?? ''))));
  const pad = (c: string, i: number) => {
    const fill = ' '.repeat(Math.max(0, widths[i] - displayWidth(c)));
    return align[i] === 'right' ? fill + c : c + fill;
  };
  const line = (cells: string[]) => cells.map(pad).join('  ').trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** Combining marks, zero-width and format characters take no column. */
const ZERO_WIDTH = /[\p{Mn}\p{Me}\p{Cf}]/u;
const WIDE_EMOJI = /\p{Emoji_Presentation}/u;

/** Columns a terminal gives the text: East Asian wide and fullwidth characters (and emoji) take two. */
export function displayWidth(text: string): number {
  let width = 0;
  for (const ch of text) {
    if (ZERO_WIDTH.test(ch)) continue;
    width += isWide(ch.codePointAt(0)!) || WIDE_EMOJI.test(ch) ? 2 : 1;
  }
  return width;
}

/** The Wide (W) and Fullwidth (F) blocks of Unicode's East Asian Width (UAX #11). */
function isWide(cp: number): boolean {
  return (
    (cp >= 0x1100 && cp <= 0x115f) || // Hangul Jamo initials
    (cp >= 0x2e80 && cp <= 0x303e) || // CJK radicals, Kangxi, CJK symbols and punctuation
    (cp >= 0x3041 && cp <= 0x33ff) || // kana, Bopomofo, Hangul compatibility Jamo, CJK compatibility
    (cp >= 0x3400 && cp <= 0x4dbf) || // CJK extension A
    (cp >= 0x4e00 && cp <= 0x9fff) || // CJK unified ideographs
    (cp >= 0xa000 && cp <= 0xa4cf) || // Yi
    (cp >= 0xa960 && cp <= 0xa97f) || // Hangul Jamo extended-A
    (cp >= 0xac00 && cp <= 0xd7a3) || // Hangul syllables
    (cp >= 0xf900 && cp <= 0xfaff) || // CJK compatibility ideographs
    (cp >= 0xfe10 && cp <= 0xfe19) || // vertical forms
    (cp >= 0xfe30 && cp <= 0xfe6f) || // CJK compatibility forms, small form variants
    (cp >= 0xff00 && cp <= 0xff60) || // fullwidth forms
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1b000 && cp <= 0x1b2ff) || // kana supplement and extensions
    (cp >= 0x20000 && cp <= 0x3fffd) // CJK extensions B and later
  );
}

/** The candidate closest to `word` by edit distance (a swap of two letters counts one), if close enough to be a typo. */
export function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return bestDistance > 0 && bestDistance <= Math.max(1, Math.min(2, Math.floor(word.length / 3))) ? best : undefined;
}

/** Optimal string alignment distance (Levenshtein plus transpositions). */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * USD for people, exact to the nano-dollar the ledger counts in: at least cents (`$12.50`), more
 * digits only where the amount has them (`$0.000123`), never an exponent or a bare `$0.`.
 */
export function usd(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const [whole, frac = ''] = decimal(n).split('.');
  return `$${whole}.${frac.padEnd(2, '0')}`;
}

/** Per-million-token prices: as given (`0.0000001`, not `1e-7`), without float noise. */
export function price(n: number | null | undefined): string {
  return n === null || n === undefined ? '-' : Number.isFinite(n) ? decimal(n) : String(n);
}

/**
 * A number in plain decimal notation, rounded to 9 places (float noise such as 0.1 + 0.2 goes), with
 * no trailing zeros. A non-zero amount too small for that is written out in full, never as 0.
 */
export function decimal(n: number): string {
  const rounded = n.toFixed(9).replace(/\.?0+$/, '');
  if ((rounded !== '0' && rounded !== '-0') || n === 0) return rounded === '-0' ? '0' : rounded;
  return expand(n);
}

/** `4e-10` → `0.0000000004`: the shortest round-trip digits, without the exponent (|n| < 1e-9 only). */
function expand(n: number): string {
  const [mantissa, exp] = Math.abs(n).toExponential().split('e');
  return `${n < 0 ? '-' : ''}0.${'0'.repeat(-Number(exp) - 1)}${mantissa.replace('.', '')}`;
}

export const count = (n: number): string => n.toLocaleString('en-US');

export const percent = (part: number, whole: number): string => (whole > 0 ? `${Math.round((part / whole) * 100)}%` : '-');
